"""Cell names without importing the cells (which import torch), so that argument parsing and
every `--help` stay fast. `BUILTIN_CELLS` is checked against the registry by the tests."""
from __future__ import annotations

import re

BUILTIN_CELLS = ("alif", "bpsta", "celif", "convlstm", "glif", "lif", "lmh", "plif", "stclif", "stclmh", "stcplif",
                 "tclif")


def normalize_name(name: str) -> str:
    """`STC-LIF`, `stc_lif`, `STCLIF` and `stclif` name the same cell."""
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def cell_names_help() -> str:
    return ", ".join(BUILTIN_CELLS)
