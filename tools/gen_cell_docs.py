"""Regenerate the option reference in docs/cells.md from the cell registry.

    python tools/gen_cell_docs.py            # rewrite the generated section
    python tools/gen_cell_docs.py --check    # exit 1 when docs/cells.md is out of date

The section between the BEGIN/END markers is replaced by one block per registered cell
(the same text as `stcbench cells NAME --format markdown`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "cells.md"
BEGIN = "<!-- BEGIN GENERATED: cell reference (tools/gen_cell_docs.py) -->"
END = "<!-- END GENERATED: cell reference -->"


def generated_section() -> str:
    from stcbench.cells import list_cells
    from stcbench.commands.cells import catalog, cell_record, render_detail, render_list

    parts = [render_list(catalog(), "markdown")]
    parts += [render_detail(cell_record(info, detail=True), "markdown") for info in list_cells()]
    return "\n".join(parts)


def updated_text(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC}: markers {BEGIN!r} / {END!r} not found")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{generated_section()}\n{END}{tail}"


def write_atomic(path: Path, text: str) -> None:
    from stcbench.atomic import write_text

    write_text(path, text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/cells.md is up to date")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    new = updated_text(text)
    if args.check:
        if new != text:
            print(f"{DOC} is out of date; run: python tools/gen_cell_docs.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        write_atomic(DOC, new)
    print(DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
