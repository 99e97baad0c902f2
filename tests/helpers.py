"""Helpers several test modules share: build an app, serve channels at paths, call an action, authenticate."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser
from starlette.requests import HTTPConnection
from starlette.testclient import WebSocketTestSession

from fastapi_channels import add_channel
from fastapi_channels.channels import BaseChannel
from fastapi_channels.testing import receive_json, send_action


def new_app(**add_channel_options: Any) -> FastAPI:
    """Return a FastAPI app set up with ``add_channel(app, **add_channel_options)``."""
    app = FastAPI()
    add_channel(app, **add_channel_options)
    return app


def route(app: FastAPI, path: str, room: BaseChannel) -> None:
    """Serve ``room`` (on its own channel name) at ``path``."""

    async def endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    app.add_api_websocket_route(path, endpoint)


def serve(app: FastAPI, **rooms: BaseChannel) -> FastAPI:
    """Serve each room at ``/<name>`` and return ``app``."""
    for name, room in rooms.items():
        route(app, f"/{name}", room)
    return app


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
