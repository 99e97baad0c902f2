"""docs/add-channel.md documents every argument of ``add_channel``, and its signature line is the real one."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from fastapi_channels import add_channel

PAGE = Path(__file__).resolve().parent.parent / "docs" / "add-channel.md"
# A row of the arguments table starts with the argument's name in backticks.
ARGUMENT_ROW = re.compile(r"^\| `(\w+)` \|", re.M)
SIGNATURE_BLOCK = re.compile(r"```text\n(add_channel\(.*\))\n```")


def arguments_section() -> str:
    """Return the page's "Arguments" section, up to the next heading of the same level."""
    text = PAGE.read_text(encoding="utf-8")
    start = text.index("\n## Arguments\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_add_channel_page_arguments_table_lists_every_parameter_once() -> None:
    documented = ARGUMENT_ROW.findall(arguments_section())
    assert len(documented) == len(set(documented)), f"documented twice: {documented}"
    parameters = set(inspect.signature(add_channel).parameters) - {"app"}
    assert set(documented) - {"app"} == parameters


def test_add_channel_page_signature_line_matches_the_function() -> None:
    match = SIGNATURE_BLOCK.search(PAGE.read_text(encoding="utf-8"))
    assert match is not None, "the page should start with add_channel's signature in a text block"
    app, *keywords = inspect.signature(add_channel).parameters.values()
    expected = f"add_channel({app.name}, *, " + ", ".join(f"{p.name}={p.default!r}" for p in keywords) + ")"
    assert match.group(1) == expected
