"""Atomic output: write a temporary file (or folder) beside the target, then rename it over the target.

An interrupted or failed write leaves neither a partial target nor a leftover temporary. What is written
gets the permissions a plain `open()` / `mkdir()` would give it (0666 / 0777 less the umask), not the
owner-only ones of `tempfile`, so results and datasets on a shared machine stay readable by others.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from stcbench.errors import ConfigError

try:
    import fcntl
except ImportError:                      # not POSIX: no advisory locks, one process at a time is the user's care
    fcntl = None


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (setting it to read it back would,
    for a moment, affect files other threads create)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, RecursionError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file name beside `path` (ending in `path`'s own suffix, so that writers that go by
    the extension, numpy's savez or PIL, keep it); on success it replaces `path` in one rename."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as exc:                  # name the file the user asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def replacing_directory(target: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `target` (a folder or nothing) in one
    rename, the old folder removed afterwards. With `replace` False, a `target` that holds files by then (another
    process made it meanwhile) is left as it is: ConfigError, the temporary folder removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if not replace and target.is_dir() and any(target.iterdir()):
            raise ConfigError(f"{target} was made by another process while this one made it; it is left as that "
                              f"process made it (pass --force to replace it)")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Strict JSON (stcbench.strict_json: inf/nan as "inf"/"nan" strings)."""
    from stcbench.strict_json import dumps

    return write_text(path, dumps(data) + "\n")


def save_figure(fig, path: str | os.PathLike, *, dpi: int) -> Path:
    """A matplotlib figure as a PNG file, written atomically."""
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(path)


def blocking_file(path: str | os.PathLike) -> Path | None:
    """The existing file (or link to one) at `path` or at one of its parent folders' places, which keeps a folder
    from being made at `path`; None when nothing does."""
    path = Path(path).absolute()
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return None if candidate.is_dir() else candidate
    return None


DANGLING_LINK = "a symbolic link to nothing (dangling, or a loop of links)"


def is_dangling_link(path: str | os.PathLike) -> bool:
    return os.path.islink(path) and not os.path.exists(path)


def check_output_folder(path: str | os.PathLike, what: str, flag: str) -> None:
    """Before any work: a folder can be made (or is) at `path` (`what`, set by `flag`); else one line naming both."""
    blocker = blocking_file(path)
    if blocker is None:
        return
    if is_dangling_link(blocker):
        raise ConfigError(f"{what} {path}: {blocker} is {DANGLING_LINK}; point it at a folder or choose another {flag}")
    raise ConfigError(f"{what} {path}: {blocker} is a file, not a folder; choose another {flag}")


def check_output_file(path: str | os.PathLike, flag: str, example: str = "metrics.json") -> None:
    """Before any work: a file can be written at `path` (given as `flag`); else one line naming both."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; name a file in it instead, e.g. {path / example}")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        what = "a symbolic link" if path.is_symlink() else "not a regular file (a device, pipe or socket)"
        raise ConfigError(f"{flag} {path} is {what}: the result is written to a new file that replaces what is "
                          f"there, so name a regular file instead, e.g. {path.with_name(example)}")
    check_output_folder(path.parent, flag, flag)
    if path.parent.is_dir():
        _check_writable(path.parent, path, flag)


def refuse_overwriting_inputs(path: str | os.PathLike, flag: str, inputs: dict, example: str) -> None:
    """One line when the output file `path` (given as `flag`) is one of the `inputs` ({flag: path}) a command
    reads: writing it would destroy the data."""
    path = Path(path)
    for input_flag, source in inputs.items():
        if source is not None and path.exists() and Path(source).exists() and path.samefile(source):
            raise ConfigError(f"{flag} {path} is the {input_flag} file; writing it would destroy that input: name "
                              f"another file, e.g. {path.with_name(example)}")


def _check_writable(folder: Path, path: Path, flag: str) -> None:
    """A file can be created in `folder` (tried with a temporary file, removed at once: permissions alone do not
    say, e.g. for root or on a read-only file system)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".stcbench-probe-"):
            pass
    except OSError as exc:
        reason = (exc.strerror or "not writable").lower()
        raise ConfigError(f"{flag} {path}: no file can be written in {folder} ({reason}); choose another "
                          f"{flag}") from None


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an advisory lock on the file `path` (made if missing; never opened through a link, only as a regular
    file), waiting for another process that holds it. Where the platform has no `fcntl`, nothing is locked."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(path, flags, 0o666 & ~_umask())
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file, so not a lock file", str(path))
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)                     # closing the descriptor releases the lock
