"""Figures (matplotlib Agg; PNG, and GIF via PIL for sequences).

* `prediction_grid`: rows input / ground truth / each model's prediction (STC-LIF paper Figs. 3, 6).
* `prediction_gif`: the same as an animation over time, one panel per row.
* `per_frame_curves`: a metric per predicted frame (metrics.json `per_frame`), one line per model;
  with several seeds per model, their mean and a 95 % confidence band (Student t over seeds).
* `gate_dynamics`: the circuit gates A_t - 1 (history, beta) and B_t - 1 (input, gamma) per
  layer and step, mean and spread over neurons and samples (STC-LIF paper Fig. 2).
* `training_curves`: logged scalars against step/epoch (e.g. gate means during training).
* `firing_rates`: per-layer firing rate per model.
* `gradient_through_time`: ||dL/ds_t|| per step (as TC-LIF / CE-LIF plot it).

Every function writes atomically and returns the path.  Sizes are exact:
`figsize` inches x `DPI` pixels (no tight bounding box).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from stcbench.atomic import replacing, save_figure  # noqa: E402
from stcbench.errors import StcbenchError  # noqa: E402

DPI = 100
COLORS = tuple(plt.get_cmap("tab10").colors)
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def line_style(index: int) -> dict:
    """Colour, line style and marker of the index-th line: no two of the first 40 lines share all three
    (10 colours; the line style changes every 10 lines; 12 markers)."""
    return {"color": COLORS[index % len(COLORS)], "linestyle": LINESTYLES[(index // len(COLORS)) % len(LINESTYLES)],
            "marker": MARKERS[index % len(MARKERS)]}


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").double().numpy()
    return np.asarray(x, dtype=np.float64)


def _save(fig, path: Path) -> Path:
    try:
        return save_figure(fig, path, dpi=DPI)
    finally:
        plt.close(fig)


def to_image(frame) -> np.ndarray:
    """[C, H, W] in [0,1] -> [H, W] (gray; channel 0 for 2-channel flows) or [H, W, 3], clipped."""
    frame = np.clip(_as_numpy(frame), 0.0, 1.0)
    if frame.ndim == 2:
        return frame
    if frame.shape[0] == 3:
        return frame.transpose(1, 2, 0)
    return frame[0]


def _check_sequence(name: str, seq) -> np.ndarray:
    seq = _as_numpy(seq)
    if seq.ndim != 4:
        raise StcbenchError(f"{name} must be [T, C, H, W], got shape {seq.shape}; pass one sample, not a batch")
    return seq


def prediction_grid(inputs, truth, predictions: Mapping[str, object], path: Path, *,
                    max_frames: int = 10, title: str | None = None) -> Path:
    """Rows: input frames, ground truth, then one row per model ([T_out, C, H, W] each)."""
    inputs = _check_sequence("inputs", inputs)
    truth = _check_sequence("truth", truth)
    rows = [("input", inputs), ("ground truth", truth)]
    rows += [(name, _check_sequence(f"prediction {name!r}", p)) for name, p in predictions.items()]
    columns = min(max_frames, max(len(seq) for _, seq in rows))
    width = 1.1 * columns + 1.0
    fig, axes = plt.subplots(len(rows), columns, figsize=(width, 1.15 * len(rows) + 0.4), squeeze=False)
    for r, (label, seq) in enumerate(rows):
        stride = max(1, int(np.ceil(len(seq) / columns)))
        shown = seq[::stride][:columns]
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(shown):
                ax.imshow(to_image(shown[c]), cmap="gray", vmin=0, vmax=1)
                if r <= 1:
                    ax.set_title(f"{'t' if r == 0 else 't+'}{c * stride + 1}", fontsize=6)
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.95 / width, right=0.99, bottom=0.02, top=0.9 if title else 0.95, wspace=0.05, hspace=0.3)
    return _save(fig, path)


def _panel_strip(frames: list[np.ndarray], scale: int) -> np.ndarray:
    images = [to_image(f) for f in frames]
    images = [np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img for img in images]
    gap = np.ones((images[0].shape[0], 2, 3))
    strip = np.concatenate(sum(([img, gap] for img in images), [])[:-1], axis=1)
    strip = np.kron(strip, np.ones((scale, scale, 1)))
    return (strip * 255).round().astype(np.uint8)


def prediction_gif(truth, predictions: Mapping[str, object], path: Path, *, inputs=None, scale: int = 2,
                   duration_ms: int = 200) -> Path:
    """Animated GIF: per time step one strip [ground truth | model 1 | model 2 ...]; the
    context frames (if given) are shown first in every panel."""
    truth = _check_sequence("truth", truth)
    preds = [_check_sequence(f"prediction {n!r}", p) for n, p in predictions.items()]
    frames = []
    if inputs is not None:
        for frame in _check_sequence("inputs", inputs):
            frames.append(_panel_strip([frame] * (1 + len(preds)), scale))
    for t in range(len(truth)):
        frames.append(_panel_strip([truth[t]] + [p[min(t, len(p) - 1)] for p in preds], scale))
    images = [Image.fromarray(f) for f in frames]
    path = Path(path)
    with replacing(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return path


def per_frame_curves(series: Mapping[str, Sequence], path: Path, *, metric: str = "mse",
                     title: str | None = None, ylabel: str | None = None) -> Path:
    """One line per model: `series[label]` is one per-frame curve, or a list of curves (one per seed),
    drawn as their mean with a shaded 95 % confidence band."""
    from stcbench.reports.stats import summarize

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for index, (label, values) in enumerate(series.items()):
        curves = _as_numpy(values)
        curves = curves[None] if curves.ndim == 1 else curves
        frames = np.arange(1, curves.shape[1] + 1)
        summaries = [summarize(curves[:, t]) for t in range(curves.shape[1])]
        mean = np.array([s.mean if s else np.nan for s in summaries])
        style = line_style(index)
        name = label if len(curves) == 1 else f"{label} (n = {len(curves)})"
        ax.plot(frames, mean, markersize=3, linewidth=1.2, label=name, **style)
        if len(curves) > 1:
            half = np.array([s.half_width if s and s.half_width is not None else np.nan for s in summaries])
            ax.fill_between(frames, mean - half, mean + half, color=style["color"], alpha=0.15, linewidth=0)
    ax.set_xlabel("predicted frame")
    ax.set_ylabel(ylabel or metric)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=6, ncol=2 if len(series) > 6 else 1)
    ax.set_title(title or f"{metric} per predicted frame", fontsize=9)
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.15, top=0.9)
    return _save(fig, path)


def gate_statistics(gates) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """gates [T, ...] (A_t or B_t) -> per-step mean, std, 10th and 90th percentile of gate - 1."""
    values = _as_numpy(gates)
    flat = values.reshape(values.shape[0], -1) - 1.0
    return flat.mean(1), flat.std(1), np.percentile(flat, 10, axis=1), np.percentile(flat, 90, axis=1)


def gate_dynamics(gates: Mapping[str, Mapping[str, object]], path: Path, *, title: str | None = None) -> Path:
    """`gates[layer] = {"A": [T, ...], "B": [T, ...]}`; plots beta = A-1 and gamma = B-1 per layer:
    mean line, 10-90 % band (paper Fig. 2: the parameters change with the input and over time)."""
    layers = list(gates)
    if not layers:
        raise StcbenchError("no gate traces to plot; the model has no spatio-temporal circuit cells")
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), squeeze=False)
    names = (("A", r"$\beta$ = A$_t$ - 1 (history gate, conv_h)"), ("B", r"$\gamma$ = B$_t$ - 1 (input gate, conv_v)"))
    for ax, (key, label) in zip(axes[0], names):
        for layer in layers:
            if key not in gates[layer]:
                continue
            mean, _, low, high = gate_statistics(gates[layer][key])
            steps = np.arange(len(mean))
            line, = ax.plot(steps, mean, label=f"layer {layer}")
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("step t")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.84, wspace=0.25)
    return _save(fig, path)


def training_curves(rows: Sequence[Mapping[str, float]], keys: Sequence[str], path: Path, *,
                    x_key: str = "step", title: str | None = None) -> Path:
    """Logged scalars (e.g. gate means per epoch) against `x_key`; rows lacking a key are skipped."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key in keys:
        points = [(float(r[x_key]), float(r[key])) for r in rows
                  if r.get(key) not in (None, "") and r.get(x_key) not in (None, "")]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=key)
    ax.set_xlabel(x_key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "training curves", fontsize=9)
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.15, top=0.9)
    return _save(fig, path)


def xy_curves(series: Mapping[str, Sequence[tuple[float, float]]], path: Path, *, xlabel: str = "step",
              ylabel: str = "", title: str | None = None, log_y: bool = False) -> Path:
    """One line per label from (x, y) points (training logs), each label its own style (line_style); points are
    marked where a line has few of them (a short run logs one or two), so that every label shows."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for index, (label, points) in enumerate(series.items()):
        if points:
            xs, ys = zip(*points)
            style = line_style(index)
            if len(points) > 30:
                style["marker"] = None
            ax.plot(xs, ys, label=label, linewidth=1, markersize=3, **style)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=6, ncol=2)
    ax.set_title(title or "", fontsize=9)
    fig.tight_layout()                     # room for the tick labels of a log axis and the axis label
    return _save(fig, path)


def firing_rates(rates: Mapping[str, Sequence[float]], path: Path, *, title: str | None = None) -> Path:
    """Grouped bars: per model, the firing rate of each layer."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    models = list(rates)
    layers = max((len(v) for v in rates.values()), default=0)
    width = 0.8 / max(1, layers)
    x = np.arange(len(models))
    for layer in range(layers):
        heights = [rates[m][layer] if layer < len(rates[m]) else np.nan for m in models]
        ax.bar(x + (layer - (layers - 1) / 2) * width, heights, width, label=f"layer {layer}")
    ax.set_xticks(x)
    ax.set_xticklabels(models, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("firing rate (spikes / neuron / step)")
    ax.grid(alpha=0.3, axis="y")
    if layers:
        ax.legend(fontsize=7)
    ax.set_title(title or "per-layer firing rates", fontsize=9)
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.25, top=0.9)
    return _save(fig, path)


def gradient_through_time(norms: Mapping[str, Sequence[float]], path: Path, *, title: str | None = None) -> Path:
    """||dL/ds_t|| per step, one line per model/layer, log scale."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, values in norms.items():
        values = _as_numpy(values)
        ax.plot(np.arange(len(values)), np.where(values > 0, values, np.nan), marker=".", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel(r"$\|\partial L / \partial s_t\|$")
    ax.grid(alpha=0.3, which="both")
    if norms:
        ax.legend(fontsize=6)
    ax.set_title(title or "gradient magnitude through time", fontsize=9)
    fig.subplots_adjust(left=0.17, right=0.97, bottom=0.15, top=0.9)
    return _save(fig, path)
