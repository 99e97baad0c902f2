"""Our Redis and PostgreSQL backends: one app started twice in one process, each time on its own event loop."""

from __future__ import annotations

import os
import uuid

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient

from fastapi_channels import add_channel
from fastapi_channels.channels import BaseChannel
from fastapi_channels.testing import receive_text

POSTGRES_URL = os.environ.get("FASTAPI_CHANNELS_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


@pytest.fixture(params=["redis", "postgres"])
def restart_url(request: pytest.FixtureRequest) -> str:
    """The broadcast URL of each backend of ours: redis:// and postgres://."""
    if request.param == "postgres":
        return POSTGRES_URL
    url: str = request.getfixturevalue("redis_url")
    return url


def relay_app(url: str, channel_name: str) -> FastAPI:
    """Return an app relaying every text to everyone in ``channel_name``, on its own namespace."""
    app = FastAPI()
    add_channel(app, url=url, namespace=f"test-{uuid.uuid4().hex}")
    room = BaseChannel()

    @app.websocket("/relay")
    async def relay(websocket: WebSocket) -> None:
        await room.connect(websocket, channel=channel_name)

    return app


def test_backend_app_started_twice_in_one_process_relays_both_times(restart_url: str, channel_name: str) -> None:
    app = relay_app(restart_url, channel_name)
    for run in ("first run", "second run"):
        # Each TestClient runs the app on a fresh event loop, as docs/testing.md has tests do.
        with TestClient(app) as client:
            with client.websocket_connect("/relay") as sender, client.websocket_connect("/relay") as listener:
                sender.send_text(run)
                assert receive_text(sender) == run
                assert receive_text(listener) == run
