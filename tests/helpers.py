"""Helpers several test modules share: serve channels, wait until a client has joined, call an action, authenticate."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.testclient import WebSocketTestSession

from fastapi_channels import add_channel
from fastapi_channels.channels import BaseChannel
from fastapi_channels.testing import receive_json, receive_text, send_action

JOINED = "joined"


def serve(
    rooms: BaseChannel | Mapping[str, BaseChannel],
    *,
    path: str = "/ws",
    authenticated: bool = False,
    **add_channel_options: Any,
) -> FastAPI:
    """Return an app set up with ``add_channel(app, **add_channel_options)`` that serves ``rooms``.

    One room is served at ``path`` (on its own channel) and at ``path/{name}`` (on the channel ``name``); a
    mapping serves each of its rooms at ``/<key>`` (on the room's own channel). With ``authenticated``, the app
    runs behind Starlette's AuthenticationMiddleware with HeaderAuthentication: the ``x-user`` header names
    the user.
    """
    app = FastAPI()
    add_channel(app, **add_channel_options)
    if isinstance(rooms, BaseChannel):
        serve_own_and_named_channels(app, path, rooms)
    else:
        for key, room in rooms.items():
            serve_own_channel(app, f"/{key}", room)
    if authenticated:
        app.add_middleware(AuthenticationMiddleware, backend=HeaderAuthentication())
    return app


def serve_own_channel(app: FastAPI, path: str, room: BaseChannel) -> None:
    """Serve ``room`` at ``path`` on its own channel name."""

    async def endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    app.add_api_websocket_route(path, endpoint)


def serve_own_and_named_channels(app: FastAPI, path: str, room: BaseChannel) -> None:
    """Serve ``room`` at ``path`` on its own channel name and at ``path/{name}`` on the channel ``name``."""
    serve_own_channel(app, path, room)

    async def named_channel(websocket: WebSocket, name: str) -> None:
        await room.connect(websocket, channel=name)

    app.add_api_websocket_route(f"{path}/{{name}}", named_channel)


def greet_on_join(room: BaseChannel) -> None:
    """Send JOINED to each client once it is in its channel, so a test knows broadcasts reach it from then on."""
    room.add_event_handler("join", lambda websocket, channel: room.broadcast_to_personal(websocket, JOINED))


@contextlib.contextmanager
def joined(client: TestClient, path: str) -> Iterator[WebSocketTestSession]:
    """Connect to ``path`` and wait until the server says the client is in its channel."""
    with client.websocket_connect(path) as ws:
        assert receive_text(ws) == JOINED
        yield ws


def unread_socket(base_url: str) -> socket.socket:
    """Return a TCP connection to the server at ``base_url`` with a tiny receive buffer, for a client that will
    stop reading: the server then soon has to keep what it sends (pass it as ``websockets.connect(sock=...)``)."""
    host, port = base_url.removeprefix("http://").split(":")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    raw.connect((host, int(port)))
    return raw


def call(ws: WebSocketTestSession, name: str, **fields: Any) -> Any:
    """Send the action ``name`` and return the answer."""
    send_action(ws, name, **fields)
    return receive_json(ws)


class HeaderAuthentication(AuthenticationBackend):
    """Authenticate the user named in the ``x-user`` header; no header means anonymous."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        name = conn.headers.get("x-user")
        if not name:
            return None
        return AuthCredentials(["authenticated"]), SimpleUser(name)
