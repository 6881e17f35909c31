"""Regenerate the config key tables of docs/configs.md from the declarations (the tests compare them).

    python tools/gen_config_docs.py
"""
from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configs.md"


def tables() -> dict[str, str]:
    from stcbench.memory.config import reference_markdown as memory_reference
    from stcbench.training.config import reference_markdown as video_reference

    return {"config keys": video_reference(), "memory config keys": memory_reference()}


def replace_block(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- BEGIN GENERATED: {name} -->\n", f"<!-- END GENERATED: {name} -->"
    if begin not in text:
        return text.rstrip("\n") + f"\n\n{begin}{body}{end}\n"
    head, rest = text.split(begin, 1)
    return head + begin + body + end + rest.split(end, 1)[1]


def main() -> None:
    text = DOCS.read_text()
    for name, body in tables().items():
        text = replace_block(text, name, body)
    DOCS.write_text(text)


if __name__ == "__main__":
    main()
