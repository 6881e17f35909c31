"""Recurrent predictor network: patching, cell stack, readout, scheduled sampling."""
from stcbench.models.patch import patchify, unpatchify  # noqa: F401
from stcbench.models.predictor import RecurrentPredictor, build_predictor, count_parameters  # noqa: F401
from stcbench.models.sampling import ScheduledSampling  # noqa: F401
