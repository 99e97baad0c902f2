"""The add_channel page: every option configures the app, conflicting options are refused, and the page
documents every argument of ``add_channel`` with its real signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient

import fastapi_channels
from fastapi_channels import add_channel, exceptions
from fastapi_channels.channels import Channel
from fastapi_channels.layers import create_broadcast
from tests.docs.samples import load, refused, spend


def test_add_channel_every_option_configures_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BROADCAST_URL", raising=False)
    monkeypatch.delenv("LIMITER_URL", raising=False)
    sample = load("add_channel/all_options.py")
    config = sample.app.state.fastapi_channels
    assert (config.url, config.limiter_url, config.limiters.prefix) == ("memory://", None, "myapp")
    assert (config.send_queue_size, config.send_queue_bytes, config.write_timeout) == (None, 1024 * 1024, 10.0)
    assert exceptions.WebSocketException in sample.app.exception_handlers
    room = Channel()

    @room.action()
    async def tick(websocket: WebSocket) -> None:
        await room.broadcast_to_personal(websocket, "tock")

    sample.app.add_api_websocket_route("/room", room.connect)
    with TestClient(sample.app) as client, client.websocket_connect("/room") as websocket:
        spend(websocket, "tick", 60)
        refused(websocket, "tick")


def test_add_channel_own_broadcast_and_own_lifespan() -> None:
    sample = load("add_channel/own_broadcast.py")
    with TestClient(sample.app) as client, client.websocket_connect("/alerts") as websocket:
        assert client.post("/alerts").json() == {"sent": True}
        assert websocket.receive_json() == {"action": "alert"}


def test_add_channel_refuses_conflicting_options() -> None:
    with pytest.raises(ValueError, match="Pass only one of url=, backend= and broadcast="):
        fastapi_channels.add_channel(FastAPI(), url="memory://", broadcast=create_broadcast("memory://"))


PAGE = Path(__file__).resolve().parents[2] / "docs" / "add-channel.md"
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
