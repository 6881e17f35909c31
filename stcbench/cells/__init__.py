"""Spiking recurrent cells and their registry.

Importing this package registers every cell module listed in CELL_MODULES.
"""
from stcbench.cells.registry import (  # noqa: F401
    CellInfo,
    create_cell,
    get_cell_info,
    list_cells,
    normalize_name,
    register_cell,
)
from stcbench.cells.base import RecurrentCell, SpikingCell  # noqa: F401

import importlib

CELL_MODULES = ("lif", "plif", "glif", "tclif", "lmh", "stc", "alif", "celif", "bpsta", "convlstm")

for _name in CELL_MODULES:
    try:
        importlib.import_module(f"stcbench.cells.{_name}")
    except ModuleNotFoundError as _exc:  # a module not written yet in this checkout
        if _exc.name != f"stcbench.cells.{_name}":
            raise
