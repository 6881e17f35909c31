"""User-facing errors: one clear message naming the problem and the fix, exit code 2."""


class StcbenchError(Exception):
    """An error caused by user input (files, configs, names). The CLI prints it without a traceback."""

    exit_code = 2


class ConfigError(StcbenchError):
    """A configuration key or value is invalid."""


class DataError(StcbenchError):
    """A dataset file is missing, truncated, corrupt or has the wrong shape, dtype or range."""
