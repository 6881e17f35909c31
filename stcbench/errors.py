"""User-facing errors: one clear message naming the problem and the fix, exit code 2."""


class StcbenchError(Exception):
    """An error caused by user input (files, configs, names). The CLI prints it without a traceback."""

    exit_code = 2


class ConfigError(StcbenchError):
    """A configuration key or value is invalid."""


class RunBusyError(ConfigError):
    """Another process trains the run (it holds the run's lock)."""


class DataError(StcbenchError):
    """A dataset file is missing, truncated, corrupt or has the wrong shape, dtype or range."""


class NonFiniteLossError(StcbenchError):
    """Training produced a NaN/inf loss."""


def array_load_problem(exc: BaseException, path=None) -> str:
    """Why numpy could not load an array (from `path`, when given), in words for the user (numpy's own advice to
    load pickled objects would run code from the file, so it is not passed on)."""
    text = str(exc)
    if path is not None and not _numpy_file(path):
        return "it is not a numpy file (.npy or .npz): numpy reads anything else as pickled objects, which are not " \
               "loaded because unpickling them could run code"
    if "allow_pickle" in text or "Python objects" in text:
        return "it holds Python objects (dtype object), not numbers, and such files are not loaded because " \
               "unpickling them could run code"
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _numpy_file(path) -> bool:
    """True when the file starts as a .npy (magic string) or .npz (zip) file does, or cannot be read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
    except OSError:
        return True
    return head.startswith((b"\x93NUMPY", b"PK"))
