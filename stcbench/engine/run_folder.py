"""The life of a run folder: named, created exclusively, found again from a checkpoint, removed when a
run fails on bad input before its first checkpoint, shared with DDP worker processes.

    <run.output_dir>/<task's folders>/<name>/
        config.yaml                 the resolved config (portable paths)
        checkpoints/last.ckpt       every epoch (resume from it with --ckpt-path)
        checkpoints/best.ckpt       lowest validation loss
        logs/                       CSV, TensorBoard, wandb
        metrics.json                written last, atomically: a folder without it is unfinished
        .lock                       while a process trains the run (a second fit or resume is refused)
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import os
import stat
import shutil
import socket
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:              # pragma: no cover - not POSIX: runs are not locked
    fcntl = None

from stcbench.engine.cluster import is_rank_zero
from stcbench.errors import ConfigError, RunBusyError
from stcbench.record_io import read_text

RUN_DIR_ENV = "STCBENCH_RUN_DIR"     # shares the run folder with DDP worker processes
LOCK_FILE = ".lock"


def default_run_name(seed: int) -> str:
    return f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-seed{seed}"


def planned_run_dir(base: Path, name: str | None, seed: int) -> Path:
    """`base`/<name>; without a name a new timestamped one (suffixed -2, -3, ... when taken). DDP workers
    take the folder rank zero chose."""
    shared = os.environ.get(RUN_DIR_ENV)
    if shared and not is_rank_zero():
        return Path(shared)
    run_dir = base / (name or default_run_name(seed))
    if name is None:
        suffix, first = 1, run_dir
        while run_dir.exists():
            suffix += 1
            run_dir = base / f"{first.name}-{suffix}"
    return run_dir


def refuse_existing_run(run_dir: Path) -> None:
    if not run_dir.exists():
        return
    if run_dir.is_dir() and not run_dir.is_symlink() and not _has_run_records(run_dir):
        raise ConfigError(f"run directory {run_dir} already exists and is not a run's folder (no config.yaml, "
                          f"metrics.json or checkpoint of a run); choose another --run-name or --output-dir")
    refuse_if_busy(run_dir)                   # another process training it is named (RunBusyError), not guessed at
    if (run_dir.is_dir() and not (run_dir / "metrics.json").exists()
            and not any((run_dir / "checkpoints").glob("*.ckpt"))):
        raise ConfigError(f"run directory {run_dir} already exists and holds no checkpoint to resume (the run "
                          f"stopped before its first epoch ended); replace it with --overwrite, or choose another "
                          f"--run-name{interrupted_overwrite_note(run_dir)}")
    raise ConfigError(f"run directory {run_dir} already exists; resume it with `{resume_command(run_dir)}`, "
                      f"choose another --run-name, or replace it with --overwrite")


def refuse_replacing_other_than_a_run(run_dir: Path) -> None:
    """--overwrite replaces one run's folder (finished, stopped, or stopped before its first checkpoint), never a
    folder that is not a run's, nor one that holds other runs."""
    if run_dir.is_symlink() or not run_dir.is_dir():
        return                                    # refuse_non_folder names a file or a link
    if not _has_run_records(run_dir):
        raise ConfigError(f"--overwrite replaces a run's folder; {run_dir} is not one (no config.yaml, metrics.json "
                          f"or checkpoint of a run): choose another --run-name or --output-dir, or move the folder "
                          f"away yourself")
    nested = sorted(str(config.parent) for config in run_dir.rglob("config.yaml")
                    if config.parent != run_dir and is_run_folder(config.parent))
    if nested:
        raise ConfigError(f"--overwrite would delete {run_dir}, which holds other runs ({nested[0]}"
                          f"{f' and {len(nested) - 1} more' if len(nested) > 1 else ''}); move them out first, or "
                          f"choose another --run-name")


def _has_run_records(folder: Path) -> bool:
    """Whether `folder` holds what a run writes, however old: the resolved config.yaml of a run (its seed, trainer
    and run sections), the metrics.json of a finished one, or checkpoints. A folder of one's own with a config.yaml
    of another kind is none."""
    return (_is_resolved_config(folder / "config.yaml") or _is_run_record(folder / "metrics.json")
            or any((folder / "checkpoints").glob("*.ckpt")))


def refuse_linked_parts(run_dir: Path) -> None:
    """A resume writes the run's checkpoints, logs and records, at any depth of its folder: where something in it
    is a symbolic link that leads out of the folder (a log folder linked to another run's, say), it could write
    through it into another folder. One line naming the first such link. Links within the folder stay, and so do
    those inside wandb's own log folder (wandb links its debug logs to its cache, and a resume writes a new run
    folder of its own there)."""
    inside = Path(run_dir).resolve()
    for folder, subfolders, files in os.walk(run_dir):          # links to folders are listed, not followed
        for name in sorted(subfolders + files):
            part = Path(folder) / name
            if part.is_symlink() and not _resolves_inside(part, inside):
                raise ConfigError(f"{part} is a symbolic link (to {os.readlink(part)}): a resume of {run_dir} "
                                  f"would write through it into another folder; replace the link with a copy of "
                                  f"what it points to, then resume")
        if Path(folder) == Path(run_dir) / "logs":
            subfolders[:] = [name for name in subfolders if name != "wandb"]


def _resolves_inside(link: Path, folder: Path) -> bool:
    """Whether `link` leads to a path inside `folder` (a loop of links leads nowhere: not inside)."""
    try:
        return link.resolve().is_relative_to(folder)
    except (RuntimeError, OSError):
        return False


def resume_command(run_dir: Path) -> str:
    """The command that resumes the run in `run_dir`. It names the plugins the run's config.yaml names: a resume
    imports a run's plugin only when the user names it too (docs/reliability.md)."""
    import shlex

    plugins = recorded_plugins(run_dir)
    named = f" --set {shlex.quote(f'plugins=[{chr(44).join(plugins)}]')}" if plugins else ""
    return f"stcbench fit --ckpt-path {shlex.quote(str(run_dir))}{named}"


def recorded_plugins(run_dir: Path) -> list[str]:
    """The plugins of the run's config.yaml ([] when it names none or cannot be read)."""
    import yaml

    try:
        config = yaml.safe_load(read_text(Path(run_dir) / "config.yaml"))
    except (OSError, ValueError, RecursionError, yaml.YAMLError):
        return []
    plugins = config.get("plugins") if isinstance(config, dict) else None
    return [str(p) for p in plugins if isinstance(p, str) and p] if isinstance(plugins, list) else []


def refuse_non_folder(run_dir: Path) -> None:
    """A file or link where the run folder should be is not ours to replace (`--overwrite` would follow a link)."""
    if run_dir.is_symlink() or (os.path.lexists(run_dir) and not run_dir.is_dir()):
        raise ConfigError(f"{run_dir} is a {'link' if run_dir.is_symlink() else 'file'}, not a run folder; "
                          f"move it away yourself or choose another --run-name")


def create_run_dir(run_dir: Path, *, default_name: bool, overwrite: bool) -> tuple[Path, Path]:
    """Create the run folder exclusively (two runs never share one): a default name that another run took
    meanwhile gets a suffix -2, -3, ...; a chosen name is refused. Returns (run folder, outermost folder
    created), the latter removed again when the run fails on bad input before its first checkpoint."""
    created = first_missing(run_dir)
    refuse_non_folder(run_dir)
    if overwrite and run_dir.is_dir():
        remove_run_dir(run_dir)
        created = run_dir.resolve()
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    base, suffix = run_dir, 1
    while True:
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            if not default_name and overwrite:
                raise ConfigError(f"run directory {run_dir} was created again by another process while this one "
                                  f"replaced it; start one run of a name at a time, or choose another --run-name")
            if not default_name:
                refuse_existing_run(run_dir)
            suffix += 1
            run_dir = base.with_name(f"{base.name}-{suffix}")
    return run_dir, (run_dir.resolve() if created == base.resolve() else created)


def set_aside(run_dir: Path) -> Path | None:
    """--overwrite: the old run renamed aside under its lock (refused while another process trains it), so that
    the new run can take its place; `settle_replaced` then deletes it, or puts it back if the new run failed before
    its first checkpoint. None when there is no old run."""
    if not run_dir.is_dir() or run_dir.is_symlink():
        return None
    aside = run_dir.with_name(f".{run_dir.name}.replaced-{os.getpid()}")
    with training_lock(run_dir):
        os.replace(run_dir, aside)
    with contextlib.suppress(FileNotFoundError):
        (aside / LOCK_FILE).unlink()          # the lock moved with the folder: put back, the run has no stale lock
    return aside


def interrupted_overwrites(run_dir: Path) -> list[Path]:
    """Old runs that an --overwrite of `run_dir` set aside (`.<name>.replaced-<pid>`) and could not settle (the
    process was killed): each is a whole run, kept."""
    run_dir = Path(run_dir)
    return sorted(run_dir.parent.glob(f".{run_dir.name}.replaced-*")) if run_dir.parent.is_dir() else []


def interrupted_overwrite_note(run_dir: Path) -> str:
    """A sentence naming the runs an interrupted --overwrite of `run_dir` left aside, or ''."""
    left = interrupted_overwrites(run_dir)
    if not left:
        return ""
    return (f"; an --overwrite of it was interrupted and left the earlier run at {left[0]}"
            f"{f' (and {len(left) - 1} more)' if len(left) > 1 else ''}: move it back (`mv`) to keep it, or delete it")


def _process_alive(pid: str) -> bool:
    """Whether process `pid` (a number) runs on this machine; True when that cannot be told."""
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def settle_replaced(aside: Path | None, run_dir: Path) -> None:
    """The run set aside by --overwrite: deleted once the new run has a checkpoint it can resume from
    (last.ckpt), with what earlier --overwrite calls that were killed left aside (their processes gone), else (the
    new run failed before it trained, or could not write it: a full disk) put back in place of the new run's
    folder."""
    if aside is None or not aside.exists():
        return
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        shutil.rmtree(aside, ignore_errors=True)
        for earlier in interrupted_overwrites(run_dir):      # what killed --overwrite calls of it left aside
            if not _process_alive(earlier.name.rpartition("-")[2]):
                shutil.rmtree(earlier, ignore_errors=True)
        return
    if run_dir.exists():
        shutil.rmtree(run_dir, ignore_errors=True)
    os.replace(aside, run_dir)


def remove_run_dir(run_dir: Path) -> None:
    """Remove a run folder, unless another process trains it (then one clear ConfigError): under the run's
    lock the folder is renamed aside, so that no resume can start in it, and then deleted."""
    if run_dir.is_symlink() or not run_dir.is_dir():
        what = "a link" if run_dir.is_symlink() else "not a folder"
        raise ConfigError(f"{run_dir} is {what}, not a run folder, so it is not removed; move it away yourself")
    aside = run_dir.with_name(f".{run_dir.name}.removing-{os.getpid()}")
    with training_lock(run_dir):
        os.replace(run_dir, aside)
    shutil.rmtree(aside)


def folder_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, None when it is gone: tells a run's own folder from one put in its place."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def first_missing(path: Path) -> Path:
    """The outermost folder of `path` that does not exist yet (what creating `path` makes)."""
    path = path.resolve()
    while not path.parent.exists():
        path = path.parent
    return path


def remove_unstarted_run(run_dir: Path, created: Path) -> None:
    """A run that failed on bad input before its first checkpoint: the folders this call made for it
    (`created` and below) are removed, so that no partial result stays behind."""
    if not is_rank_zero() or any((run_dir / "checkpoints").glob("*.ckpt")):
        return
    shutil.rmtree(created, ignore_errors=True)


RUN_RECORDS = ("config.yaml", "metrics.json", "plugin_code.json", "predictions.npz", "test_per_sequence.npz",
               "gradient_through_time.npz", LOCK_FILE)


def is_run_folder(folder: Path) -> bool:
    """A run's folder: the resolved config a run writes (config.yaml with its seed, trainer and run sections, as
    every task's has) beside checkpoints or the metrics.json `fit` writes (with its `train_seconds`). A project
    folder with a config file of its own and a `test` or `evaluate` result is none."""
    folder = Path(folder)
    if not _is_resolved_config(folder / "config.yaml"):
        return False
    return any((folder / "checkpoints").glob("*.ckpt")) or _is_run_record(folder / "metrics.json")


def _is_resolved_config(path: Path) -> bool:
    import yaml

    try:
        config = yaml.safe_load(read_text(path)) if path.is_file() else None
    except (OSError, ValueError, RecursionError, yaml.YAMLError):
        return False
    return isinstance(config, dict) and all(key in config for key in ("seed", "trainer", "run"))


def _is_run_record(path: Path) -> bool:
    import json

    try:
        record = json.loads(read_text(path)) if path.is_file() else None
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(record, dict) and "train_seconds" in record


def enclosing_run(path: str | Path) -> Path | None:
    """The run folder that holds `path` (or is it), or None."""
    path = Path(path).absolute()
    return next((folder for folder in (path, *path.parents) if is_run_folder(folder)), None)


def refuse_run_inside_run(run_dir: Path) -> None:
    """A new run's folder never lies inside another run's (tables would take both for runs of that cell)."""
    holder = enclosing_run(Path(run_dir).parent)
    if holder is not None:
        raise ConfigError(f"run folder {run_dir} would lie inside the run {holder}; choose an --output-dir "
                          f"(run.output_dir) outside every run folder")


def refuse_folder_inside_run(folder: str | Path | None, flag: str) -> None:
    """An output folder (a suite's, a table's, a dataset's) never lies inside a run's folder: the run's records and
    what a command writes there would mix. One line naming the run."""
    if folder is None:
        return
    holder = enclosing_run(folder)
    if holder is not None:
        raise ConfigError(f"{flag} {folder} lies inside the run {holder}; choose a folder outside every run folder")


def refuse_writing_run_records(path: str | Path, flag: str) -> None:
    """An output file that is one of a run's own records (metrics.json, config.yaml, ...), or lies in its
    checkpoints/ or logs/, would replace what the run wrote; one in a dataset's folder, the data runs read: one line
    naming another place."""
    from stcbench.data.specs import dataset_holding

    path = Path(path).absolute()
    dataset = dataset_holding(path)
    if dataset is not None:
        raise ConfigError(f"{flag} {path} lies in the folder of the {dataset} dataset, whose files runs read and "
                          f"test on; name a file elsewhere")
    run = enclosing_run(path.parent)
    if run is None:
        return
    inside = path.relative_to(run).parts
    if (len(inside) == 1 and inside[0] in RUN_RECORDS) or inside[0] in ("checkpoints", "logs"):
        raise ConfigError(f"{flag} {path} would replace a record of the run {run}; name another file, e.g. "
                          f"{run / f'{path.stem}_tested{path.suffix}'}")


def run_dir_of_checkpoint(ckpt_path: str | Path) -> Path | None:
    """The run folder a checkpoint belongs to: runs/.../<name>/checkpoints/last.ckpt, or the folder named itself
    -> runs/.../<name> where it holds a config.yaml (read, and refused if broken, as the run's). A checkpoint lying
    loose in a folder belongs to that folder only where it is a run's (a resolved config.yaml beside checkpoints or
    a record): one in a project folder, next to a config file of the user's own, starts a run folder of its own."""
    ckpt_path = Path(ckpt_path)
    if ckpt_path.is_dir():
        candidate = ckpt_path
    elif ckpt_path.parent.name == "checkpoints":
        candidate = ckpt_path.parent.parent
    else:
        return ckpt_path.parent if is_run_folder(ckpt_path.parent) else None
    return candidate if (candidate / "config.yaml").exists() else None


def existing_checkpoint(path: str | Path) -> Path:
    """The checkpoint to resume: a .ckpt file, or a run folder's checkpoints/last.ckpt."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):
            if candidate.is_file():
                return candidate
        raise ConfigError(f"{path} holds no checkpoints/last.ckpt; pass a checkpoint file with --ckpt-path"
                          f"{interrupted_overwrite_note(Path(path))}")
    if path.exists() and not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} is not a regular file (a pipe, socket or device); pass a .ckpt "
                          f"file (e.g. runs/<dataset>/<cell>/<run>/checkpoints/last.ckpt)")
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist; pass an existing .ckpt file "
                          f"(e.g. runs/<dataset>/<cell>/<run>/checkpoints/last.ckpt)")
    return path


def log_version(run_dir: Path, resuming: bool) -> str | None:
    """Fresh runs log into logs/<logger>/; each resumption into logs/<logger>/resumed-<n>/ (keeps old logs)."""
    if not resuming:
        return None
    previous = list((run_dir / "logs").glob("*/resumed-*"))
    numbers = [int(p.name.split("-")[-1]) for p in previous if p.name.split("-")[-1].isdigit()]
    return f"resumed-{max(numbers, default=0) + 1}"


@contextlib.contextmanager
def shared_run_dir(run_dir: Path):
    old = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = old


@contextlib.contextmanager
def training_lock(run_dir: Path):
    """Holds an exclusive lock on `run_dir`/.lock while this process trains the run, so that a second fit or
    resume of the same run is refused (one line, nothing written) instead of writing the same checkpoints.
    Rank zero only: DDP workers share their rank zero's run. The file is removed on release."""
    if fcntl is None or not is_rank_zero():
        yield
        return
    path = Path(run_dir) / LOCK_FILE
    handle = _acquire(path, run_dir)
    if handle is None:
        yield
        return
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.stat(path), os.fstat(handle.fileno())):   # not the lock of a run in its place
                path.unlink()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def refuse_if_busy(run_dir: Path) -> None:
    """RunBusyError naming the process that trains the run in `run_dir`, if one does; nothing is written (a lock
    file left by a process that was killed stays as it is)."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None:
        return
    try:
        handle = _open_lock_file(path, run_dir, create=False)
    except FileNotFoundError:           # none, or its holder finished and removed it just now: not busy
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        _refuse_busy(handle, run_dir)
    except OSError:                     # a file system without locks: nothing to tell
        pass
    handle.close()                      # closing the file releases a lock taken here


def _open_lock_file(path: Path, run_dir: Path, create: bool = True):
    """The lock file, never opened through a link (a `.lock` that links elsewhere would have the process id written
    into the file it points to), and only as a regular file with no other name (a hard link): one ConfigError
    else. `create`: opened for writing, made if missing (a missing run folder is a ConfigError); else opened to
    read (FileNotFoundError when there is none)."""
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (os.O_RDWR | os.O_CREAT if create else
                                                                        os.O_RDONLY)
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        if not create:
            raise
        raise ConfigError(f"run {run_dir} was removed while this process waited for it; start it again or "
                          f"resume another run") from None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise
        fd = None
    info = os.fstat(fd) if fd is not None else None
    if info is None or not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        if fd is not None:
            os.close(fd)
        kind = ("link" if path.is_symlink() else "file with another name too (a hard link)"
                if info is not None and stat.S_ISREG(info.st_mode) else "folder, pipe or device")
        raise ConfigError(f"{path} is not a lock file stcbench wrote (a {kind}): a run's folder holds no such "
                          f"thing; remove it, then run again")
    return os.fdopen(fd, "a+" if create else "r", encoding="utf-8")


def _refuse_busy(handle, run_dir: Path):
    handle.seek(0)
    holder = handle.read().strip() or "another process"
    handle.close()
    raise RunBusyError(f"run {run_dir} is being trained by {holder}; wait for it to finish or stop it, "
                       f"then resume with `{resume_command(run_dir)}`") from None


def _acquire(path: Path, run_dir: Path):
    """The open, locked lock file; None where the file system cannot lock (the run goes on unlocked)."""
    while True:
        handle = _open_lock_file(path, run_dir)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _refuse_busy(handle, run_dir)
        except OSError as exc:          # e.g. ENOLCK / ENOSYS: a network file system without locks
            handle.close()
            warnings.warn(f"{run_dir} cannot be locked on this file system ({exc.strerror}); a second fit or "
                          f"resume of this run would not be refused", stacklevel=3)
            return None
        try:
            if os.path.samestat(os.fstat(handle.fileno()), os.stat(path)):
                return handle
        except FileNotFoundError:
            pass
        handle.close()          # the holder removed the file as we opened it: lock the new one
