"""Which plugin code a run was trained with: the SHA-256 of each plugin's source file, kept in the run folder.

A plugin (a user's neuron) can change between two runs while its name, its cell options and every config key
stay the same; its runs would then be taken for seeds of one setting, or one run resumed with other code. The
run folder's `plugin_code.json` records the digests when the run starts; a resume, and bench taking an earlier
run for its plan, refuse a plugin whose file has changed since, and tables group seeds by them
(reports.runs.setting_key).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from stcbench.errors import ConfigError
from stcbench.plugin_consent import recorded_plugin

PLUGIN_CODE_FILE = "plugin_code.json"


def source_file(plugin: str) -> Path | None:
    """The file a plugin's code is read from: the .py file itself, or an importable module's source."""
    if plugin.endswith(".py"):
        return Path(plugin)
    try:
        spec = importlib.util.find_spec(plugin)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return Path(origin) if origin and origin.endswith(".py") else None


def digests(plugins) -> dict[str, str]:
    """{plugin as recorded: sha256 of its source file} for the plugins whose source can be read."""
    found = {}
    for plugin in map(recorded_plugin, plugins or ()):
        path = source_file(plugin)
        if path is not None and path.is_file():
            found[plugin] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def read_recorded(run_dir: Path) -> dict[str, str]:
    """The digests a run folder recorded; {} for a run without plugins (or from before they were recorded)."""
    try:
        recorded = json.loads((Path(run_dir) / PLUGIN_CODE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}


def record(run_dir: Path, plugins) -> None:
    """Write the digests of `plugins` into the run folder (nothing for a run without plugins)."""
    from stcbench.engine.io import atomic_write_text

    found = digests(plugins)
    if found:
        atomic_write_text(Path(run_dir) / PLUGIN_CODE_FILE, json.dumps(found, indent=2, sort_keys=True) + "\n")


def changed(run_dir: Path, plugins) -> list[str]:
    """The plugins whose source differs from what the run in `run_dir` was trained with."""
    recorded, now = read_recorded(run_dir), digests(plugins)
    return [plugin for plugin, digest in now.items() if plugin in recorded and recorded[plugin] != digest]


def refuse_changed(run_dir: Path, plugins, what: str) -> None:
    """One ConfigError when a plugin file changed since the run in `run_dir` started; `what` says what would
    happen with it (e.g. "a resume would train it on with other code")."""
    different = changed(run_dir, plugins)
    if different:
        raise ConfigError(f"plugin {different[0]} has changed since the run {run_dir} was trained with it (its "
                          f"SHA-256 differs from the run's {PLUGIN_CODE_FILE}); {what}. Restore the plugin as it "
                          f"was, or start a new run (another --run-name, --out or --tag) for the new code")
