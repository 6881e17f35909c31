"""What a resume may change: it continues the run its checkpoint holds, so everything that says which run that
is (seed, data, model, optimiser, schedule, ...) must be what the checkpoint was trained with. Free are the
training length, the hardware, logging, the run's output settings and the keys a task names (its data folder,
execution options that give the same numbers).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from stcbench.errors import ConfigError

FREE_ON_RESUME = {
    None: ("run", "logging", "plugins"),
    "trainer": ("max_epochs", "max_steps", "stop_after_epochs", "limit_test_batches", "num_sanity_val_steps",
                "accelerator", "devices", "strategy", "num_nodes", "deterministic", "threads", "benchmark", "tf32"),
}


OPEN_MAPPINGS = ("cell_options", "options")    # keyword arguments: every key counts, given on one side or both


class Unset:
    """The value of a keyword argument that one side does not give (the cell's or module's own default)."""

    def __repr__(self) -> str:
        return "unset"


UNSET = Unset()


def differences(stored: Mapping, given: Mapping, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, stored value, given value) for the leaves that differ. A key only one side has is compared
    inside OPEN_MAPPINGS (keyword arguments such as model.cell_options, where it is an option set on one side
    only: UNSET on the other), and elsewhere not (a config field of an older or newer version)."""
    found = []
    open_mapping = prefix.rstrip(".").rpartition(".")[2] in OPEN_MAPPINGS
    keys = set(stored) | set(given) if open_mapping else set(stored) & set(given)
    for key in sorted(keys, key=str):
        old, new = stored.get(key, UNSET), given.get(key, UNSET)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            found += differences(old, new, f"{prefix}{key}.")
        elif _plain(old) != _plain(new):
            found.append((f"{prefix}{key}", old, new))
    return found


def describe_changes(changed: list, shown: int = 4) -> str:
    """`key: old there, new here; ...` for the first `shown` differences (engine.resume.differences), then the
    others' keys."""
    text = "; ".join(f"{key}: {old!r} there, {new!r} here" for key, old, new in changed[:shown])
    if len(changed) > shown:
        text += f" and {len(changed) - shown} more: {', '.join(key for key, _, _ in changed[shown:])}"
    return text


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def is_free(key: str, free: Mapping[str | None, tuple]) -> bool:
    section, _, name = key.partition(".")
    return section in free.get(None, ()) or (bool(name) and name.split(".")[0] in free.get(section, ()))


def resume_changes(stored: Mapping, given: Mapping, task_free: Mapping[str | None, tuple] = ()) -> list:
    """The differences between the trained config and the given one that a resume may not make."""
    free = {section: FREE_ON_RESUME.get(section, ()) + tuple(dict(task_free).get(section, ()))
            for section in set(FREE_ON_RESUME) | set(dict(task_free))}
    return [change for change in differences(stored, given) if not is_free(change[0], free)]


def settle_run_name(config, stored: Mapping | None, run_dir: Path) -> None:
    """The name a resumed run goes on under: its folder's. A `--run-name` of another run is one ConfigError; a run
    folder copied or renamed since (its config.yaml still names the run it was made as) goes on under its new name,
    with a line saying so."""
    import sys

    run = getattr(config, "run", None)
    name = getattr(run, "name", None)
    stored_name = ((stored or {}).get("run") or {}).get("name") if isinstance(stored, Mapping) else None
    if not name or name == run_dir.name:
        return
    if name != stored_name:
        raise ConfigError(f"--run-name {name} names another run than the checkpoint's ({run_dir}); a resume "
                          f"continues the checkpoint's run in its own folder: drop --run-name, or start a new run "
                          f"without --ckpt-path")
    print(f"{run_dir} was made as run {stored_name} (its config.yaml names it so) and goes on under its folder's "
          f"name, {run_dir.name}", file=sys.stderr)
    run.name = run_dir.name


def refuse_other_run(stored: Mapping | None, given: Mapping, ckpt_path: Path, run_dir: Path | None,
                     task_free: Mapping[str | None, tuple] = ()) -> None:
    """One ConfigError, before anything is written, when a resume would continue the checkpoint's run with
    another setting (its name: settle_run_name)."""
    if not isinstance(stored, Mapping):
        return
    planned, now = (stored.get("trainer") or {}).get("max_epochs"), (given.get("trainer") or {}).get("max_epochs")
    if isinstance(planned, int) and isinstance(now, int) and now < planned:
        raise ConfigError(f"{ckpt_path} belongs to a run of {planned} epochs (its schedule spans them); a resume may "
                          f"extend a run, not shorten it: drop --max-epochs / trainer.max_epochs {now}, or give "
                          f"{planned} or more")
    changes = resume_changes(stored, given, task_free)
    if changes:
        shown = "; ".join(f"{key}={old!r} there, {new!r} here" for key, old, new in changes[:4])
        more = f" and {len(changes) - 4} more" if len(changes) > 4 else ""
        raise ConfigError(f"{ckpt_path} was trained with another setting ({shown}{more}); a resume continues "
                          f"that run, so drop the options that change it (or resume with the run's own config: "
                          f"`stcbench fit --ckpt-path {run_dir or ckpt_path}`), or start a new run without --ckpt-path")
