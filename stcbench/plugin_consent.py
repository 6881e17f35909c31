"""Which user plugins (code that registers cells) a command may import.

A plugin named only inside a file that stcbench is handed (a config, a run's config.yaml, a checkpoint) is code
the user did not name, and a command refuses to import it. The user names plugins with STCBENCH_PLUGINS or on the
command line (`--set plugins=[...]`); `--trust-checkpoint` vouches for what a run or checkpoint names
(engine.environment.load_plugins). A program that builds its config itself names its plugins itself: outside
`consent_to_plugins` nothing is refused.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

PLUGIN_ENV = "STCBENCH_PLUGINS"
_NAMED_BY_USER: list = [None]       # None: no consent needed


def recorded_plugin(spec: str) -> str:
    """A plugin as a run records it: a file as its absolute path, a module by its name."""
    spec = str(spec).strip()
    return str(Path(spec).expanduser().resolve()) if spec.endswith(".py") else spec


def environment_plugins() -> list[str]:
    """The plugins named in STCBENCH_PLUGINS, files as absolute paths (to record them with a run)."""
    specs = [s.strip() for s in os.environ.get(PLUGIN_ENV, "").split(",") if s.strip()]
    return [recorded_plugin(s) for s in specs]


def plugin_specs(value) -> list[str]:
    """The plugins of a `plugins` value as a config or `--set plugins=...` gives it: a list, or text (YAML, e.g.
    `[a.py, b.py]`, or `a.py,b.py`)."""
    import yaml

    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            return []                   # the config check says what is wrong with it
    values = value if isinstance(value, (list, tuple)) else [value]
    return [part.strip() for v in values if isinstance(v, str) for part in v.split(",") if part.strip()]


def plugins_named(args) -> list[str]:
    """The plugins given on a command line with `--set plugins=[...]` (or `--set plugins=file.py`)."""
    named: list[str] = []
    for text in (getattr(args, "set_overrides", None) or []) + (getattr(args, "overrides", None) or []):
        key, _, raw = str(text).partition("=")
        if key.strip() == "plugins":
            named += plugin_specs(raw)
    return named


def current():
    """The plugins named within the enclosing `consent_to_plugins` (None outside it), to carry into a job that
    runs in another process."""
    return None if _NAMED_BY_USER[0] is None else set(_NAMED_BY_USER[0])


@contextlib.contextmanager
def consent_to_plugins(named):
    """Within the block only the plugins in `named`, those of STCBENCH_PLUGINS and those already imported may be
    imported by a run (`unconsented`); `named` None: no consent needed."""
    previous = _NAMED_BY_USER[0]
    _NAMED_BY_USER[0] = None if named is None else (
        {recorded_plugin(s) for s in named if str(s).strip()} | set(environment_plugins()))
    try:
        yield
    finally:
        _NAMED_BY_USER[0] = previous


def unconsented(specs, imported) -> list[str]:
    """The plugins of `specs` that the user did not name and that are not in `imported` (empty outside
    `consent_to_plugins`)."""
    named = _NAMED_BY_USER[0]
    if named is None:
        return []
    if isinstance(specs, str):
        specs = specs.split(",")          # as cells.load_plugins reads a string
    keys = [recorded_plugin(s) for s in (specs or ()) if str(s).strip()]
    return [k for k in keys if k not in named and k not in imported]
