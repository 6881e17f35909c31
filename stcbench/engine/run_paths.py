"""Paths in run records (metrics.json): relative to the run directory, so that a run folder can be
moved or committed and still be read.

A file inside the run directory is recorded as e.g. "checkpoints/best.ckpt"; a path the user gave
that lies outside it (the data root) is recorded as the user gave it. Older records held absolute
or repository-relative paths; `resolve_in_run` still reads those.
"""
from __future__ import annotations

from pathlib import Path


def relative_to_run(path: str | Path, run_dir: str | Path) -> str:
    """`path` relative to `run_dir` (POSIX separators), or `path` as given when it lies outside."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path(run_dir).resolve()).as_posix()
    except ValueError:
        return str(path)


def resolve_in_run(recorded: str | None, run_dir: str | Path) -> Path | None:
    """A path read from a run record as a usable path (None when nothing is recorded).

    Relative paths are taken against `run_dir`. For an old record (absolute or relative to some
    other folder) that no longer exists, the part after the run directory's own name is tried
    inside `run_dir`, which finds the file again after the run folder was moved.
    """
    if not recorded:
        return None
    run_dir = Path(run_dir)
    path = Path(recorded)
    candidates = [path if path.is_absolute() else run_dir / path]
    tail = _after_run_name(path, run_dir.name)
    if tail is not None:
        candidates.append(run_dir / tail)
    return next((c for c in candidates if c.exists()), candidates[0])


def _after_run_name(path: Path, run_name: str) -> Path | None:
    parts = path.parts
    positions = [i for i, part in enumerate(parts[:-1]) if part == run_name]
    return Path(*parts[positions[-1] + 1:]) if positions else None


def run_name_problem(name: str | None) -> str | None:
    """What is wrong with a run name (None: fine): it must be one folder name inside the output directory,
    without separators, `..`, or a leading dot."""
    if name is None:
        return None
    bad = (not name.strip() or "/" in name or "\\" in name or name.startswith(".") or name != name.strip()
           or any(ord(c) < 32 or ord(c) == 127 for c in name) or len(name.encode("utf-8")) > 200)
    if not bad:
        return None
    return ("is not a plain folder name; use letters, digits, '-' and '_' (no '/', no leading '.', no control "
            "characters such as a newline, at most 200 bytes, not empty): "
            "the run is written to <output_dir>/<dataset>/<cell>/<name> (memory probes: "
            "<output_dir>/memory/<task>_T<length>/<cell>/<name>)")
