"""Cell registry in the style of timm: `@register_cell("name")`, `create_cell(name, ...)`.

Names are case-insensitive and ignore '-', '_' and spaces, so `STC-LIF`, `stc_lif`,
`STCLIF` and `stclif` all name the same cell.
"""
from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Callable

from stcbench.cell_names import normalize_name  # noqa: F401  (re-exported)
from stcbench.errors import ConfigError


@dataclass
class CellInfo:
    name: str                      # canonical (normalised) name
    factory: Callable              # class or function building the cell
    description: str
    variants: tuple[str, ...] = ("reference",)
    aliases: tuple[str, ...] = ()
    official_class: str | None = None   # class name in the official STC-LIF code, if any
    source: str = ""                    # paper / code the dynamics come from
    spiking: bool = True
    stc_compatible: bool = True         # can be wrapped by the spatio-temporal circuit
    extra: dict = field(default_factory=dict)

    def parameters(self) -> dict[str, object]:
        """Constructor keyword arguments with their defaults (for listings and docs)."""
        target = self.factory.__init__ if inspect.isclass(self.factory) else self.factory
        params = {}
        for cls in (inspect.getmro(self.factory) if inspect.isclass(self.factory) else ()):
            if "__init__" in vars(cls):
                for p in inspect.signature(cls.__init__).parameters.values():
                    if p.kind == p.KEYWORD_ONLY and p.name not in params:
                        params[p.name] = p.default
        if not params:
            for p in inspect.signature(target).parameters.values():
                if p.kind == p.KEYWORD_ONLY:
                    params[p.name] = p.default
        return params

    def annotations(self) -> dict[str, object]:
        """The type hints of the constructor keyword arguments (those that can be resolved)."""
        hints = {}
        for cls in (inspect.getmro(self.factory) if inspect.isclass(self.factory) else (self.factory,)):
            init = vars(cls).get("__init__") if inspect.isclass(cls) else cls
            if init is None:
                continue
            try:
                resolved = typing.get_type_hints(init)
            except Exception:  # noqa: BLE001 - an unresolvable hint only skips the check
                continue
            for name, hint in resolved.items():
                hints.setdefault(name, hint)
        for name, default in self.parameters().items():    # unannotated: the type of its default
            if name not in hints and default is not inspect.Parameter.empty:
                hint = _hint_of_default(default)
                if hint is not None:
                    hints[name] = hint
        return hints


def _hint_of_default(default):
    """The type an unannotated option's default implies (a number: float, which takes ints too), or None."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return float
    return str if isinstance(default, str) else None


def _accepts(hint, value) -> bool:
    """True when `value` fits the type hint `hint` (numbers: an int is a float, a bool is neither); hints
    this does not understand accept anything."""
    if hint is typing.Any:
        return True
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(member, value) for member in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (tuple, list):
        return isinstance(value, (tuple, list))
    if origin is not None:
        return isinstance(value, origin) if isinstance(origin, type) else True
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _hint_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_option_types(info: "CellInfo", options: dict) -> None:
    """A ConfigError for the first option whose value does not fit the constructor's type hint."""
    hints = info.annotations()
    for name, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"cell {info.name!r} option {name} is {value}; give a finite number in "
                              f"model.cell_options")
        hint = hints.get(name)
        if hint is not None and not _accepts(hint, value):
            raise ConfigError(f"cell {info.name!r} option {name} must be {_hint_name(hint)}, got {value!r} "
                              f"({type(value).__name__}); fix it in model.cell_options")


_REGISTRY: dict[str, CellInfo] = {}
_ALIASES: dict[str, str] = {}


def register_cell(name: str, *, description: str | None = None, variants=("reference",), aliases=(),
                  official_class: str | None = None, source: str = "", spiking: bool = True,
                  stc_compatible: bool = True, **extra):
    """Decorator registering a cell class (or factory function) under `name`."""

    def decorator(factory):
        key = normalize_name(name)
        for given in (name, *aliases):
            taken = normalize_name(given)
            if taken in _REGISTRY or taken in _ALIASES:
                raise ValueError(f"cell {given!r} is already registered")
            if _named_by_rule(taken):
                raise ValueError(f"cell {given!r} is the name of a derived cell (the spatio-temporal circuit around "
                                 f"a registered one, stcbench/cells/stc.py); choose another name")
        wrapper = f"stc{key}"
        if _DERIVED and (wrapper in _REGISTRY or wrapper in _ALIASES):
            raise ValueError(f"cell {name!r}: the name stc_{name} of the circuit around it is already taken by the "
                             f"cell {_ALIASES.get(wrapper, wrapper)!r}; rename one of them")
        _check_options_have_defaults(name, factory)
        doc = description or (inspect.getdoc(factory) or "").strip().splitlines()[0:1]
        if isinstance(doc, list):
            doc = doc[0] if doc else ""
        _REGISTRY[key] = CellInfo(key, factory, doc, tuple(variants), tuple(aliases), official_class,
                                  source, spiking, stc_compatible, dict(extra))
        for alias in aliases:
            _ALIASES[normalize_name(alias)] = key
        if official_class:
            for alias in {official_class, official_class.removesuffix("Cell")}:
                _ALIASES.setdefault(normalize_name(alias), key)
        return factory

    return decorator


def _check_options_have_defaults(name: str, factory) -> None:
    """Every keyword option of a cell's constructor needs a default: configs give only the options they change."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return
    for p in parameters:
        if p.kind == p.KEYWORD_ONLY and p.default is p.empty:
            raise ValueError(f"cell {name!r}: keyword option {p.name!r} has no default; give it one "
                             f"(`{p.name}=...`, docs/new_cell.md), as configs set only the options they change")


def _named_by_rule(key: str) -> bool:
    try:
        return _derived(key) is not None
    except ConfigError:                    # a name the rule recognises but refuses is not taken by it either
        return False


def lookup_registered(name: str) -> CellInfo | None:
    """The registered cell (by name or alias) or None; never builds `stc_<cell>` entries."""
    key = normalize_name(name)
    return _REGISTRY.get(_ALIASES.get(key, key))


_DERIVED: list[tuple[Callable[[str], bool], Callable[[str], CellInfo]]] = []


def register_derived(recognises: Callable[[str], bool], info_for: Callable[[str], CellInfo]) -> None:
    """Cells named by a rule instead of one by one (`stc_<cell>`, stcbench/cells/stc.py): `recognises(key)` tells
    whether a normalised name is one of them (or raises a ConfigError saying why it cannot be), `info_for(key)`
    builds its CellInfo."""
    _DERIVED.append((recognises, info_for))


def _derived(key: str) -> Callable[[str], CellInfo] | None:
    return next((info_for for recognises, info_for in _DERIVED if recognises(key)), None)


def _ensure_loaded() -> None:
    import stcbench.cells  # noqa: F401  (imports every cell module, which registers it)


def resolve_name(name: str) -> str:
    _ensure_loaded()
    key = normalize_name(name)
    key = _ALIASES.get(key, key)
    if key in _REGISTRY or _derived(key) is not None:
        return key
    close = difflib.get_close_matches(key, list(_REGISTRY) + list(_ALIASES), n=1, cutoff=0.6)
    guess = f"did you mean {_ALIASES.get(close[0], close[0])!r}? " if close else ""
    raise ConfigError(f"unknown cell {name!r}; {guess}available: {', '.join(sorted(_REGISTRY))} "
                      f"(or 'stc_<cell>' for the spatio-temporal circuit around any of them); "
                      f"run `stcbench cells` for details. A cell from a plugin file needs that file: "
                      f"pass --set plugins=[file.py] (fit, test, bench) or set STCBENCH_PLUGINS=file.py, or list it "
                      f"with `stcbench cells --plugin file.py`")


def canonical_name(name: str) -> str:
    """The registry's name of `name` (aliases resolved), or its normalized spelling for a cell not registered here
    (a plugin not loaded): how runs name their cell in folders, records and tables."""
    try:
        return resolve_name(name)
    except ConfigError:
        return normalize_name(name)


def get_cell_info(name: str) -> CellInfo:
    key = resolve_name(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    return _derived(key)(key)


def list_cells() -> list[CellInfo]:
    _ensure_loaded()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def create_cell(name: str, in_channels: int, hidden_channels: int, **kwargs):
    """Build a registered cell. Unknown keyword arguments raise a ConfigError naming the allowed ones."""
    info = check_cell_options(name, kwargs)
    return info.factory(in_channels, hidden_channels, **kwargs)


def check_cell_options(name: str, options: dict) -> CellInfo:
    """The cell's info if it takes `options` (names, variant, types); else a ConfigError naming the allowed ones.
    Cheap: nothing is built, so a plan can check every run's options before the first one starts."""
    info = get_cell_info(name)
    allowed = info.parameters()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"cell {info.name!r} does not take {unknown}; allowed options: {sorted(allowed)}")
    variant = options.get("variant", "reference")
    if variant not in info.variants:
        raise ConfigError(f"cell {info.name!r} has no variant {variant!r}; choose one of {list(info.variants)}")
    check_option_types(info, options)
    return info
