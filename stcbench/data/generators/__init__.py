"""Writers of the small embedded datasets, in exactly the published file formats.

`generate_dataset(name, data_root)` writes `<data_root>/<folder>/` atomically (a temporary
sibling folder renamed into place), plus a `stcbench.json` marker saying how it was made.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from stcbench.data.fileio import atomic_directory, write_marker
from stcbench.data.specs import get_dataset_spec, resolve_data_root
from stcbench.errors import ConfigError

from . import kth, mmnist, taxibj

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
    return params_cls(**values)


def generate_dataset(name: str, data_root=None, seed: int = 0, size: str = "small",
                     overrides: dict | None = None, force: bool = False, log=None) -> Path:
    """Write the embedded default of `name` under `data_root`; returns the dataset folder."""
    spec = get_dataset_spec(name)
    root = resolve_data_root(data_root)
    params = generator_params(name, size, overrides)
    module, _ = GENERATORS[spec.folder]
    target = root / spec.folder
    start = time.perf_counter()
    with atomic_directory(target, overwrite=force) as tmp:
        try:
            counts = module.write(tmp, params, int(seed))
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
