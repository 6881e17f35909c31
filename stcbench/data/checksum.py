"""A checksum of a dataset's files, so that a run record names its data without a machine's path.

`dataset_checksum(name, data_root)` is the SHA-256 over the sorted lines `<relative path> <sha256 of
the file>` of every data file in the dataset's folder (hidden files and folders, such as caches, and
the generator's description `stcbench.json` left out). Hashing gigabytes takes seconds, so each file's digest is cached in
`<folder>/.stcbench_sha256.json`, keyed by its size and modification time; a folder that cannot be
written is hashed every time.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from stcbench.data.fileio import MARKER_NAME
from stcbench.data.specs import get_dataset_spec

CACHE_FILE = ".stcbench_sha256.json"
CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_files(folder: Path) -> list[Path]:
    """Every file below `folder` except hidden ones, those in hidden folders and the marker, sorted."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        hidden = any(part.startswith(".") for part in relative.parts)
        if path.is_file() and not hidden and relative.as_posix() != MARKER_NAME:
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def folder_checksum(folder: Path) -> str | None:
    """`sha256:<hex>` of the folder's files (see the module docstring); None when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    cache = _read_cache(folder / CACHE_FILE)
    fresh, lines = {}, []
    for path in dataset_files(folder):
        relative = path.relative_to(folder).as_posix()
        stat = path.stat()
        key = [stat.st_size, stat.st_mtime_ns]
        entry = cache.get(relative)
        sha = entry[2] if isinstance(entry, list) and entry[:2] == key and len(entry) == 3 else file_sha256(path)
        fresh[relative] = key + [sha]
        lines.append(f"{relative} {sha}\n")
    if not lines:
        return None
    if fresh != cache:
        _write_cache(folder / CACHE_FILE, fresh)
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def dataset_checksum(name: str, data_root: str | os.PathLike | None = None) -> str | None:
    return folder_checksum(get_dataset_spec(name).folder_path(data_root))


def _read_cache(path: Path) -> dict:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(path: Path, cache: dict) -> None:
    from stcbench.atomic import write_text

    try:
        write_text(path, json.dumps(cache, indent=0, sort_keys=True))
    except OSError:            # a read-only data folder: hashed again next time
        pass
