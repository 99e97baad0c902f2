from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.permission import BasePermission

app = FastAPI()
add_channel(app)

OPEN_BOARDS = {"python", "rust"}


class BoardExists(BasePermission):
    """Only boards we host can be joined."""

    async def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        # async: a real app would look the board up in its database here.
        return context["channel"] in OPEN_BOARDS


class IsModerator(BasePermission):
    """For illustration only: trust a query parameter. Use real authentication in your app."""

    def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return websocket.query_params.get("role") == "moderator"


class Board(Channel):
    permission_classes = [BoardExists]  # checked when a client connects and before every action

    @action()
    async def post(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "post", "text": data.get("text")})

    @action(permission=IsModerator)  # checked after the channel's permission, for this action only
    async def pin(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "pin", "post": data.get("post")})


board = Board()


@app.websocket("/boards/{name}")
async def board_endpoint(websocket: WebSocket, name: str) -> None:
    await board.connect(websocket, channel=name)
