# Code written for fastapi-channels 0.0.1b2 keeps working: nothing below needed a change.
from typing import Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import PermissionDenied
from fastapi_channels.permission import AllowAny
from fastapi_channels.throttling import limiter
from fastapi_channels.used import GroupChannel

app = FastAPI()
add_channel(app, url="memory://")


class Reply(BaseModel):
    action: str
    message: Any = None
    status: str = "ok"
    request_id: int | str | None = None


class Room(Channel):
    @staticmethod
    async def encode_json(data: dict[str, Any]) -> str:
        return Reply(**data).model_dump_json()

    @limiter(times=2, seconds=60)  # 0.0.1b2 required @limiter above @action; both orders work now
    @action("count")
    async def get_count(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        data.update({"message": await self.get_connection_count(channel)})
        await self.broadcast_to_personal(websocket, await self.encode(data))  # already text: sent as it is

    @action("message")
    async def send_message(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        await self.broadcast_to_channel(channel, self.encode(data))  # a forgotten await is tolerated

    @action("permission_denied", permission=False)
    async def permission_false(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        await self.broadcast_to_channel(channel, data)

    @action(permission=AllowAny)
    async def error(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        raise PermissionDenied(close=False)

    @action()  # hides BaseChannel.close, as it did in 0.0.1b2: type checkers say so, and it works all the same
    async def close(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]
        await websocket.close()


room = Room()
group = GroupChannel()


async def join_room(websocket: WebSocket, channel: str) -> None:
    await group.broadcast_to_personal(websocket, "Join successfully")  # a str skips encode_json


group.add_event_handler("join", join_room)


@app.websocket("/room")
async def room_endpoint(websocket: WebSocket) -> None:
    await room.connect(websocket, channel="room")


@app.websocket("/group")
async def group_endpoint(websocket: WebSocket) -> None:
    await group.connect(websocket, channel="group")
