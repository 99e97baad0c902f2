"""An app that several uvicorn processes serve at once, sharing one Redis: the subject of tests/test_cluster.py.

Settings come from the environment: ``CLUSTER_REDIS_URL``, ``CLUSTER_NAMESPACE`` (keeps test runs apart) and
``CLUSTER_PRESENCE_TTL``. Clients name themselves with ``?user=`` (authentication for tests only).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.throttling import limiter

REDIS_URL = os.environ.get("CLUSTER_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = os.environ.get("CLUSTER_NAMESPACE", "cluster-test")
PRESENCE_TTL = float(os.environ.get("CLUSTER_PRESENCE_TTL", "30"))


class QueryUser(AuthenticationBackend):
    """Authenticate the user named by the ``user`` query parameter; none means anonymous."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        name = conn.query_params.get("user")
        return (AuthCredentials(["authenticated"]), SimpleUser(name)) if name else None


class Room(Channel):
    """Say things to everyone; ask who you are, who is here and how many; spend a shared limit."""

    @action("say")
    async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "said", "text": data.get("text")})

    @action("whoami")
    async def whoami(self, websocket: WebSocket, data: dict[str, Any]) -> None:
        user = websocket.scope["user"]
        reply = {"action": "whoami", "connection_id": self.get_connection_id(websocket), "user": user.display_name}
        await self.broadcast_to_personal(websocket, reply)

    @action("count")
    async def count(self, websocket: WebSocket, channel: str) -> None:
        await self.broadcast_to_personal(
            websocket, {"action": "count", "count": await self.get_connection_count(channel)}
        )

    @limiter(times=2, minutes=10)
    @action("limited")
    async def limited(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"action": "limited", "ok": True})


app = FastAPI()
app.add_middleware(AuthenticationMiddleware, backend=QueryUser())
add_channel(
    app, url=REDIS_URL, limiter_url=REDIS_URL, limiter_prefix=NAMESPACE, namespace=NAMESPACE, presence_ttl=PRESENCE_TTL
)

room = Room(app=app)
small_room = Room(app=app, max_connection=10)


@app.websocket("/room/{name}")
async def room_endpoint(websocket: WebSocket, name: str) -> None:
    await room.connect(websocket, channel=name)


@app.websocket("/small/{name}")
async def small_room_endpoint(websocket: WebSocket, name: str) -> None:
    await small_room.connect(websocket, channel=name)


@app.get("/count/{name}")
async def count(name: str) -> int:
    return await room.get_connection_count(name)


@app.get("/members/{name}")
async def members(name: str) -> list[dict[str, Any]]:
    return [{"connection_id": m.connection_id, "user": m.user, "node": m.node} for m in await room.get_members(name)]


@app.post("/say/{name}")
async def say(name: str, text: str) -> None:
    await room.broadcast_to_channel(name, {"action": "said", "text": text})


@app.post("/to-user/{user}")
async def to_user(user: str, text: str) -> None:
    await room.send_to_user(user, {"action": "direct", "text": text})


@app.post("/to-connection/{connection_id}")
async def to_connection(connection_id: str, text: str) -> None:
    await room.send_to_connection(connection_id, {"action": "direct", "text": text})


@app.get("/tasks")
async def tasks() -> list[str]:
    """The app-wide background tasks that are alive: none may die silently while Redis is away."""
    return sorted(task.get_name() for task in asyncio.all_tasks() if not task.done())
