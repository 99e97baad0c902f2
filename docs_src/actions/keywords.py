from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
add_channel(app)


class Toolbox(Channel):
    @action()
    async def ping(self, websocket: WebSocket) -> None:
        # Ask only for what you use: this handler takes nothing but the socket.
        await self.broadcast_to_personal(websocket, "pong")

    @action()
    async def echo(self, websocket: WebSocket, data: dict[str, Any], request_id: int | str | None) -> None:
        await self.broadcast_to_personal(websocket, {"request_id": request_id, "echo": data.get("text")})

    @action()
    async def where(self, websocket: WebSocket, channel: str, action: str) -> None:
        await self.broadcast_to_personal(websocket, {"action": action, "channel": channel})

    @action()
    async def classic(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        # The signature most code uses; **kwargs receives nothing more.
        await self.broadcast_to_personal(websocket, {"action": data["action"], "extra": sorted(kwargs)})


toolbox = Toolbox()


@app.websocket("/tools")
async def tools_endpoint(websocket: WebSocket) -> None:
    await toolbox.connect(websocket)
