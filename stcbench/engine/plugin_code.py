"""Which plugin code a run's cell was trained with: the SHA-256 of the file that defines it, kept in the run folder.

A neuron from a plugin can change between two runs while its name, its cell options and every config key stay the
same; its runs would then be taken for seeds of one setting, or one run resumed with other code. The run folder's
`plugin_code.json` records {file name: SHA-256} of the source file of the run's cell (for `stc_<cell>`, of the
wrapped cell) when that cell comes from outside stcbench; built-in cells record nothing (their code is stcbench's
version). A resume, and bench taking an earlier run for its plan, refuse a cell whose file has changed since, and
tables group seeds by the digests (reports.runs.setting_key), whatever folder the file sits in.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

from stcbench.errors import ConfigError
from stcbench.record_io import read_text

PLUGIN_CODE_FILE = "plugin_code.json"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def cell_source(cell: str) -> Path | None:
    """The file defining `cell` (for a derived `stc_<cell>`, the wrapped cell's) when it is not stcbench's own."""
    from stcbench.cells.registry import get_cell_info

    info = get_cell_info(cell)
    base = info.extra.get("base")
    if base:
        info = get_cell_info(base)
    try:
        path = Path(inspect.getsourcefile(info.factory) or "").resolve()
    except (TypeError, OSError):
        return None
    return None if PACKAGE_ROOT in path.parents or not path.is_file() else path


def digests(cell: str | None) -> dict[str, str]:
    """{file name: sha256} of the plugin file defining `cell`; {} for a built-in cell."""
    try:
        path = cell_source(cell) if cell else None
    except ConfigError:                     # an unknown cell: the run's own check says so
        return {}
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()} if path is not None else {}


def read_recorded(run_dir: Path) -> dict[str, str]:
    """The digests a run folder recorded; {} for a run of a built-in cell (or from before they were recorded)."""
    try:
        recorded = json.loads(read_text(Path(run_dir) / PLUGIN_CODE_FILE))
    except (OSError, ValueError, RecursionError):
        return {}
    return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}


def record(run_dir: Path, cell: str | None) -> None:
    """Write the digests of `cell`'s plugin file into the run folder (nothing for a built-in cell)."""
    from stcbench.engine.io import atomic_write_text

    found = digests(cell)
    if found:
        atomic_write_text(Path(run_dir) / PLUGIN_CODE_FILE, json.dumps(found, indent=2, sort_keys=True) + "\n")


def code_key(recorded: dict[str, str]) -> list[str]:
    """What two runs' code must share to be seeds of one setting: the digests, wherever the files were."""
    return sorted(recorded.values())


def changed(run_dir: Path, cell: str | None) -> list[str]:
    """The plugin files whose content differs from what the run in `run_dir` was trained with."""
    recorded, now = read_recorded(run_dir), digests(cell)
    return [name for name, digest in now.items() if name in recorded and recorded[name] != digest]


def refuse_changed(run_dir: Path, cell: str | None, what: str) -> None:
    """One ConfigError when the plugin file of `cell` changed since the run in `run_dir` started; `what` says what
    would happen with it (e.g. "a resume would train it on with other code")."""
    different = changed(run_dir, cell)
    if different:
        raise ConfigError(f"the plugin file {different[0]} defining cell {cell} has changed since the run {run_dir} "
                          f"was trained with it (its SHA-256 differs from the run's {PLUGIN_CODE_FILE}); {what}. "
                          f"Restore the file as it was, or start a new run (another --run-name, --out or --tag) for "
                          f"the new code")
