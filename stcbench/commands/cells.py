"""`stcbench cells [NAME]`: the registered neuron cells, read from the registry.

Without NAME: one entry per cell (options, variants, description, official class, source)
and the cells the spatio-temporal circuit can wrap (`stc_<cell>`).  With NAME: one cell in
detail, including its learnable parameters for an example size.
"""
from __future__ import annotations

import sys

from stcbench.strict_json import dumps

EXAMPLE_SIZE = (4, 16)        # in_channels, hidden_channels of the example instance
FORMATS = ("text", "markdown", "json")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cells", help="list the neuron cells (or show one in detail)",
        description="Every registered cell with its options, variants and sources. Cells registered by "
                    "plugins (STCBENCH_PLUGINS, entry points 'stcbench.cells', --plugin) appear too.")
    parser.add_argument("name", nargs="?", help="a cell name or alias (e.g. stclif, STC-LIF, stc_tclif)")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_PY",
                        help="import a module or .py file that registers cells (repeatable)")
    parser.set_defaults(func=run)


# -- records ---------------------------------------------------------------------------------
def _show(value) -> object:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_show(v) for v in value]
    return repr(value)


def stc_bases() -> list[str]:
    """Registered cells the circuit can wrap as `stc_<cell>`."""
    from stcbench.cells import list_cells, stc
    from stcbench.errors import ConfigError

    names = []
    for info in list_cells():
        try:
            if stc.is_stc_name(f"stc{info.name}"):
                names.append(info.name)
        except ConfigError:
            pass
    return names


def example_cell(info, variant: str = "reference"):
    import torch

    torch.manual_seed(0)
    variant = variant if variant in info.variants else info.variants[0]
    return info.factory(*EXAMPLE_SIZE, variant=variant)


def cell_record(info, detail: bool = False) -> dict:
    aliases = sorted({*info.aliases, *([info.official_class] if info.official_class else [])})
    record = {
        "name": info.name,
        "description": info.description,
        "official_class": info.official_class,
        "aliases": aliases,
        "source": info.source,
        "variants": list(info.variants),
        "spiking": info.spiking,
        "options": {k: _show(v) for k, v in info.parameters().items()},
    }
    if info.extra:
        record["extra"] = {k: _show(v) for k, v in info.extra.items()}
    cell = example_cell(info)
    record["state_names"] = list(cell.state_names)
    if detail:
        record["parameters"] = {}
        for variant in info.variants:
            instance = example_cell(info, variant)
            record["parameters"][variant] = {
                "shapes": {n: list(p.shape) for n, p in instance.named_parameters()},
                "without_grad": list(instance.no_grad_parameters()),
            }
        record["example_size"] = {"in_channels": EXAMPLE_SIZE[0], "hidden_channels": EXAMPLE_SIZE[1]}
    return record


def catalog() -> dict:
    from stcbench.cells import list_cells

    return {"cells": [cell_record(i) for i in list_cells()], "stc_wrappable": stc_bases()}


# -- rendering -------------------------------------------------------------------------------
def stc_names(data: dict) -> list[str]:
    """`stc_<cell>` names; where an official STC cell has that name, say so."""
    registered = {c["name"] for c in data["cells"]}
    return [f"stc_{b}" + (f" (= {'stc' + b})" if f"stc{b}" in registered else "") for b in data["stc_wrappable"]]


def render_list(data: dict, fmt: str) -> str:
    cells = data["cells"]
    if fmt == "json":
        return dumps(data) + "\n"
    if fmt == "markdown":
        lines = ["| cell | official class | variants | description | options | source |",
                 "|---|---|---|---|---|---|"]
        for c in cells:
            lines.append(f"| `{c['name']}` | {c['official_class'] or '—'} | {', '.join(c['variants'])} | "
                         f"{c['description']} | {', '.join(f'`{k}`' for k in c['options'])} | {c['source']} |")
        lines.append("")
        lines.append("Spatio-temporal circuit around any of: " + ", ".join(f"`{n}`" for n in stc_names(data)))
        return "\n".join(lines) + "\n"
    lines = []
    for c in cells:
        official = f"  [{c['official_class']}]" if c["official_class"] else ""
        lines.append(f"{c['name']}{official} - {c['description']}")
        lines.append(f"    variants: {', '.join(c['variants'])}   states: {', '.join(c['state_names'])}")
        lines.append(f"    options: {', '.join(c['options'])}")
        lines.append(f"    source: {c['source']}")
    lines.append("")
    lines.append("stc_<cell> (spatio-temporal circuit): " + ", ".join(stc_names(data)))
    lines.append("Details: stcbench cells NAME")
    return "\n".join(lines) + "\n"


def render_detail(record: dict, fmt: str) -> str:
    if fmt == "json":
        return dumps(record) + "\n"
    size = record["example_size"]
    if fmt == "markdown":
        lines = [f"### `{record['name']}`", "", record["description"], "",
                 f"* official class: {record['official_class'] or '—'}",
                 f"* aliases: {', '.join(record['aliases']) or '—'}",
                 f"* source: {record['source']}",
                 f"* variants: {', '.join(record['variants'])}",
                 f"* states: {', '.join(record['state_names'])}", "",
                 "| option | default |", "|---|---|"]
        lines += [f"| `{k}` | `{v!r}` |" for k, v in record["options"].items()]
        for variant, info in record["parameters"].items():
            lines += ["", f"Parameters ({variant}, C_in={size['in_channels']}, C={size['hidden_channels']}):", ""]
            lines += [f"* `{n}` {s}" + (" (no gradient by design)" if n in info["without_grad"] else "")
                      for n, s in info["shapes"].items()]
        return "\n".join(lines) + "\n"
    lines = [f"{record['name']} - {record['description']}",
             f"  official class: {record['official_class'] or '-'}",
             f"  aliases:        {', '.join(record['aliases']) or '-'}",
             f"  source:         {record['source']}",
             f"  variants:       {', '.join(record['variants'])}",
             f"  states:         {', '.join(record['state_names'])}",
             "  options:"]
    lines += [f"    {k} = {v!r}" for k, v in record["options"].items()]
    for variant, info in record["parameters"].items():
        lines.append(f"  parameters ({variant}, C_in={size['in_channels']}, C={size['hidden_channels']}):")
        lines += [f"    {n} {s}" + ("  (no gradient by design)" if n in info["without_grad"] else "")
                  for n, s in info["shapes"].items()]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    from stcbench.cells import get_cell_info, load_plugins

    load_plugins(args.plugin)
    if args.name:
        text = render_detail(cell_record(get_cell_info(args.name), detail=True), args.format)
    else:
        text = render_list(catalog(), args.format)
    sys.stdout.write(text)
    return 0
