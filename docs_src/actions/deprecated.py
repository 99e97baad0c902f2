from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
add_channel(app)


class Profile(Channel):
    @action("get_name", deprecated=True)  # kept so old clients get a clear answer; never runs
    async def get_name(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"name": "Ada"})

    @action("get_profile")
    async def get_profile(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"name": "Ada", "language": "en"})


profile = Profile()


@app.websocket("/profile")
async def profile_endpoint(websocket: WebSocket) -> None:
    await profile.connect(websocket)
