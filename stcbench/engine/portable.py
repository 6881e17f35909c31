"""Run records without this machine's paths: a run folder can be committed or moved and read anywhere.

What a run writes for others to read (config.yaml, the loggers' hparams.yaml; metrics.json records
its data by dataset name and checksum, stcbench.data.checksum) holds no absolute path outside the
run folder:

* a relative path is kept as given (it names a folder relative to where commands run);
* an absolute path inside the current working directory becomes relative to it;
* any other absolute path becomes the default: `data.data_root` "" (the default data folder:
  $STCBENCH_DATA_ROOT, else datasets/), `run.output_dir` "runs".

The checkpoints keep the paths as given (they are never committed): resuming a run whose
config.yaml has the default data root takes the data root its checkpoint was trained with
(`resumed_data_root`).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

PORTABLE_DEFAULTS = {("data", "data_root"): "", ("run", "output_dir"): "runs"}


def portable_path(value: Any, default: str) -> Any:
    if not isinstance(value, str) or not value:
        return value
    path = Path(value)
    if not path.is_absolute():
        return value
    for inside, cwd in ((path.absolute(), Path.cwd().absolute()), (path.resolve(), Path.cwd().resolve())):
        try:                               # as written (a link in the working folder stays a link), else resolved
            return inside.relative_to(cwd).as_posix() or "."
        except ValueError:
            continue
    return default


def portable_config_dict(config: Mapping) -> dict:
    """A copy of a config dict with the paths of PORTABLE_DEFAULTS made portable; the data folder that the
    default names ($STCBENCH_DATA_ROOT, else datasets/) is recorded as the default."""
    from stcbench.data.specs import resolve_data_root

    result = copy.deepcopy(dict(config))
    for (section, key), default in PORTABLE_DEFAULTS.items():
        block = result.get(section)
        if isinstance(block, dict) and key in block:
            if (section, key) == ("data", "data_root") and _same_folder(block[key], resolve_data_root("")):
                block[key] = default
            block[key] = portable_path(block[key], default)
    return result


def _same_folder(value, folder: Path) -> bool:
    return isinstance(value, str) and bool(value) and Path(value).expanduser().absolute() == folder.absolute()


def portable_hparams(params: Any) -> Any:
    """Logger hyperparameters ({"config": {...}} as the modules save them) with a portable config."""
    if isinstance(params, Mapping) and isinstance(params.get("config"), Mapping):
        params = dict(params)
        params["config"] = portable_config_dict(params["config"])
    return params


SESSION_KEYS = (("trainer", "stop_after_epochs"),)     # instructions to one session, not part of the run


def save_portable_config(config, path: Path) -> None:
    """config.yaml of a run: the resolved config with portable paths, without the session-only keys (a resume
    from it would otherwise stop again where the first session was told to)."""
    from stcbench.engine.io import atomic_write_text
    from stcbench.engine.schema import dump_mapping, to_dict

    data = portable_config_dict(to_dict(config))
    for section, key in SESSION_KEYS:
        if isinstance(data.get(section), dict) and key in data[section]:
            data[section][key] = None
    atomic_write_text(Path(path), dump_mapping(data))


def resumed_data_root(config, checkpoint: Mapping) -> str | None:
    """The data root the checkpoint was trained with, where the config's is what a run folder's config.yaml
    records for it (the portable default, or a path relative to where the run was made that does not name
    another existing folder from here) and the trained folder still exists; else None (keep the config's)."""
    try:
        stored = checkpoint["hyper_parameters"]["config"]["data"]["data_root"]
    except (KeyError, TypeError):       # a checkpoint without a config: keep the config's
        return None
    if not (isinstance(stored, str) and stored and Path(stored).expanduser().is_dir()):
        return None
    given = config.data.data_root
    if given == PORTABLE_DEFAULTS[("data", "data_root")]:
        return stored
    here = Path(given).expanduser()
    if here.is_absolute():
        return None
    return stored if not here.is_dir() or here.resolve() == Path(stored).expanduser().resolve() else None
