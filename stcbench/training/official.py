"""Import checkpoints of the official STC-LIF code (cells.md §13) as stcbench checkpoints.

Accepted inputs: a plain state_dict (`checkpoint.pth`) or the OpenSTL `latest.pth` wrapper
`{'epoch', 'optimizer', 'state_dict', 'scheduler'}`; a `module.` prefix (DataParallel/DDP) is
stripped. Hidden sizes and the filter size are inferred from the weights
(`cell_list.{i}.conv_x.0.weight` [C_i, C_in, k, k]; OpenSTL ConvLSTM: official_convlstm.py); the frame
geometry comes from `--dataset`
or from explicit sizes. Every expected key must be present with the expected shape, and no
unexpected key may remain.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from stcbench.checkpoints import load_checkpoint
from stcbench.errors import ConfigError
from stcbench.training.official_convlstm import (convlstm_cell_options, drop_unused_weights,
                                                 infer_convlstm_architecture, is_convlstm)

LAYER_KEY = re.compile(r"^cell_list\.(\d+)\.(.+)$")
OFFICIAL_CELLS = ("lif", "plif", "glif", "tclif", "lmh", "stclif", "stcplif", "stclmh", "convlstm")


@dataclass
class Geometry:
    in_frames: int
    out_frames: int
    patch_size: int
    channels: int
    height: int
    width: int


def read_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"official checkpoint {str(path)!r} {what}; pass the checkpoint file (checkpoint.pth, or "
                          f"OpenSTL's latest.pth)")
    obj = load_checkpoint(path, hint="pass the official checkpoint.pth or OpenSTL latest.pth")
    if isinstance(obj, dict) and isinstance((obj.get("hyper_parameters") or {}).get("config"), dict):
        raise ConfigError(f"{path} is already an stcbench checkpoint (it holds its run's config); use it as it is "
                          f"with `stcbench test` or `stcbench predict`, no conversion needed")
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]                    # OpenSTL latest.pth wrapper
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{path}: expected a state_dict (name -> tensor) or the OpenSTL wrapper "
                          f"{{'epoch', 'optimizer', 'state_dict', 'scheduler'}}")
    return {_strip_module(k): v for k, v in obj.items()}


def _strip_module(name: str) -> str:
    return name[len("module."):] if name.startswith("module.") else name


def infer_architecture(state: dict[str, torch.Tensor], cell: str | None = None) -> tuple[list[int], int, int]:
    """(num_hidden, filter_size, layer-0 input channels) from the official weights."""
    layers = sorted({int(m.group(1)) for k in state if (m := LAYER_KEY.match(k))})
    if not layers or layers != list(range(len(layers))):
        raise ConfigError("the checkpoint has no consecutive cell_list.{i}.* layers; is it an official "
                          "STC-LIF/OpenSTL spiking model (<NAME>_Model)?")
    if cell is not None and is_convlstm(cell):
        if _has_group_norm(state):
            raise ConfigError("the checkpoint is an official spiking model (a GroupNorm after cell_list.0.conv_x), not "
                              "OpenSTL's ConvLSTM; pass the cell it was trained with, e.g. --cell stclif")
        return _with_readout(state, infer_convlstm_architecture(state, layers))
    if looks_like_convlstm(state):
        raise ConfigError(f"the checkpoint is an OpenSTL ConvLSTM model (four gates in cell_list.0.conv_h, no "
                          f"GroupNorm), not a spiking one; pass --cell convlstm instead of --cell {cell}")
    hidden, kernels, in_channels = [], set(), None
    for i in layers:
        key = f"cell_list.{i}.conv_x.0.weight"
        if key not in state:
            raise ConfigError(f"missing {key}; the checkpoint is not an official spiking model")
        weight = state[key]
        if weight.dim() != 4:
            raise ConfigError(f"{key} has shape {tuple(weight.shape)}, expected [C, C_in, k, k]")
        hidden.append(int(weight.shape[0]))
        kernels.add(int(weight.shape[-1]))
        if i == 0:
            in_channels = int(weight.shape[1])
    if len(kernels) != 1:
        raise ConfigError(f"layers use different filter sizes {sorted(kernels)}; expected one")
    return _with_readout(state, (hidden, kernels.pop(), in_channels))


def _has_group_norm(state: dict[str, torch.Tensor]) -> bool:
    norm = state.get("cell_list.0.conv_x.1.weight")
    return norm is not None and norm.dim() == 1


def looks_like_convlstm(state: dict[str, torch.Tensor]) -> bool:
    """OpenSTL's ConvLSTMCell: conv_h [4C, C, k, k] and no GroupNorm (its LayerNorm weight is [4C, H, W])."""
    recurrent = state.get("cell_list.0.conv_h.0.weight")
    return (recurrent is not None and recurrent.dim() == 4 and recurrent.shape[0] == 4 * recurrent.shape[1]
            and not _has_group_norm(state))


def _with_readout(state: dict[str, torch.Tensor], architecture: tuple[list[int], int, int]):
    if "conv_last.weight" not in state:
        raise ConfigError("missing conv_last.weight (the 1x1 readout); the checkpoint is not an official model")
    return architecture


def geometry_from_args(dataset: str | None, in_frames, out_frames, patch_size, channels, image_size) -> Geometry:
    if dataset is not None:
        from stcbench.data import get_dataset_spec

        spec = get_dataset_spec(dataset)
        base = Geometry(spec.in_frames, spec.out_frames, spec.patch_size, spec.channels, spec.height, spec.width)
    else:
        missing = [flag for flag, v in (("--in-frames", in_frames), ("--out-frames", out_frames),
                                         ("--patch-size", patch_size), ("--channels", channels),
                                         ("--image-size", image_size)) if v is None]
        if missing:
            raise ConfigError(f"give --dataset NAME, or all of {missing} to describe the frames")
        base = Geometry(0, 0, 0, 0, 0, 0)
    values = {"in_frames": in_frames, "out_frames": out_frames, "patch_size": patch_size, "channels": channels}
    for name, value in values.items():
        if value is not None:
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
            setattr(base, name, int(value))
    if image_size is not None:
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        base.height, base.width = int(height), int(width)
    if base.height % base.patch_size or base.width % base.patch_size:
        raise ConfigError(f"image size {base.height}x{base.width} is not divisible by patch size {base.patch_size}")
    return base


def build_config(cell: str, geometry: Geometry, hidden: list[int], filter_size: int, *, dataset: str | None,
                 gradient_detach: int | None, cell_options: dict | None = None):
    """The stcbench `Config` of the converted model (geometry overrides where no dataset matches), checked as a
    config file with the same keys would be."""
    from stcbench.data import get_dataset_spec
    from stcbench.training.config import resolve_config

    spec = get_dataset_spec(dataset or matching_dataset(geometry))
    settings = {"data.dataset": spec.name, "model.cell": cell, "model.num_hidden": list(hidden),
                "model.filter_size": filter_size, "model.gradient_detach": gradient_detach,
                "model.patch_size": geometry.patch_size, "model.cell_options": dict(cell_options or {}),
                "run.scale": "official"}
    if geometry.in_frames != spec.in_frames:
        settings["model.in_frames"] = geometry.in_frames
    if geometry.out_frames != spec.out_frames:
        settings["model.out_frames"] = geometry.out_frames
    if geometry.channels != spec.channels:
        settings["model.channels"] = geometry.channels
    if (geometry.height, geometry.width) != (spec.height, spec.width):
        settings["model.image_size"] = [geometry.height, geometry.width]
    return resolve_config(None, settings)


def matching_dataset(geometry: Geometry) -> str:
    """The dataset with the same frames, else the first one with the same channel count (else mmnist)."""
    from stcbench.data import DATASET_NAMES, get_dataset_spec

    for name in DATASET_NAMES:
        s = get_dataset_spec(name)
        if (s.in_frames, s.out_frames, s.patch_size, s.channels, s.height, s.width) == (
                geometry.in_frames, geometry.out_frames, geometry.patch_size, geometry.channels,
                geometry.height, geometry.width):
            return name
    return next((n for n in DATASET_NAMES if get_dataset_spec(n).channels == geometry.channels), "mmnist")


def _patch_size_hint(in_channels: int, channels: int) -> str:
    """OpenSTL's ConvLSTM configs patch differently from the STC-LIF paper (4 on Moving MNIST, 2 on TaxiBJ/KTH)."""
    patch = round((in_channels / channels) ** 0.5)
    return f" (these weights fit --patch-size {patch})" if patch >= 1 and patch * patch * channels == in_channels else ""


def default_gradient_detach(cell: str, dataset: str | None) -> int | None:
    """Paper Table 8: STC cells (those that take `gradient_detach`) use 0 on Moving MNIST and 1 on TaxiBJ/KTH
    (forward identical)."""
    from stcbench.cells import get_cell_info

    if "gradient_detach" not in get_cell_info(cell).parameters():
        return None
    if dataset is None:
        return 1
    from stcbench.data import get_dataset_spec

    return 0 if get_dataset_spec(dataset).name == "mmnist" else 1


def official_to_ours(state: dict[str, torch.Tensor], net) -> dict[str, torch.Tensor]:
    """Map official names to the predictor's names (identity unless the models package says otherwise)."""
    mapper = getattr(net, "map_official_state_dict", None)
    return mapper(state) if callable(mapper) else dict(state)


def verify_state_dict(mapped: dict[str, torch.Tensor], net) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
        raise ConfigError("the checkpoint does not match the cell: " + "; ".join(parts) +
                          ". Check --cell (official cells: " + ", ".join(OFFICIAL_CELLS) + ")")
    wrong = [f"{k}: checkpoint {tuple(mapped[k].shape)} vs model {tuple(v.shape)}"
             for k, v in expected.items() if tuple(mapped[k].shape) != tuple(v.shape)]
    if wrong:
        raise ConfigError("shape mismatch: " + "; ".join(wrong[:6]) + ". Check --patch-size/--channels/--cell")


def convert(reference: str | Path, output: str | Path, *, cell: str, dataset: str | None = None,
            in_frames: int | None = None, out_frames: int | None = None, patch_size: int | None = None,
            channels: int | None = None, image_size=None, gradient_detach: int | None = None,
            report=None) -> Path:
    """Write an stcbench checkpoint (usable by `test` and `predict`) from official weights.
    `report(line)` is told which unused OpenSTL weights were dropped (OpenSTL ConvLSTM)."""
    import lightning

    from stcbench.cells.registry import resolve_name
    from stcbench.engine.io import atomic_torch_save
    from stcbench.training.module import VideoPredictionModule

    cell = resolve_name(cell)
    state = read_official_state_dict(reference)
    hidden, filter_size, in_channels = infer_architecture(state, cell)
    dropped: list[str] = []
    if is_convlstm(cell):
        state, dropped = drop_unused_weights(state, hidden, filter_size)
    geometry = geometry_from_args(dataset, in_frames, out_frames, patch_size, channels, image_size)
    expected_in = geometry.patch_size ** 2 * geometry.channels
    if in_channels != expected_in:
        raise ConfigError(f"layer 0 takes {in_channels} input channels but patch size {geometry.patch_size} and "
                          f"{geometry.channels} image channel(s) give {expected_in}; check --patch-size/--channels "
                          f"or --dataset{_patch_size_hint(in_channels, geometry.channels)}")
    readout = tuple(state["conv_last.weight"].shape)
    if readout != (expected_in, hidden[-1], 1, 1):
        raise ConfigError(f"conv_last.weight has shape {readout}, expected {(expected_in, hidden[-1], 1, 1)}")
    if gradient_detach is None:
        gradient_detach = default_gradient_detach(cell, dataset)
    config = build_config(cell, geometry, hidden, filter_size, dataset=dataset, gradient_detach=gradient_detach,
                          cell_options=convlstm_cell_options(state) if is_convlstm(cell) else None)
    module = VideoPredictionModule(config)
    mapped = official_to_ours(state, module.net)
    verify_state_dict(mapped, module.net)
    checkpoint = {
        "state_dict": {f"net.{k}": v.detach().clone() for k, v in mapped.items()},
        "hyper_parameters": {"config": module.config.to_dict()},
        "pytorch-lightning_version": lightning.__version__,
        "epoch": -1,
        "global_step": 0,
        "stcbench": None,
        "converted_from": {"file": str(reference), "keys": len(state),
                           "dtype": str(next(iter(state.values())).dtype), "dropped": dropped},
    }
    output = Path(output)
    atomic_torch_save(output, checkpoint)
    if dropped and report is not None:
        report(f"dropped {len(dropped)} weights OpenSTL's ConvLSTM never uses: {', '.join(dropped)}")
    return output
