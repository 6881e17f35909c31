"""The single `stcbench` entry point.

Each sub-command lives in `stcbench/commands/<name>.py` and exposes
`register(subparsers)` (adds its parser and sets `func`) — adding a command takes one file
plus one line in COMMANDS.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from stcbench.checkpoints import checkpoint_trust
from stcbench.errors import StcbenchError
from stcbench.plugin_consent import consent_to_plugins, plugins_named

COMMANDS = (
    "fit",
    "test",
    "predict",
    "evaluate",
    "cells",
    "data",
    "table",
    "bench",
    "profile",
    "convert_official",
    "demo",
)


class OneLineParser(argparse.ArgumentParser):
    """A command-line mistake is one line on stderr naming the problem and where the options are listed,
    exit status 2 (argparse would print the whole usage block first). Sub-command parsers are of this
    class too (argparse makes them of their parent's class)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="stcbench",
        description="Benchmark spiking recurrent neurons on spatio-temporal prediction.",
    )
    from stcbench import __version__

    parser.add_argument("--version", action="version", version=f"stcbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"stcbench.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"stcbench.commands.{name}":
                continue  # command not available in this build
            raise
        module.register(subparsers)
    parser.set_defaults(command_parsers=subparsers.choices)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:             # named by the command's own parser, which lists that command's options
        command = args.command_parsers.get(args.command, parser) if args.command else parser
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with checkpoint_trust(getattr(args, "trust_checkpoint", False)), consent_to_plugins(plugins_named(args)):
            result = args.func(args)
    except StcbenchError as exc:
        print(f"stcbench {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if not is_file_system_error(exc):
            raise
        print(f"stcbench {args.command}: error: {file_system_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if is_out_of_memory(exc):
            print(f"stcbench {args.command}: error: out of memory ({' '.join(str(exc).split())[:300]}): the command "
                  f"asks for more memory than this machine has; lower the sizes it uses (data.seq_len, "
                  f"data.batch_size, model.num_hidden, ...)", file=sys.stderr)
            return 2
        if is_failed_checkpoint_write(exc):
            print(f"stcbench {args.command}: error: a checkpoint could not be written ({' '.join(str(exc).split())[:200]}"
                  f"): most often a full disk; free some space, then resume the run with `stcbench fit --ckpt-path "
                  f"<run folder>` (its earlier checkpoints are whole)", file=sys.stderr)
            return 2
        if not is_trainer_misconfiguration(exc):
            raise
        text = " ".join(str(exc).split())
        hint = ("the task's module must log that metric (Task.monitor) every validation epoch"
                if "monitored key" in text else "a trainer.* setting; change it with --set")
        print(f"stcbench {args.command}: error: {text} ({hint})", file=sys.stderr)
        return 2
    return int(result or 0)


def is_failed_checkpoint_write(exc: Exception) -> bool:
    """torch's writer failing mid-file (a full disk reads as a stream error, not as an OSError)."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(sign in text for sign in ("PytorchStreamWriter failed",
                                                                          "iostream error", "unexpected pos"))


def is_out_of_memory(exc: Exception) -> bool:
    """numpy's or Python's MemoryError, or torch's allocator failing (CPU or GPU)."""
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)))


def is_trainer_misconfiguration(exc: Exception) -> bool:
    """Lightning's own check of a trainer setting against the data (e.g. limit_train_batches too small for the
    split), found when training starts: a message that names the setting and its fix."""
    return type(exc).__name__ == "MisconfigurationException" and type(exc).__module__.startswith("lightning")


def is_file_system_error(exc: OSError) -> bool:
    """A path the user named cannot be read or written (permissions, read-only, full disk, a folder where a
    file should be, ...): the user's to fix, so one line rather than a traceback."""
    import errno

    return exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EISDIR,
                         errno.ENOTDIR, errno.ENOENT, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST)


def file_system_message(exc: OSError) -> str:
    import errno

    from stcbench.atomic import DANGLING_LINK, is_dangling_link

    where = exc.filename if exc.filename is not None else "a file"
    fixes = {errno.EACCES: "check its permissions or choose another folder",
             errno.EPERM: "check its permissions or choose another folder",
             errno.EROFS: "choose a folder on a writable file system",
             errno.ENOSPC: "free some space or choose another folder",
             errno.EDQUOT: "free some space or choose another folder",
             errno.EISDIR: "name a file, not a directory",
             errno.ENOTDIR: "a part of the path is a file, not a directory",
             errno.EEXIST: "a file stands where a folder is needed; choose another path"}
    fix = fixes.get(exc.errno, "check the path")
    if exc.errno == errno.EEXIST and exc.filename is not None and is_dangling_link(exc.filename):
        return f"{where}: {DANGLING_LINK}; point it at a folder or choose another path"
    return f"{where}: {(exc.strerror or 'error').lower()}; {fix}"


if __name__ == "__main__":
    sys.exit(main())
