"""Strict JSON for every file and printout of stcbench: no `Infinity` / `NaN` literals.

A non-finite float is written as the string "inf", "-inf" or "nan". An infinite value is a
real result, not an error: the PSNR of a frame predicted exactly is +inf (metrics.md §3),
so a set of frames holding one has `"psnr": "inf"` and counts it in `psnr_inf_frames`
(`psnr_finite` is the mean over the other frames). `number()` reads such a field back,
`restore_non_finite()` a whole structure of numbers.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

NON_FINITE = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def to_jsonable(value: Any) -> Any:
    """Tensors/arrays -> lists, numpy scalars -> Python numbers, paths -> strings,
    inf/nan -> "inf" / "-inf" / "nan"."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Path):
        return str(value)
    converted = _array_to_python(value)
    return value if converted is value else to_jsonable(converted)


def _array_to_python(value: Any) -> Any:
    """torch/numpy values as plain Python (only when those libraries are already loaded)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return value.tolist()
    if numpy is not None and isinstance(value, numpy.generic):
        return value.item()
    return value


def dumps(value: Any, *, indent: int | None = 2, **options) -> str:
    """Strict JSON text of `value` (raises ValueError if a non-finite float slipped through)."""
    return json.dumps(to_jsonable(value), indent=indent, allow_nan=False, **options)


def number(value: Any) -> float | None:
    """A number read from stcbench JSON: ints/floats as they are, "inf"/"-inf"/"nan" as floats,
    anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return NON_FINITE.get(value.strip().lower())
    return None


def restore_non_finite(value: Any) -> Any:
    """The inverse of `to_jsonable` for numbers: "inf"/"-inf"/"nan" strings back to floats."""
    if isinstance(value, dict):
        return {k: restore_non_finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [restore_non_finite(v) for v in value]
    if isinstance(value, str) and value.strip().lower() in NON_FINITE:
        return NON_FINITE[value.strip().lower()]
    return value
