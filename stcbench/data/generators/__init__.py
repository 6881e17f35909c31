"""Writers of the small embedded datasets, in exactly the published file formats.

`generate_dataset(name, data_root)` writes `<data_root>/<folder>/` atomically (a temporary
sibling folder renamed into place), plus a `stcbench.json` marker saying how it was made.
"""
from __future__ import annotations

import dataclasses
import numbers
import time
from pathlib import Path

from stcbench.data.fileio import MARKER_NAME, atomic_directory, write_marker
from stcbench.data.specs import get_dataset_spec, require_folder_root
from stcbench.errors import ConfigError, DataError

from . import kth, mmnist, taxibj
from .ranges import plain

SIZES = ("small", "medium")
GENERATORS = {  # spec folder -> (module, parameter class)
    "moving_mnist": (mmnist, mmnist.MovingMNISTParams),
    "taxibj": (taxibj, taxibj.TaxiBJParams),
    "kth": (kth, kth.KTHParams),
}
GENERATED_NAMES = ("mmnist", "taxibj", "kth")     # kth40 reads the kth folder


def generator_params(name: str, size: str = "small", overrides: dict | None = None):
    """Parameters of one generator: the size preset, then explicit overrides."""
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    module, params_cls = GENERATORS[get_dataset_spec(name).folder]
    values = dict(module.PRESETS[size])
    fields = {f.name: f.type for f in dataclasses.fields(params_cls)}
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise ConfigError(f"unknown generator parameter {key!r} for {name}; choose from "
                              f"{', '.join(sorted(fields))}")
        try:
            values[key] = type(getattr(params_cls(), key))(value)
        except (TypeError, ValueError):
            raise ConfigError(f"generator parameter {key}={value!r} is not a valid "
                              f"{fields[key]}") from None
    params = params_cls(**values)
    check_ranges(name, module, params)
    return params


def check_ranges(name: str, module, params) -> None:
    """One line naming the first parameter outside its allowed range, the range and the fix."""
    try:
        ranges = module.param_ranges(params)
    except ValueError as exc:
        raise ConfigError(f"cannot generate {name}: {exc}") from None
    defaults = type(params)()
    for key, allowed in ranges.items():
        value = getattr(params, key)
        if not allowed.admits(value):
            raise ConfigError(f"generator parameter {key}={plain(value)} is out of range for {name}: allowed "
                              f"{allowed}; pass --param {key}=<value in that range> or leave it out "
                              f"(default {getattr(defaults, key)})")


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"--seed {seed} is out of range: the generation seed must be an integer >= 0; "
                          f"pass --seed 0 (the default) or a larger integer")
    return int(seed)


def refuse_replacing_other_data(target: Path, spec, force: bool) -> None:
    """--force replaces the dataset's own files (generated, or real ones that a data error points at), never a
    folder that also holds files of another kind (the user's own): one DataError naming the first of them."""
    if not (force and target.is_dir() and not target.is_symlink()):
        return
    own = {*spec.files, MARKER_NAME}
    others = sorted(p.name for p in target.iterdir() if p.name not in own and not p.name.startswith("."))
    if others:
        raise DataError(f"{target} holds files that are not the {spec.folder} dataset's ({others[0]}"
                        f"{f' and {len(others) - 1} more' if len(others) > 1 else ''}); --force replaces only a "
                        f"dataset folder: move those files away, or choose another --data-root")


def generate_dataset(name: str, data_root=None, seed: int = 0, size: str = "small",
                     overrides: dict | None = None, force: bool = False, log=None) -> Path:
    """Write the embedded default of `name` under `data_root`; returns the dataset folder."""
    spec = get_dataset_spec(name)
    root = require_folder_root(data_root)
    seed = check_seed(seed)
    params = generator_params(name, size, overrides)
    module, _ = GENERATORS[spec.folder]
    target = root / spec.folder
    refuse_replacing_other_data(target, spec, force)
    start = time.perf_counter()
    with atomic_directory(target, overwrite=force) as tmp:
        try:
            counts = module.write(tmp, params, seed)
        except ValueError as exc:
            raise ConfigError(f"cannot generate {name}: {exc}") from None
        write_marker(tmp, {
            "source": "generated",
            "dataset": spec.folder,
            "generator": f"stcbench.data.generators.{module.__name__.rsplit('.', 1)[-1]}",
            "seed": int(seed),
            "size": size,
            "params": dataclasses.asdict(params),
            "counts": counts,
        })
    if log:
        log(f"generated {spec.title if spec.name != 'kth' else 'KTH Action'} in {target} "
            f"({time.perf_counter() - start:.1f} s, seed {seed}, size {size})")
    return target
