"""In-process websockets for driving ``Connection`` and ``ChannelLayer`` directly, without an app."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.authentication import AuthCredentials, SimpleUser
from starlette.websockets import WebSocket

from fastapi_channels.layers import ChannelLayer
from fastapi_channels.outbox import Connection

TIMEOUT = 5.0


class Peer:
    """The client end of a websocket served in this process: it records what the server sends.

    While ``paused`` it stops taking text frames, like a client that stops reading: the server's send waits.
    """

    def __init__(self) -> None:
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.resumed = asyncio.Event()
        self.resumed.set()
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._incoming.put_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict[str, Any]:
        """ASGI receive: what the client sends to the server."""
        return await self._incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        """ASGI send: what the server sends to the client."""
        if message["type"] == "websocket.send":
            await self.resumed.wait()
            if message.get("text") is not None:
                message["text"].encode()  # as a server does before writing: text that is not UTF-8 raises
        await self.received.put(message)

    def pause(self) -> None:
        """Stop reading text frames."""
        self.resumed.clear()

    def resume(self) -> None:
        """Read again."""
        self.resumed.set()

    async def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Return the next message the server sent, failing after ``timeout`` seconds."""
        return await asyncio.wait_for(self.received.get(), timeout)

    async def next_text(self, timeout: float = TIMEOUT) -> str:
        """Return the next text frame; fail if the server closed instead."""
        message = await self.next(timeout)
        assert message["type"] == "websocket.send", f"expected a frame, got {message}"
        text: str = message["text"]
        return text

    def pending(self) -> list[dict[str, Any]]:
        """Return what the server sent that was not read yet, without waiting."""
        messages = []
        while not self.received.empty():
            messages.append(self.received.get_nowait())
        return messages


async def open_websocket(*, user: str | None = None) -> tuple[WebSocket, Peer]:
    """Return an accepted server-side ``WebSocket`` and its client ``Peer``, authenticated as ``user`` if given."""
    peer = Peer()
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b"", "client": ("127.0.0.1", 1)}
    if user is not None:
        scope["user"], scope["auth"] = SimpleUser(user), AuthCredentials(["authenticated"])
    websocket = WebSocket(scope, peer.receive, peer.send)
    await websocket.accept()
    assert (await peer.next())["type"] == "websocket.accept"
    return websocket, peer


class Member:
    """A connection of ``channel`` and the client end of its websocket, as ``BaseChannel.connect`` sets one up."""

    def __init__(self, connection: Connection, peer: Peer) -> None:
        self.connection = connection
        self.peer = peer

    @classmethod
    async def open(cls, channel: str, *, send_queue_size: int = 16, user: str | None = None) -> Member:
        """Open a websocket (of ``user``, if given) and wrap it in a running connection of ``channel``."""
        websocket, peer = await open_websocket(user=user)
        return cls(Connection(websocket, channel, send_queue_size=send_queue_size), peer)

    async def stop(self) -> None:
        """Stop writing: drop what is still queued for a client that does not read."""
        await self.connection.flush(timeout=0)


async def leave_all(layer: ChannelLayer, members: list[Member]) -> None:
    """Remove every member from the layer and stop their senders."""
    await asyncio.gather(*(layer.discard(member.connection) for member in members))
    await asyncio.gather(*(member.stop() for member in members))
