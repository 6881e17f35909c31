"""`PredictionMetrics`: the prediction metrics as a torchmetrics Metric (DDP "sum" reduction of every state)."""
from __future__ import annotations

from torchmetrics import Metric

from stcbench.metrics.prediction import PredictionState


class PredictionMetrics(PredictionState, Metric):
    __doc__ = PredictionState.__doc__

    full_state_update = False
    higher_is_better = None
    is_differentiable = False
