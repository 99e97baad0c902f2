from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.permission import BasePermission

app = FastAPI()
add_channel(app)

BANNED = {"mallory"}


class IsModerator(BasePermission):
    def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return websocket.query_params.get("role") == "moderator"


class IsAuthor(BasePermission):
    async def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return websocket.query_params.get("user") == websocket.query_params.get("author")


def has_api_key(websocket: WebSocket, action: str | None, **context: Any) -> bool:
    return websocket.headers.get("x-api-key") == "let-me-in"


async def not_banned(websocket: WebSocket, action: str | None, **context: Any) -> bool:
    return websocket.query_params.get("user") not in BANNED


class Forum(Channel):
    channel = "forum"
    permission_classes = [not_banned]  # a plain async function works as a permission

    @action(permission=IsAuthor | IsModerator)  # either one is enough
    async def edit(self, websocket: WebSocket, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "edit", "status": "ok"})

    @action(permission=IsModerator & has_api_key)  # both are needed
    async def export(self, websocket: WebSocket, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "export", "status": "ok"})

    @action(permission=~IsModerator)  # anyone but a moderator
    async def report(self, websocket: WebSocket, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "report", "status": "ok"})

    @action(permission=[IsModerator, not_banned])  # a list: every item must allow
    async def lock(self, websocket: WebSocket, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "lock", "status": "ok"})

    @action(permission=False)  # nobody, for now
    async def purge(self, websocket: WebSocket, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "purge", "status": "ok"})


forum = Forum()


@app.websocket("/forum")
async def forum_endpoint(websocket: WebSocket) -> None:
    await forum.connect(websocket)
