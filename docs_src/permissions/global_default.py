from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.permission import AllowAny, DenyAll

app = FastAPI()
add_channel(app, permission_classes=DenyAll)  # closed by default: each channel opens itself explicitly


def has_staff_badge(websocket: WebSocket, action: str | None, **context: Any) -> bool:
    return websocket.query_params.get("badge") == "staff"


class Room(Channel):
    @action()
    async def hello(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, "hello")


class PublicRoom(Room):
    permission_classes = [AllowAny]  # a class attribute overrides the app default


unfinished = Room(channel="unfinished")  # no permission of its own: DenyAll from add_channel
public = PublicRoom(channel="public")
staff = Room(channel="staff", permission_classes=[has_staff_badge])  # so does a constructor argument


@app.websocket("/unfinished")
async def unfinished_endpoint(websocket: WebSocket) -> None:
    await unfinished.connect(websocket)


@app.websocket("/public")
async def public_endpoint(websocket: WebSocket) -> None:
    await public.connect(websocket)


@app.websocket("/staff")
async def staff_endpoint(websocket: WebSocket) -> None:
    await staff.connect(websocket)
