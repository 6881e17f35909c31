"""Reading checkpoints without letting them run code.

A `.ckpt`/`.pth` file is a pickle, and unpickling can call any Python function the file names.
Every checkpoint stcbench reads goes through `load_checkpoint`, which unpickles with
`torch.load(weights_only=True)`: tensors, numbers, strings, lists, tuples and dicts only. That is
all the checkpoints written by `stcbench fit` and `stcbench convert-official` hold. A file that needs
more is refused with one line naming it; the user may load it anyway with `--trust-checkpoint`
(commands that read checkpoints accept it), which is only safe for files from a trusted source.

torch is imported inside the functions, so that argument parsing stays fast.
"""
from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path
from typing import Any

from stcbench.errors import ConfigError

TRUST_FLAG = "--trust-checkpoint"
TRUST_HELP = ("trust the files this command reads: load checkpoints that hold arbitrary Python objects and import "
              "the plugins a config, run or checkpoint names (either can run any code: use only for files from a "
              "source you trust; stcbench's own checkpoints never need it)")

_trusted = [False]


class UnsafeCheckpointError(ConfigError):
    """A checkpoint holds objects whose unpickling could run code."""


@contextlib.contextmanager
def checkpoint_trust(enabled: bool):
    """Within the block, checkpoints are unpickled without restriction when `enabled`."""
    previous = _trusted[0]
    _trusted[0] = bool(enabled)
    try:
        yield
    finally:
        _trusted[0] = previous


def trusted() -> bool:
    return _trusted[0]


def add_trust_argument(parser) -> None:
    parser.add_argument(TRUST_FLAG, dest="trust_checkpoint", action="store_true", help=TRUST_HELP)


def load_checkpoint(path: str | Path, *, hint: str = "pass a .ckpt written by `stcbench fit`") -> Any:
    """The unpickled contents of `path`, loaded on the CPU; refuses objects beyond plain data unless trusted."""
    import pickle

    import torch

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"checkpoint {str(path)!r} is a directory; {hint}")
    if path.exists() and not path.is_file():          # reading a pipe or a device would block or never end
        raise ConfigError(f"checkpoint {str(path)!r} is not a regular file (a pipe, socket or device); {hint}")
    try:
        with warnings.catch_warnings():       # torch's note on a raw pickle's protocol says nothing to the user
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(str(path), map_location="cpu", weights_only=not trusted())
    except pickle.UnpicklingError as exc:
        refused = _refused_object(str(exc)) or _raw_pickle_global(path)
        if refused:
            raise UnsafeCheckpointError(
                f"refused to load {path}: it holds a reference to {refused}, which unpickling could use to run "
                f"code; if the file comes from a source you trust, pass {TRUST_FLAG}") from None
        raise ConfigError(f"cannot read checkpoint {str(path)!r} (not a PyTorch checkpoint, or one holding "
                          f"objects a safe load does not read); {hint}") from None
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {str(path)!r} does not exist; {hint}") from None
    except PermissionError:
        raise ConfigError(f"checkpoint {str(path)!r} is not readable (permission denied); check its "
                          f"permissions") from None
    except Exception as exc:        # truncated zip, wrong format, ...: torch raises many types
        raise ConfigError(f"cannot read checkpoint {str(path)!r}: not a PyTorch checkpoint, or a damaged one "
                          f"({_first_line(exc)}); {hint}") from None


def _refused_object(message: str) -> str | None:
    """The global (function or class) a safe load refused, as torch names it."""
    found = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"Unsupported global: ?`?([\w.]+)", message)
    return found.group(1) if found else None


def _raw_pickle_global(path: Path) -> str | None:
    """The first function or class beyond those a safe load allows that a raw pickle (not torch's zip format)
    names, read without unpickling it; None where that cannot be told for sure."""
    import pickletools
    import zipfile

    if zipfile.is_zipfile(path):
        return None
    allowed = _safely_loaded_globals()
    strings: list[str | None] = []         # the strings pushed, None for a value fetched from the memo
    try:
        with open(path, "rb") as file:
            for opcode, argument, _ in pickletools.genops(file):
                name = None
                if opcode.name in ("GLOBAL", "INST"):
                    name = str(argument).replace(" ", ".")
                elif opcode.name == "STACK_GLOBAL":
                    if len(strings) < 2 or None in strings[-2:]:
                        return None             # its names come from the memo: not told for sure
                    name = f"{strings[-2]}.{strings[-1]}"
                if name is not None and name not in allowed:
                    return name
                if opcode.name in ("BINGET", "LONG_BINGET", "GET"):
                    strings.append(None)
                elif isinstance(argument, str):
                    strings.append(argument)
    except Exception:                       # not a pickle at all, or a damaged one: the generic message stands
        return None
    return None


def _safely_loaded_globals() -> set[str]:
    """The globals torch's weights-only unpickler accepts (so a raw pickle's refused reference is another one)."""
    try:
        from torch import _weights_only_unpickler

        return set(_weights_only_unpickler._get_allowed_globals())
    except Exception:                       # another torch: name the first global of all
        return set()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_weights_into(module, checkpoint: Any, path: str | Path) -> None:
    """`checkpoint`'s state_dict copied into `module`. A file that holds no weights, or the weights of another
    network than the one its config describes, is one ConfigError naming it (not torch's error)."""
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise ConfigError(f"{path} holds no weights (no state_dict of tensors); pass a .ckpt written by `stcbench "
                          f"fit` or `stcbench convert-official`")
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: its weights do not fit the network its config describes "
                          f"({_first_line(exc)[:300]}); pass a checkpoint of that network") from None
