"""The sending page: sending from HTTP and background tasks, misuse errors, the slow-client policy."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient

from fastapi_channels.channels import Channel
from tests.docs.samples import load


def test_sending_from_http_endpoints_and_background_tasks() -> None:
    sample = load("sending/from_http.py")
    with TestClient(sample.app) as client, client.websocket_connect("/news") as reader:
        assert client.post("/news", json={"title": "Docs shipped"}).json() == {"published": True}
        assert reader.receive_json() == {"action": "headline", "title": "Docs shipped"}
        assert client.post("/news/later", json={"title": "Tests pass"}).json() == {"queued": True}
        assert reader.receive_json() == {"action": "headline", "title": "Tests pass"}


def test_sending_before_the_app_starts_says_how_to_fix_it() -> None:
    sample = load("sending/from_http.py")
    with pytest.raises(RuntimeError, match="lifespan did not start"):
        with TestClient(sample.app).websocket_connect("/news"):
            pass
    with pytest.raises(RuntimeError, match="The channel layer is not running"):
        asyncio.run(sample.feed.broadcast_to_channel("news", "too early"))


def test_sending_without_add_channel_says_how_to_fix_it() -> None:
    app = FastAPI()
    room = Channel()

    @app.websocket("/room")
    async def room_endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    with TestClient(app) as client, pytest.raises(RuntimeError, match=r"call add_channel\(app\)"):
        with client.websocket_connect("/room"):
            pass


class Peer:
    """The client end of a websocket served in-process; while paused it stops reading, like a stalled client."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.reading = asyncio.Event()
        self.reading.set()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await self.reading.wait()
        await self.received.put(message)
        if message["type"] == "websocket.close":
            self.incoming.put_nowait({"type": "websocket.disconnect", "code": message.get("code", 1000)})

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.received.get(), 5)

    def send_json(self, data: Any) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(data)})


def websocket_scope(path: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "subprotocols": [],
    }


async def test_sending_client_that_stops_reading_is_closed_with_1013_and_others_get_everything() -> None:
    sample = load("sending/queue_size.py")
    left: list[str] = []
    sample.ticker.add_event_handler("leave", lambda websocket, channel: left.append(channel))
    reader, stalled = Peer(), Peer()
    async with sample.app.router.lifespan_context(sample.app):
        tasks = [
            asyncio.create_task(sample.app(websocket_scope("/ticker"), peer.receive, peer.send))
            for peer in (reader, stalled)
        ]
        try:
            for peer in (reader, stalled):
                assert (await peer.next())["type"] == "websocket.accept"  # accepted once in the channel
            stalled.reading.clear()
            reader.send_json({"action": "burst", "count": 100})
            ticks = [json.loads((await reader.next())["text"])["n"] for _ in range(100)]
            assert ticks == list(range(100))  # a reader gets everything, whatever happens to the other
            closed = await stalled.next()  # the frames queued for the stalled client were dropped
            assert (closed["type"], closed["code"]) == ("websocket.close", 1013)
            assert closed["reason"] == "Send queue full: the client is not reading."
            await asyncio.wait_for(tasks[1], 5)
            assert left == ["ticker"]
        finally:
            reader.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert left == ["ticker", "ticker"]
