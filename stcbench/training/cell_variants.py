"""Checkpoints of a cell whose default arithmetic changed since they were written.

`convlstm` added Shi et al.'s forget-gate bias of 1 until its default became OpenSTL's cell (no
bias); the bias is now `variant: original`. Checkpoints written since record the variant their
cells ran (`checkpoint["stcbench"]["cell_variant"]`); one written by stcbench before that records
none, so unless its config names a variant it was trained as `original`. Converted official
checkpoints carry no `stcbench` state and are not affected.
"""
from __future__ import annotations

import copy
import warnings

FORMER_DEFAULTS = {"convlstm": "original"}     # cell -> the variant its unrecorded checkpoints ran


def recorded_variant(module) -> str | None:
    """The variant of the module's cells, stored with every checkpoint it writes."""
    cells = getattr(getattr(module, "net", None), "cell_list", None)
    return getattr(cells[0], "variant", None) if cells else None


def former_default(checkpoint: dict, config) -> str | None:
    """The variant an unrecorded stcbench checkpoint was trained with, where the config does not name one
    and the cell's default has changed since; else None."""
    from stcbench.cells.registry import resolve_name

    state = checkpoint.get("stcbench")
    if not isinstance(state, dict) or "cell_variant" in state:
        return None
    if "variant" in (config.model.cell_options or {}):
        return None
    try:
        return FORMER_DEFAULTS.get(resolve_name(config.model.cell))
    except Exception:           # an unknown cell is reported where the network is built
        return None


def with_former_default(checkpoint: dict, config, path):
    """`config` with the variant an unrecorded checkpoint was trained with (and a warning saying so)."""
    variant = former_default(checkpoint, config)
    if variant is None:
        return config
    config = copy.deepcopy(config)
    config.model.cell_options = {**(config.model.cell_options or {}), "variant": variant}
    warnings.warn(f"{path}: written before {config.model.cell} recorded its variant; it was trained as "
                  f"variant {variant!r} (forget-gate bias 1) and is loaded as such", UserWarning, stacklevel=3)
    return config


def warn_on_resume(checkpoint: dict, config) -> None:
    """Resuming an unrecorded checkpoint into a network already built with the new default."""
    variant = former_default(checkpoint, config)
    if variant is not None:
        warnings.warn(f"this {config.model.cell} checkpoint was trained as variant {variant!r} (forget-gate "
                      f"bias 1) but the run builds the default variant; resume with "
                      f"--set model.cell_options.variant={variant} to continue the same network",
                      UserWarning, stacklevel=3)
