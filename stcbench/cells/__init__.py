"""Spiking recurrent cells and their registry.

Importing this package imports every module of the package (so a new neuron is one new
file with `@register_cell`), then user plugins: the modules or `.py` files named in the
environment variable STCBENCH_PLUGINS (comma-separated) and the entry points of the group
`stcbench.cells`.  Configs load more with `load_plugins([...])` (the `plugins:` key).
On the command line only the plugins the user named are imported by a run (stcbench/plugin_consent.py).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from importlib import metadata
from pathlib import Path

from stcbench.cells.registry import (  # noqa: F401
    CellInfo,
    create_cell,
    get_cell_info,
    list_cells,
    normalize_name,
    register_cell,
)
from stcbench.cells.base import RecurrentCell, SpikingCell  # noqa: F401
from stcbench import plugin_consent
from stcbench.errors import ConfigError
from stcbench.plugin_consent import PLUGIN_ENV, environment_plugins, recorded_plugin  # noqa: F401

ENTRY_POINT_GROUP = "stcbench.cells"
_LOADED_PLUGINS: dict[str, object] = {}


def _import_package_modules() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def _import_file(path: Path):
    if not path.is_file():
        raise ConfigError(f"plugin file {str(path)!r} does not exist; give an existing .py file or an "
                          f"importable module name")
    name = f"stcbench_plugin_{path.stem}_{abs(hash(str(path))) % 10**8}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise plugin_error(str(path), exc) from exc
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def plugin_error(spec: str, exc: BaseException) -> ConfigError:
    """One line naming the plugin, where in its code the import failed, and why."""
    import traceback

    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if "importlib" not in frame.filename]
    if isinstance(exc, SyntaxError) and exc.filename:          # raised while compiling: the traceback is the loader's
        message, where = exc.msg or "", f" (at {exc.filename}:{exc.lineno})"
    else:
        message = str(exc).splitlines()[0] if str(exc) else ""
        where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return ConfigError(f"plugin {spec!r} cannot be imported: {type(exc).__name__}: {message}{where}; fix it, or "
                       f"stop naming it (--set plugins=[...], {PLUGIN_ENV}, the config's `plugins:`, "
                       f"`stcbench cells --plugin`)")


def load_plugin(spec: str):
    """Import one plugin (module name or path to a .py file) once; returns the module."""
    spec = str(spec).strip()
    key = recorded_plugin(spec)
    if key in _LOADED_PLUGINS:
        return _LOADED_PLUGINS[key]
    if spec.endswith(".py"):
        module = _import_file(Path(key))
    else:
        try:
            module = importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            if exc.name is not None and spec != exc.name and not spec.startswith(f"{exc.name}."):
                raise plugin_error(spec, exc) from exc      # the plugin exists; one of its imports does not
            raise ConfigError(f"plugin module {spec!r} cannot be imported ({exc}); give an importable module "
                              f"name or a path to a .py file (in `plugins:` or {PLUGIN_ENV})") from exc
        except Exception as exc:
            raise plugin_error(spec, exc) from exc
    _LOADED_PLUGINS[key] = module
    return module


def load_plugins(specs) -> list:
    """Import plugin modules / files that register cells (idempotent). Accepts a list or a
    comma-separated string."""
    if isinstance(specs, str):
        specs = specs.split(",")
    return [load_plugin(s) for s in (specs or ()) if str(s).strip()]


def unconsented(specs) -> list[str]:
    """The plugins of `specs` that a command may not import (plugin_consent.py)."""
    return plugin_consent.unconsented(specs, _LOADED_PLUGINS)


def _load_entry_points() -> None:
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry-point:{entry_point.value}"
        if key not in _LOADED_PLUGINS:
            try:
                _LOADED_PLUGINS[key] = entry_point.load()
            except Exception as exc:
                raise plugin_error(f"{entry_point.name} = {entry_point.value} (entry point)", exc) from exc


_import_package_modules()
load_plugins(os.environ.get(PLUGIN_ENV, ""))
_load_entry_points()
