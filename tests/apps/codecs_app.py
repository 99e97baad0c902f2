"""Channels that speak several codecs, served by uvicorn for tests/test_codecs.py.

Settings come from the environment: ``CODECS_URL`` (the broadcast backend, memory:// by default),
``CODECS_NAMESPACE`` (keeps test runs sharing a Redis apart) and ``CODECS_HEARTBEAT`` (seconds, none by default).
Clients log in with a subprotocol token (``access_token.<name>``), the way browsers do.

- ``/ws/{name}``: JSON text and MessagePack (``Room``), JSON text preferred;
- ``/binary/{name}``: JSON in binary frames, then JSON text and MessagePack;
- ``/text``: JSON text only, the default;
- ``/msgpack``: MessagePack only;
- ``/hooks``: JSON text and MessagePack, with ``on_receive`` overridden.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel
from starlette.middleware.authentication import AuthenticationMiddleware

from fastapi_channels import add_channel
from fastapi_channels.auth import TokenAuthentication, from_subprotocol
from fastapi_channels.channels import Channel
from fastapi_channels.codecs import JSON_BINARY, JSON_TEXT, MSGPACK
from fastapi_channels.decorators import action

app = FastAPI()
add_channel(
    app,
    url=os.environ.get("CODECS_URL", "memory://"),
    namespace=os.environ.get("CODECS_NAMESPACE", "codecs-test"),
    heartbeat_interval=float(os.environ["CODECS_HEARTBEAT"]) if os.environ.get("CODECS_HEARTBEAT") else None,
)
app.add_middleware(AuthenticationMiddleware, backend=TokenAuthentication(from_subprotocol(), user=lambda token: token))


class Point(BaseModel):
    """A point on the board."""

    x: int
    y: float
    label: str = ""


class Room(Channel):
    """Typed and untyped actions that reply, broadcast, and describe what their handler received."""

    @action
    async def move(self, point: Point) -> Point:
        """Answer with the validated point."""
        return point

    @action
    async def inspect(self, data: dict[str, Any]) -> dict[str, Any]:
        """Answer with what the handler received: each value and the name of its type, at any depth."""
        return {"seen": _described(data)}

    @action
    async def say(self, channel: str, data: dict[str, Any]) -> None:
        """Send the text to everyone in the channel."""
        await self.broadcast_to_channel(channel, {"said": data.get("text")})

    @action
    async def plain(self, websocket: WebSocket, data: dict[str, Any]) -> None:
        """Send a plain string back, which is not JSON."""
        await self.broadcast_to_personal(websocket, str(data.get("text")))

    @action
    async def whoami(self, websocket: WebSocket) -> str:
        """Answer with the user's name."""
        return str(websocket.scope["user"].display_name)

    @action
    async def huge_number(self) -> int:
        """Answer with an integer MessagePack cannot hold."""
        return 2**70

    @action
    async def crash(self) -> None:
        """Fail with an unexpected error."""
        raise RuntimeError("boom")


class Hooked(Channel):
    """``on_receive`` overridden: it reads every frame as JSON text."""

    async def on_receive(self, websocket: WebSocket, channel: str, message: str) -> None:
        """Answer with the text the hook received and the type it had."""
        await self.broadcast_to_personal(websocket, {"message": message, "type": type(message).__name__})


def _described(value: Any) -> Any:
    """Return ``value`` with every leaf replaced by ``[leaf, type name]``."""
    if isinstance(value, dict):
        return {key: _described(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_described(item) for item in value]
    return [value, type(value).__name__]


room = Room(codecs=(JSON_TEXT, MSGPACK))
binary_room = Room(codecs=(JSON_BINARY, JSON_TEXT, MSGPACK))
text_room = Room()
msgpack_room = Room(codecs=(MSGPACK,))
hooked = Hooked(codecs=(JSON_TEXT, MSGPACK))


@app.websocket("/ws/{name}")
async def room_endpoint(websocket: WebSocket, name: str) -> None:
    """Serve the room ``name``."""
    await room.connect(websocket, channel=name)


@app.websocket("/binary/{name}")
async def binary_endpoint(websocket: WebSocket, name: str) -> None:
    """Serve the room ``name``, JSON in binary frames first."""
    await binary_room.connect(websocket, channel=name)


@app.websocket("/text")
async def text_endpoint(websocket: WebSocket) -> None:
    """Serve a room that reads JSON text only."""
    await text_room.connect(websocket)


@app.websocket("/msgpack")
async def msgpack_endpoint(websocket: WebSocket) -> None:
    """Serve a room that reads MessagePack only."""
    await msgpack_room.connect(websocket)


@app.websocket("/hooks")
async def hooks_endpoint(websocket: WebSocket) -> None:
    """Serve the channel whose on_receive is overridden."""
    await hooked.connect(websocket)
