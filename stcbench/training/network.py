"""The one place where the training code meets `stcbench.models` (RecurrentPredictor)."""
from __future__ import annotations

import dataclasses
import torch
from torch import nn

from stcbench.errors import ConfigError


def build_network(config):
    """(RecurrentPredictor, DatasetSpec) for a validated `Config`."""
    from stcbench.models import build_predictor

    spec = network_spec(config)
    return build_predictor(config.model, spec), spec


def flops_for_config(config) -> int:
    """fvcore-style MACs of one test sequence (batch 1, T_in + T_out - 1 steps) for a run `Config` (metrics.json)."""
    from stcbench.models.cost import sequence_flops

    return sequence_flops(*build_network(config))


def network_spec(config):
    """The dataset's geometry with the `model.in_frames/out_frames/channels/image_size` overrides applied."""
    from stcbench.data import get_dataset_spec

    spec = get_dataset_spec(config.data.dataset)
    m = config.model
    changes = {}
    if m.in_frames is not None:
        changes["in_frames"] = m.in_frames
    if m.out_frames is not None:
        changes["out_frames"] = m.out_frames
        changes["train_out_frames"] = None
    if m.channels is not None:
        changes["channels"] = m.channels
    if m.image_size is not None:
        changes["height"], changes["width"] = m.image_size
    if m.patch_size is not None:
        changes["patch_size"] = m.patch_size
    spec = dataclasses.replace(spec, **changes) if changes else spec
    if spec.height is not None and (spec.height % spec.patch_size or spec.width % spec.patch_size):
        raise ConfigError(f"patch_size {spec.patch_size} does not divide the {config.data.dataset} frames "
                          f"({spec.height}x{spec.width}); choose a model.patch_size that divides both sides")
    return spec


def check_frames_match_the_data(config) -> None:
    """`model.image_size` (a geometry override for converted official checkpoints and arrays) must equal the
    frame size of the dataset a run reads: frames are not resized. So must model.channels and
    model.in_frames/out_frames (the channels and frame counts of a sequence come from the data)."""
    from stcbench.data import get_dataset_spec

    size = config.model.image_size
    spec = get_dataset_spec(config.data.dataset)
    if size is not None and spec.height is not None and tuple(int(s) for s in size) != (spec.height, spec.width):
        raise ConfigError(f"model.image_size {list(size)} contradicts the {config.data.dataset} frames, which are "
                          f"{spec.height}x{spec.width}; frames are not resized, so leave model.image_size null "
                          f"(or set it to [{spec.height}, {spec.width}])")
    channels = config.model.channels
    if channels is not None and spec.channels is not None and int(channels) != spec.channels:
        raise ConfigError(f"model.channels {channels} contradicts the {config.data.dataset} frames, which have "
                          f"{spec.channels} channel{'s' * (spec.channels != 1)}; leave model.channels null (or set "
                          f"it to {spec.channels})")
    for key in ("in_frames", "out_frames"):
        value, data = getattr(config.model, key), getattr(spec, key)
        if value is not None and value != data:
            raise ConfigError(f"model.{key} {value} contradicts the {config.data.dataset} sequences, which hold "
                              f"{spec.in_frames} context and {spec.out_frames} future frames; the frame counts come "
                              f"from the data, so leave model.{key} null (or set it to {data})")


def network_outputs(net: nn.Module, frames: torch.Tensor, mask: torch.Tensor, return_traces: bool = False):
    """Training pass (§1.3): all T_total-1 outputs [B, T-1, C, H, W] for `frames` [B, T, C, H, W]
    (and the per-layer traces with `return_traces`)."""
    return net(frames, mask, return_traces=True) if return_traces else net(frames, mask)


def network_predict(net: nn.Module, context: torch.Tensor, out_frames: int) -> torch.Tensor:
    """Autoregressive prediction (§1.6): [B, out_frames, C, H, W] after `context` [B, T_in, C, H, W]."""
    return net.predict(context, out_frames)
