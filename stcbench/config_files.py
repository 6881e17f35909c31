"""The configs shipped inside the package, addressable by name.

`--config quick/mmnist`, `--config mmnist/stclif.yaml` and the former source-tree paths
(`configs/mmnist/stclif.yaml`) name a packaged file; any path that exists is used as it is.
"""
from __future__ import annotations

from pathlib import Path

from stcbench.errors import ConfigError

PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


def packaged_config_names() -> list[str]:
    """Every shipped config as the name `--config` takes (`quick/mmnist`, `mmnist/stclif`, ...)."""
    return sorted(p.relative_to(PACKAGED_CONFIGS).with_suffix("").as_posix()
                  for p in PACKAGED_CONFIGS.rglob("*.yaml") if not p.name.startswith("_"))


def packaged_config(name: str) -> Path | None:
    """The packaged file a config name refers to, or None."""
    text = name.replace("\\", "/").strip()
    if text.startswith("./"):
        text = text[2:]
    for prefix in ("stcbench/configs/", "configs/"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    if not text or text.startswith("/") or ".." in text.split("/"):
        return None
    path = PACKAGED_CONFIGS / (text if text.endswith((".yaml", ".yml")) else f"{text}.yaml")
    return path if path.is_file() else None


def find_config(value: str | Path) -> Path:
    """An existing path as given, else the packaged config of that name, else the path unchanged
    (so that reading it reports a missing file)."""
    path = Path(value)
    if path.exists():
        return path
    return packaged_config(str(value)) or path


def check_config_file(path: str | Path) -> Path:
    """`path` if it is a readable-looking config file, else one clear ConfigError (cheap: no YAML, no torch)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config {str(path)!r} is a directory; pass a YAML file")
    if path.exists() and not path.is_file():
        raise ConfigError(f"config {str(path)!r} is not a regular file (a device or pipe); pass a YAML file")
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"config {str(path)!r} is a symbolic link to nothing (dangling, or a loop of links); point "
                          f"it at a YAML file or pass the file itself")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass an existing YAML file "
                          f"or the name of a shipped config (e.g. quick/mmnist, mmnist/stclif, memory/adding)")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {str(path)!r} has {path.stat().st_size:,} bytes; a config is a few kilobytes "
                          f"(at most {MAX_CONFIG_BYTES:,} are read): pass a YAML config")
    return path


MAX_CONFIG_BYTES = 1 << 20
