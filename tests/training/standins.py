"""TEMPORARY stand-ins for pieces other engineers are still writing (predictor, metrics).

Installed by conftest.py only while `stcbench.models.build_predictor` or
`stcbench.metrics.PredictionMetrics` is missing; removed once both exist.
"""
from __future__ import annotations

import sys
import types

import torch
from torch import nn
from torchmetrics import Metric


class StandInPredictor(nn.Module):
    def __init__(self, cell, num_hidden, filter_size, patch_size, channels, gradient_detach=None, cell_options=None):
        super().__init__()
        from stcbench.cells import create_cell

        self.p = patch_size
        cp = patch_size * patch_size * channels
        opts = dict(cell_options or {})
        self.cell_list = nn.ModuleList(
            create_cell(cell, cp if i == 0 else num_hidden[i - 1], h, kernel_size=filter_size, **opts)
            for i, h in enumerate(num_hidden))
        self.conv_last = nn.Conv2d(num_hidden[-1], cp, 1, bias=False)

    def _run(self, frames, mask, in_frames, steps):
        from stcbench.models.patch import CHANNEL_FIRST, patchify, unpatchify

        ims = patchify(frames, self.p, CHANNEL_FIRST)
        states = [None] * len(self.cell_list)
        outs, prev = [], None
        for t in range(steps):
            if t < in_frames:
                x = ims[:, t]
            else:
                m = mask[:, t - in_frames].view(-1, 1, 1, 1) if mask is not None and mask.shape[1] > t - in_frames else 0
                gt = ims[:, t] if t < ims.shape[1] else torch.zeros_like(prev)
                x = m * gt + (1 - m) * prev
            for i, cell in enumerate(self.cell_list):
                x, states[i] = cell(x, states[i], t)
            prev = self.conv_last(x)
            outs.append(prev)
        return unpatchify(torch.stack(outs, 1), self.p, CHANNEL_FIRST)

    def forward(self, frames, mask):
        in_frames = frames.shape[1] - mask.shape[1] - 1
        return self._run(frames, mask, in_frames, frames.shape[1] - 1)

    def predict(self, context, out_frames):
        t_in = context.shape[1]
        out = self._run(context, None, t_in, t_in + out_frames - 1)
        return out[:, -out_frames:]


def build_predictor(cell, dataset, num_hidden, filter_size, patch_size, cell_options=None, gradient_detach=None):
    from stcbench.data import get_dataset_spec

    return StandInPredictor(cell, num_hidden, filter_size, patch_size, get_dataset_spec(dataset).channels,
                            cell_options=cell_options)


class PredictionMetrics(Metric):
    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("se", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("ae", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred, true):
        d = pred.detach().double() - true.detach().double()
        se = (d * d).sum(dim=(0, 2, 3, 4))
        ae = d.abs().sum(dim=(0, 2, 3, 4))
        if self.se.numel() == 0:
            self.se, self.ae = se, ae
        else:
            self.se, self.ae = self.se + se, self.ae + ae
        self.n += d.shape[0]

    def compute(self):
        mse_f = self.se / self.n
        return {"mse": float(mse_f.mean()), "mae": float((self.ae / self.n).mean()),
                "n_sequences": int(self.n), "per_frame": {"mse": mse_f.tolist()}}


def install() -> None:
    import stcbench

    try:
        from stcbench.models import build_predictor as _  # noqa: F401
    except ImportError:
        mod = sys.modules.get("stcbench.models") or types.ModuleType("stcbench.models")
        mod.__path__ = [str(__import__("pathlib").Path(stcbench.__file__).parent / "models")]
        mod.build_predictor = build_predictor
        sys.modules["stcbench.models"] = mod
    try:
        from stcbench.metrics import PredictionMetrics as _  # noqa: F401,F811
    except ImportError:
        mod = sys.modules.get("stcbench.metrics") or types.ModuleType("stcbench.metrics")
        mod.__path__ = [str(__import__("pathlib").Path(stcbench.__file__).parent / "metrics")]
        mod.PredictionMetrics = PredictionMetrics
        sys.modules["stcbench.metrics"] = mod
