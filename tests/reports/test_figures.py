import numpy as np
import pytest
import torch
from PIL import Image

from stcbench.errors import StcbenchError
from stcbench.reports import figures


def rand(*shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def assert_png(path, size):
    image = Image.open(path)
    assert image.format == "PNG" and image.size == size
    pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 1.0                       # something was drawn
    assert not list(path.parent.glob(".*"))         # no temp files left


def test_prediction_grid(tmp_path):
    path = figures.prediction_grid(rand(10, 1, 16, 16), rand(10, 1, 16, 16), {"lif": rand(10, 1, 16, 16, seed=1),
                                   "stclif": torch.rand(10, 1, 16, 16)}, tmp_path / "grid.png", title="mmnist")
    width = 1.1 * 10 + 1.0
    assert_png(path, (round(width * figures.DPI), round((1.15 * 4 + 0.4) * figures.DPI)))


def test_prediction_grid_subsamples_long_sequences_and_two_channels(tmp_path):
    path = figures.prediction_grid(rand(10, 2, 8, 8), rand(40, 2, 8, 8), {"glif": rand(40, 2, 8, 8)},
                                   tmp_path / "kth.png", max_frames=5)
    width, height = Image.open(path).size
    assert width == round((1.1 * 5 + 1.0) * 100)          # 5 frames of the 40, not 40
    assert abs(height - (1.15 * 3 + 0.4) * 100) <= 1       # 3 rows (matplotlib before 3.9 rounds 384.9 down)


def test_prediction_grid_rejects_batches(tmp_path):
    with pytest.raises(StcbenchError, match=r"\[T, C, H, W\]"):
        figures.prediction_grid(rand(2, 10, 1, 8, 8), rand(10, 1, 8, 8), {}, tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_prediction_gif(tmp_path):
    truth = np.zeros((3, 1, 8, 8))
    truth[:, 0, 2, 2] = 1.0
    path = figures.prediction_gif(truth, {"a": rand(3, 1, 8, 8), "b": rand(3, 1, 8, 8)}, tmp_path / "seq.gif",
                                  inputs=rand(2, 1, 8, 8), scale=2)
    image = Image.open(path)
    assert image.format == "GIF" and image.n_frames == 5
    assert image.size == ((3 * 8 + 2 * 2) * 2, 8 * 2)
    image.seek(2)                                    # first predicted step: truth pixel (2,2) is white
    assert np.asarray(image.convert("L"))[4, 4] == 255


def test_curves_gates_rates_gradients(tmp_path):
    assert_png(figures.per_frame_curves({"lif": [3, 2, 4], "stclif": [1, 1, 2]}, tmp_path / "pf.png"), (500, 320))
    gates = {0: {"A": 1 + 0.1 * rand(7, 2, 16, 4, 4), "B": 1 - 0.2 * rand(7, 2, 16, 4, 4)},
             1: {"A": np.ones((7, 2, 16, 4, 4))}}
    assert_png(figures.gate_dynamics(gates, tmp_path / "gates.png", title="STC-LIF"), (800, 320))
    assert_png(figures.firing_rates({"lif": [0.1, 0.2], "stclif": [0.3, 0.05, 0.01]}, tmp_path / "fr.png"), (600, 320))
    assert_png(figures.gradient_through_time({"lif": [1e-3, 1e-2, 0.0, 1.0]}, tmp_path / "g.png"), (500, 320))
    rows = [{"step": i, "gate_A_mean": 0.1 * i} for i in range(5)] + [{"step": 5}]
    assert_png(figures.training_curves(rows, ["gate_A_mean"], tmp_path / "train.png"), (500, 320))


def test_gate_statistics():
    gates = np.stack([np.full((2, 3), 1.5), np.array([[1.0, 2.0, 0.0], [1.0, 2.0, 0.0]])])
    mean, std, low, high = figures.gate_statistics(gates)
    np.testing.assert_allclose(mean, [0.5, 0.0])
    np.testing.assert_allclose(std, [0.0, np.sqrt(2 / 3)])
    assert low[1] < 0 < high[1]


def test_gate_dynamics_needs_gates(tmp_path):
    with pytest.raises(StcbenchError, match="no gate traces"):
        figures.gate_dynamics({}, tmp_path / "g.png")


def test_twelve_cells_are_distinguishable_and_seeds_get_a_band(tmp_path, monkeypatch):
    drawn = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: (drawn.append(fig.axes[0]), save(fig, path))[1])
    cells = [f"cell{i}" for i in range(12)]
    series = {name: [1.0 + i, 2.0 + i, 3.0 + i] for i, name in enumerate(cells)}
    series["cell0"] = [[1.0, 2.0, 3.0], [1.5, 2.5, 3.5], [2.0, 3.0, 4.0]]        # three seeds
    assert_png(figures.per_frame_curves(series, tmp_path / "pf.png"), (500, 320))
    lines = drawn[0].lines
    styles = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in lines}
    assert len(lines) == 12 and len(styles) == 12
    assert lines[0].get_label() == "cell0 (n = 3)"
    np.testing.assert_allclose(lines[0].get_ydata(), [1.5, 2.5, 3.5])
    (band,) = drawn[0].collections                                              # only the seeded cell has one
    half = 4.302653 * 0.5 / np.sqrt(3)                                          # t_{0.975,2} * sd / sqrt(n)
    np.testing.assert_allclose(band.get_paths()[0].vertices[:, 1].min(), 1.5 - half, rtol=1e-6)
    assert len({tuple(figures.line_style(i).values()) for i in range(40)}) == 40


def test_training_curves_of_a_short_run_show_every_label(tmp_path, monkeypatch):
    """A run of few steps logs one or two loss points: each label is drawn with markers (a line of one point draws
    nothing) and in a style of its own."""
    from stcbench.reports import figures

    drawn = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.setdefault("fig", fig) and path)
    figures.xy_curves({"lif": [(7, 0.5)], "stclif": [(7, 0.4), (15, 0.3)], "long": [(i, 1.0) for i in range(50)]},
                      tmp_path / "loss.png", log_y=True)
    lines = drawn["fig"].axes[0].get_lines()
    assert all(line.get_marker() not in (None, "None", "") for line in lines[:2])
    assert lines[2].get_marker() in (None, "None", "")                       # a long curve stays a plain line
    assert len({(line.get_color(), line.get_marker()) for line in lines[:2]}) == 2


def test_a_memory_loss_panel_shows_curves_above_its_usual_range():
    """A copy task whose cells all sit at 1.7-2.1 times the baseline: the panel's range shows their curves."""
    from stcbench.reports.memory import _finish_loss_panel

    fig, ax = figures.plt.subplots()
    ax.plot([0, 1, 2, 3], [2.1, 1.9, 2.0, 1.7])
    _finish_loss_panel(ax, ("copy", 100, "small"))
    assert ax.get_ylim()[1] >= 2.0
    fig2, low = figures.plt.subplots()
    low.plot([0, 1, 2, 3], [5.0, 0.2, 0.1, 0.1])             # a first peak does not squash the curves
    _finish_loss_panel(low, ("adding", 100, "small"))
    assert low.get_ylim() == (0, 1.6)
    figures.plt.close(fig)
    figures.plt.close(fig2)
