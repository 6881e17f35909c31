"""Placeholder for the spatio-temporal circuit wrapper (implemented in the cell zoo work)."""


def is_stc_name(key: str) -> bool:
    return False


def info_for(key: str):
    raise KeyError(key)
