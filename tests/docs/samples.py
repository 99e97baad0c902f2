"""Helpers the docs tests share: run a docs_src sample, read its error frames and closes, list and sync the pages."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from fastapi_channels.testing import receive_close, receive_json
from tests.conftest import ROOT

DOCS = ROOT / "docs"
SRC = ROOT / "docs_src"
README = ROOT / "README.md"


def load(relative: str, *, module_name: str | None = None) -> ModuleType:
    """Execute ``docs_src/<relative>`` as a fresh module and return it."""
    name = module_name or "docs_sample_" + relative[:-3].replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, SRC / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def error_frame(websocket: Any) -> dict[str, Any]:
    """Receive the next frame and check that it is an error frame."""
    frame = receive_json(websocket)
    assert frame["type"] == "response" and frame["status"] == "bad", frame
    return frame


def close_code(websocket: Any) -> int:
    """Return the close code of a socket the server closes now, without any frame before the close."""
    return receive_close(websocket)[0]


def spend(websocket: Any, action: str, times: int) -> None:
    """Call ``action`` ``times`` times, each answered by a frame that is not an error."""
    for _ in range(times):
        websocket.send_json({"action": action})
        frame = websocket.receive_text()
        assert not frame.startswith('{"type":"response","status":"bad"'), frame


def refused(websocket: Any, action: str) -> dict[str, Any]:
    """Call ``action`` once more and return the RateLimitExceeded frame that answers."""
    websocket.send_json({"action": action, "request_id": "over"})
    error = error_frame(websocket)
    assert (error["action"], error["request_id"], error["code"], error["close"]) == (action, "over", 1013, False)
    return error


def markdown_pages() -> list[Path]:
    """Return the Markdown pages of the site, sorted by name."""
    return sorted(DOCS.glob("*.md"))


def sync_samples() -> None:
    """Rewrite every sample block of the pages from its docs_src file; a bare marker line gets its block."""

    def block(match: re.Match[str]) -> str:
        relative = match.group(1)
        return f"<!-- {relative} -->\n```python\n{(ROOT / relative).read_text()}```\n"

    for page in [*markdown_pages(), README]:
        text = page.read_text()
        page.write_text(re.sub(r"<!-- (docs_src/[\w/]+\.py) -->\n(?:```python\n.*?```\n)?", block, text, flags=re.S))


if __name__ == "__main__":
    # After editing a docs_src file: `python -m tests.docs.samples` copies it into the pages that show it.
    sync_samples()


def refused_at_handshake(client: Any, path: str, headers: dict[str, str]) -> int:
    """Open ``path`` and return the close code the server refused the handshake with (before accepting)."""
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(path, headers=headers):
        pass
    return refused.value.code
