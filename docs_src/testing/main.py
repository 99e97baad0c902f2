from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.permission import IsAuthenticated
from fastapi_channels.throttling import limiter


class Room(Channel):
    @limiter(times=2, minutes=1)
    @action()
    async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "say", "text": data.get("text")})

    @action(permission=IsAuthenticated)
    async def whoami(self, websocket: WebSocket) -> str:
        return str(websocket.user.display_name)

    @action()
    async def quit(self, websocket: WebSocket) -> None:
        await self.close(websocket)


room = Room(channel="room")


@room.on_event("leave")
async def say_goodbye(websocket: WebSocket, channel: str) -> None:
    await room.broadcast_to_channel(channel, {"action": "left"})


def create_app(**channel_options: Any) -> FastAPI:
    app = FastAPI()
    add_channel(app, **channel_options)  # url="redis://..." to share the rooms through Redis

    @app.websocket("/room")
    async def room_endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    return app


app = create_app()
