"""Reading the small files a run or a user hands stcbench (configs, records), safely.

`read_text` opens without blocking and reads only a regular file of bounded size: a FIFO, a device such as
/dev/zero (or a link to one) or a file larger than the bound is an OSError naming the problem, as an unreadable file
is, instead of a read that blocks forever or fills the memory.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

RECORD_LIMIT = 64 << 20          # bytes: far above any config or run record stcbench writes


def read_bytes(path: str | Path, limit: int = RECORD_LIMIT) -> bytes:
    """The contents of the regular file `path` (links followed), at most `limit` bytes; OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a pipe, socket or device)", str(path))
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise OSError(errno.EFBIG, f"larger than {limit:,} bytes, more than a config or record holds",
                              str(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | Path, limit: int = RECORD_LIMIT) -> str:
    """`read_bytes` decoded as UTF-8 (a UnicodeDecodeError, a ValueError, where it is not)."""
    return read_bytes(path, limit).decode("utf-8")
