"""The one typed config mechanism of every task.

A config is a tree of dataclasses whose fields are declared with `option(default, help=..., check=...)`:
the type comes from the annotation, the help and the check sit beside the field. From that one
declaration come

* validation of a YAML mapping into the dataclasses (`build`): unknown keys, wrong types and failed
  checks are one `ConfigError` naming the key;
* typed command-line overrides (`parse_override` / `CliText`): `--set run.name=007` stays the
  string `'007'`, `--set optim.lr=1e3` the number 1000.0, because the text is read as the field's
  declared type, not guessed;
* the key reference of the docs (`reference_markdown`) and `--print-config` (`dump`).

Precedence (network-and-training.md §3 pitfall 2): dataclass defaults < config file (with `base:`
inheritance) < explicit overrides.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import field
from pathlib import Path
from typing import Any, Callable, Literal, Union

import yaml

from stcbench.errors import ConfigError
from stcbench.record_io import read_text

Check = Callable[[Any], "str | None"]      # value -> what is wrong with it (None: fine)


def option(default: Any = dataclasses.MISSING, *, help: str, check: Check | None = None,
           factory: Callable[[], Any] | None = None):
    """A config field: its default (or `factory` for mutable ones), its help and its check."""
    metadata = {"help": help, "check": check}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


# ------------------------------------------------------------------------------------------
# checks (each returns the requirement the value failed, or None)
# ------------------------------------------------------------------------------------------
def at_least(lower: float, *, allow_none: bool = False, none_means: str = "") -> Check:
    def check(value):
        if value is None and allow_none:
            return None
        if is_finite_number(value) and value >= lower:
            return None
        return f"must be a finite number >= {lower}" + (f" or null ({none_means})" if allow_none and none_means else
                                        " or null" if allow_none else "")
    return check


def is_finite_number(value) -> bool:
    """An int (any size) or a finite float; not a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def positive_finite(value) -> str | None:
    return None if is_finite_number(value) and value > 0 else "must be a positive number"


def within(lower: float, upper: float, *, open_lower: bool = False, open_upper: bool = False) -> Check:
    def check(value):
        above = value > lower if open_lower else value >= lower
        below = value < upper if open_upper else value <= upper
        if above and below:
            return None
        return f"must be in {'(' if open_lower else '['}{lower}, {upper}{')' if open_upper else ']'}"
    return check


def one_of(choices) -> Check:
    def check(value):
        return None if value in choices else f"must be one of {list(choices)}"
    return check


def positive_list(value) -> str | None:
    ok = isinstance(value, list) and len(value) >= 1 and all(v >= 1 for v in value)
    return None if ok else "must be a non-empty list of positive integers"


def keyword_names(value) -> str | None:
    """A mapping of keyword arguments: every key an identifier (a cell's or a module's option name)."""
    bad = next((key for key in value if not (isinstance(key, str) and key.isidentifier())), None)
    return None if bad is None else f"keys are option names, and {bad!r} is none"


def fraction_or_count(value) -> str | None:
    ok = 0 < value <= 1 if isinstance(value, float) else value >= 1
    return None if ok else "must be a fraction in (0, 1] or a number of batches >= 1"


# ------------------------------------------------------------------------------------------
# YAML files with `base:` inheritance
# ------------------------------------------------------------------------------------------
def read_yaml(path: str | Path) -> dict:
    from stcbench.config_files import check_config_file

    path = check_config_file(path)
    try:
        data = yaml.safe_load(read_text(path))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not a text (UTF-8) file; pass a YAML config") from None
    except OSError as exc:
        hint = "check its permissions" if isinstance(exc, PermissionError) else "pass a YAML config file"
        raise ConfigError(f"config file {str(path)!r} cannot be read ({exc.strerror}); {hint}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"config file {str(path)!r} nests its values too deeply to be a config; pass a YAML "
                          f"config") from None
    if data is None:
        return {}
    if contains_itself(data):
        raise ConfigError(f"config file {str(path)!r} holds a value that contains itself (a YAML alias inside its own "
                          f"anchor); write that value out in full")
    if expanded_size(data) > MAX_VALUES:
        raise ConfigError(f"config file {str(path)!r} expands to more than {MAX_VALUES:,} values (YAML aliases that "
                          f"repeat one another); a config holds a few hundred: write the values out")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections (data:, model:, ...), got "
                          f"{type(data).__name__}; pass a YAML config such as those `stcbench fit --config quick/mmnist "
                          f"--print-config` prints")
    return data


def deep_merge(base: dict, update: dict, sections: bool = True) -> dict:
    """Merge `update` into a copy of `base`; nested mappings merge, other values replace. An empty top-level
    section (YAML `data:` with nothing under it, or all of it commented out, reads as null) changes nothing, as
    `data: {}`; deeper down null replaces (`cell_options: null` clears the inherited options)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if sections and value is None and isinstance(merged.get(key), dict):
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value, sections=False)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


MAX_BASE_READS = 64          # config files one `base:` tree may read (a file named twice counts twice)


def load_config_dict(path: str | Path, _seen: tuple[Path, ...] = (), _reads: list | None = None) -> dict:
    """Read a YAML config (a path, or the name of a packaged config such as `quick/mmnist`) and
    resolve its `base:` chain into one mapping (not validated yet)."""
    from stcbench.config_files import find_config

    path = find_config(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"config `base:` inheritance loops: {chain}")
    _reads = [] if _reads is None else _reads
    _reads.append(path)
    if len(_reads) > MAX_BASE_READS:
        raise ConfigError(f"config `base:` chains starting at {_reads[0]} read more than {MAX_BASE_READS} files "
                          f"({path} among them; bases that name the same files again multiply); name each base once")
    data = read_yaml(path)
    _plugins_beside(data, path.parent)
    bases = base_paths(data, path)
    data.pop("base", None)
    if not bases:
        return data
    merged: dict = {}
    for base, base_path in bases:
        if not base_path.exists():
            raise ConfigError(f"{path}: its `base:` {base!r} names no file ({base_path} does not exist) and no shipped "
                              f"config; give a path relative to that file or a shipped name such as quick/mmnist")
        merged = deep_merge(merged, load_config_dict(base_path, (*_seen, path), _reads))
    return deep_merge(merged, data)


def base_paths(data: dict, path: Path) -> list[tuple[str, Path]]:
    """(entry, file) of each `base:` of the config `data` read from `path`, in order; none without `base:`."""
    bases = data.get("base")
    if bases is None:
        return []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b.strip() for b in bases):
        raise ConfigError(f"{path}: `base:` must be a path or a list of paths (none empty), got {bases!r}")
    return [(base, _base_path(base, Path(path).parent)) for base in bases]


def _base_path(base: str, folder: Path) -> Path:
    """A `base:` entry: a path relative to the config's folder, else the name of a shipped config (quick/mmnist)."""
    from stcbench.config_files import packaged_config

    beside = folder / base
    if beside.exists():
        return beside
    return packaged_config(base) or beside


def _plugins_beside(data: dict, folder: Path) -> None:
    """Plugin files named relative to the config file are found beside it (else relative to the working folder,
    as before)."""
    plugins = data.get("plugins")
    if not isinstance(plugins, list):
        return
    for i, spec in enumerate(plugins):
        if isinstance(spec, str) and spec.strip().endswith(".py") and not Path(spec.strip()).expanduser().is_absolute():
            beside = folder / spec.strip()
            if beside.is_file():
                plugins[i] = str(beside.resolve())


# ------------------------------------------------------------------------------------------
# overrides
# ------------------------------------------------------------------------------------------
class CliText(str):
    """A value typed on the command line, not parsed yet: `build` reads it as the declared type of
    the field it lands in."""


def parse_override(text: str) -> tuple[str, CliText]:
    """`optim.lr=1e-4` -> ("optim.lr", CliText("1e-4"))."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. optim.lr=1e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key; use section.key=value")
    return key, CliText(raw.strip())


def apply_overrides(config: dict, overrides: dict[str, Any] | None) -> dict:
    """Set dotted keys (`trainer.max_epochs`) in a copy of `config`."""
    result = copy.deepcopy(config)
    for dotted, value in (overrides or {}).items():
        node = result
        parts = str(dotted).split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {dotted!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def _yaml_value(text: str, key: str | None = None) -> Any:
    """Free-form text (a value inside a mapping field such as cell_options) read as YAML; numbers in
    exponent form (`1e-4`, which YAML 1.1 reads as a string) as numbers. Text that is not plain YAML stays text,
    unless it is the whole value of the field `key` (a structured value typed on the command line: no tags that
    name Python objects); no value may contain itself."""
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        if key is None:
            return str(text)            # the text itself, no longer command-line text to be read
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise ConfigError(f"{key}={text!r} is not plain YAML ({problem}); write a value such as "
                          f"{key}={{threshold: 0.5}} (quote it for the shell)") from None
    if contains_itself(value):
        shown = f"{key}={text!r}" if key is not None else repr(text)
        raise ConfigError(f"{shown} contains itself (a YAML alias inside its own anchor); write the value out in full")
    if expanded_size(value) > MAX_VALUES:
        shown = f"{key}=..." if key is not None else "a value"
        raise ConfigError(f"{shown} expands to more than {MAX_VALUES:,} values (YAML aliases that repeat one "
                          f"another); write the value out")
    if isinstance(value, str):
        try:
            return float(text)
        except ValueError:
            return value
    return value


def _plain_text(value: Any) -> Any:
    """CliText anywhere inside a free-form value -> YAML-read values."""
    if isinstance(value, CliText):
        return _yaml_value(value)
    if isinstance(value, dict):
        return {k: _plain_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_text(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------
# validation into the dataclasses
# ------------------------------------------------------------------------------------------
def has_key(cls, dotted: str) -> bool:
    """Whether the config dataclass `cls` has the (dotted) key, e.g. "data.dataset"."""
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(cls) or part not in {f.name for f in dataclasses.fields(cls)}:
            return False
        cls = typing.get_type_hints(cls)[part]
    return True


def build(cls, data: dict, where: str = ""):
    """Validate a mapping into the dataclass `cls` (missing keys take their defaults), run each field's
    check and then the class's own `validate()` (checks that involve several fields)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        place = f"section {where!r}" if where else "the top level"
        raise ConfigError(f"unknown config key(s) {[f'{where}.{k}'.lstrip('.') for k in unknown]} in {place}; "
                          f"allowed: {names}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        key = f"{where}.{f.name}".lstrip(".")
        value = coerce(hints[f.name], data[f.name], key)
        check = f.metadata.get("check")
        problem = check(value) if check is not None else None
        if problem:
            raise ConfigError(f"{key} {problem}, got {value!r}")
        kwargs[f.name] = value
    built = cls(**kwargs)
    validate = getattr(built, "validate", None)
    if callable(validate):
        validate()
    return built


def coerce(tp, value, key: str):
    """`value` (from YAML, Python, or CliText typed on the command line) as the declared type `tp`."""
    if isinstance(value, CliText):
        return _from_text(tp, value, key)
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if value is None:
            return tp()
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a section (mapping) with keys {[f.name for f in dataclasses.fields(tp)]}, "
                              f"got {value!r}")
        return build(tp, value, key)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option_tp in options:   # an exact type match wins (1 stays int, 1.0 stays float)
            if option_tp in (int, float, str, bool) and type(value) is option_tp:
                return value
        for option_tp in options:
            if option_tp is type(None):
                continue
            try:
                return coerce(option_tp, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key} must be {describe(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or type(value) is not type(next(c for c in choices if c == value)):
            raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be {describe(tp)}, got {value!r}")
        return [coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return _plain_text(dict(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


NULL_WORDS = ("null", "~", "")
BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def _from_text(tp, text: str, key: str):
    """Command-line text read as the declared type: a str field takes the text as it is; numbers are read by
    Python's rules (`010` is ten, `1e3` a thousand)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return _union_from_text(typing.get_args(tp), text, key, tp)
    if tp is str:
        return str(text)
    if origin is Literal:
        for choice in typing.get_args(tp):
            if _choice_spelled(choice, text):
                return choice
        raise ConfigError(f"{key} must be one of {list(typing.get_args(tp))}, got {text!r}")
    if tp is bool:
        word = text.strip().lower()
        if word in BOOL_WORDS:
            return BOOL_WORDS[word]
        raise ConfigError(f"{key} must be true or false, got {text!r}")
    if tp is int:
        number = _int_text(text)
        if number is None:
            raise ConfigError(f"{key} must be an integer, got {text!r}")
        return number
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key} must be a number, got {text!r}") from None
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        items = _list_items(text)
        if items is None:
            raise ConfigError(f"{key} must be a list such as [64, 64] or 64,64, got {text!r}")
        return [_from_text(item_tp, item, f"{key}[{i}]") for i, item in enumerate(items)]
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"{key} is a section; set its keys one by one ({key}.<key>=value)")
    return coerce(tp, _yaml_value(text, key), key)


MAX_VALUES = 100_000        # values a config may expand to once YAML's aliases are written out


def expanded_size(value, sizes: dict | None = None) -> int:
    """How many values `value` holds with every YAML alias written out, each shared node counted once per use but
    walked once (so an exponential "billion laughs" file is measured in linear time). Call after
    `contains_itself` has ruled out cycles."""
    if not isinstance(value, (dict, list)):
        return 1
    sizes = {} if sizes is None else sizes
    if id(value) not in sizes:
        children = value.values() if isinstance(value, dict) else value
        sizes[id(value)] = 1 + sum(expanded_size(child, sizes) for child in children)
    return sizes[id(value)]


def contains_itself(value, path: tuple = (), cleared: set | None = None) -> bool:
    """Whether a mapping or list read from YAML contains itself (`&a {x: *a}`), which no config value can. Each
    node is walked once (`cleared`): YAML aliases share nodes, and walking every path through them ("billion
    laughs", ten levels of nine aliases) would take 9^10 steps."""
    if not isinstance(value, (dict, list)):
        return False
    if id(value) in path:
        return True
    cleared = set() if cleared is None else cleared
    if id(value) in cleared:
        return False
    children = value.values() if isinstance(value, dict) else value
    if any(contains_itself(child, (*path, id(value)), cleared) for child in children):
        return True
    cleared.add(id(value))
    return False


def _union_from_text(options: tuple, text: str, key: str, tp):
    """The option the text spells: a Literal choice, an integer, a number, true/false, a list, a mapping,
    null, else the text itself where a string is allowed."""
    stripped = text.strip()
    for option_tp in options:
        if typing.get_origin(option_tp) is Literal and any(_choice_spelled(c, text) for c in typing.get_args(option_tp)):
            return _from_text(option_tp, text, key)
    if int in options and _int_text(text) is not None:
        return _int_text(text)
    if float in options:
        try:
            return float(stripped)
        except ValueError:
            pass
    if bool in options and stripped.lower() in BOOL_WORDS:
        return BOOL_WORDS[stripped.lower()]
    for option_tp in options:
        if typing.get_origin(option_tp) is list and (stripped.startswith("[") or "," in stripped):
            return _from_text(option_tp, text, key)
        if (option_tp is dict or typing.get_origin(option_tp) is dict) and stripped.startswith("{"):
            return coerce(option_tp, _yaml_value(text), key)
    if stripped.lower() in NULL_WORDS and type(None) in options:
        return None
    if str in options:
        return str(text)
    raise ConfigError(f"{key} must be {describe(tp)}, got {text!r}")


def _choice_spelled(choice, text: str) -> bool:
    if isinstance(choice, bool):
        return BOOL_WORDS.get(text.strip().lower()) is choice
    return str(choice) == text.strip()


def _int_text(text: str) -> int | None:
    """An integer as Python reads it (also 1e3, which is whole), else None."""
    try:
        return int(text.strip())
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _list_items(text: str) -> list[str] | None:
    """`[a, b]` or `a,b` -> ["a", "b"], each item still text."""
    stripped = text.strip()
    if stripped.startswith("["):
        if not stripped.endswith("]"):
            return None
        stripped = stripped[1:-1]
    return [CliText(part.strip()) for part in stripped.split(",") if part.strip()]


def describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(t) for t in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(tp))
    if origin is list:
        item = describe(typing.get_args(tp)[0])
        return "a list of " + {"an integer": "integers", "a number": "numbers", "a string": "strings"}.get(item, item)
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", dict: "a mapping"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# ------------------------------------------------------------------------------------------
# resolving, printing, documenting
# ------------------------------------------------------------------------------------------
def resolve(cls, source: str | Path | dict | None, overrides: dict[str, Any] | None = None):
    """Defaults < `source` (a YAML path or a mapping) < `overrides` (dotted keys), validated into `cls`."""
    if isinstance(source, dict):
        data = copy.deepcopy(source)
    elif source is None:
        data = {}
    else:
        data = load_config_dict(source)
    data.pop("base", None)
    return build(cls, apply_overrides(data, overrides))


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def dump(config) -> str:
    """The resolved config as YAML (what `--print-config` shows and run folders keep)."""
    return dump_mapping(to_dict(config))


class _ConfigDumper(yaml.SafeDumper):
    """Sections in block style (one key a line), lists of plain values on one line ([16, 16])."""


def _represent_dict(dumper, data):
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=False)


def _represent_list(dumper, data):
    flat = all(not isinstance(item, (dict, list, tuple)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_ConfigDumper.add_representer(dict, _represent_dict)
_ConfigDumper.add_representer(list, _represent_list)
_ConfigDumper.add_representer(tuple, _represent_list)


def dump_mapping(data: dict) -> str:
    """A config mapping as YAML, in the layout of `dump`, keys in their order."""
    return yaml.dump(data, Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True)


def field_rows(cls, prefix: str = ""):
    """(dotted key, type, default, help) of every leaf field of `cls`."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            yield from field_rows(hints[f.name], key + ".")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        yield key, describe(hints[f.name]), default, f.metadata.get("help", "")


def reference_markdown(cls) -> str:
    """The key table of a config class for the docs, one sub-table per section, from the declarations."""
    hints = typing.get_type_hints(cls)
    sections = [("", cls)] + [(f.name, hints[f.name]) for f in dataclasses.fields(cls)
                              if dataclasses.is_dataclass(hints[f.name])]
    lines = []
    for name, section in sections:
        rows = [f"| `{(name + '.' if name else '') + key}` | {kind} | `{_inline_yaml(default)}` | "
                f"{help_text.replace('|', chr(92) + '|')} |"
                for key, kind, default, help_text in _own_rows(section)]
        title = "Top level" if not name else f"`{name}` — {(section.__doc__ or '').strip()}"
        lines += [f"### {title}", "", "| key | type | default | meaning |", "|---|---|---|---|", *rows, ""]
    return "\n".join(lines)


def _own_rows(cls):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        yield f.name, describe(hints[f.name]), default, f.metadata.get("help", "")


def _inline_yaml(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


__all__ = ["option", "build", "coerce", "resolve", "dump", "to_dict", "parse_override",
           "apply_overrides", "load_config_dict", "read_yaml", "deep_merge", "reference_markdown", "field_rows",
           "CliText", "require", "describe", "at_least", "positive_finite", "within", "one_of", "positive_list",
           "fraction_or_count", "keyword_names"]
