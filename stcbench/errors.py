"""User-facing errors: one clear message naming the problem and the fix, exit code 2."""


class StcbenchError(Exception):
    """An error caused by user input (files, configs, names). The CLI prints it without a traceback."""

    exit_code = 2


class ConfigError(StcbenchError):
    """A configuration key or value is invalid."""


class DataError(StcbenchError):
    """A dataset file is missing, truncated, corrupt or has the wrong shape, dtype or range."""


def array_load_problem(exc: BaseException) -> str:
    """Why numpy could not load an array, in words for the user (numpy's own advice to load pickled
    objects would run code from the file, so it is not passed on)."""
    text = str(exc)
    if "allow_pickle" in text or "Python objects" in text:
        return "it holds Python objects (dtype object), not numbers, and such files are not loaded because " \
               "unpickling them could run code"
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__
