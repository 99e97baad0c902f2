"""The add_channel page: every option configures the app; conflicting options are refused."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient

import fastapi_channels
from fastapi_channels import exceptions
from fastapi_channels.channels import Channel
from fastapi_channels.layers import create_broadcast
from tests.docs.samples import load, refused, spend


def test_add_channel_every_option_configures_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BROADCAST_URL", raising=False)
    monkeypatch.delenv("LIMITER_URL", raising=False)
    sample = load("add_channel/all_options.py")
    config = sample.app.state.fastapi_channels
    assert (config.url, config.limiter_url, config.limiters.prefix) == ("memory://", None, "myapp")
    assert config.layer.send_queue_size == 256
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
