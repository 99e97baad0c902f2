from typing import Annotated, Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel, Field

from fastapi_channels import Channel, action, add_channel

app = FastAPI()
add_channel(app)


class Stroke(BaseModel):
    x: int
    y: int
    color: str = "black"


class Canvas(Channel):
    @action()
    async def draw(self, stroke: Stroke, channel: str) -> None:
        # A model parameter takes the whole payload: the frame without "action" and "request_id".
        await self.broadcast_to_channel(channel, {"action": "draw", **stroke.model_dump()})

    @action()
    async def zoom(self, level: Annotated[int, Field(ge=1, le=10)], smooth: bool = False) -> dict[str, Any]:
        # Other annotated parameters take the payload field of their name; "smooth" may be left out.
        return {"level": level, "smooth": smooth}  # returned: the reply to the sender

    @action()
    async def clear(self, websocket: WebSocket, channel: str) -> None:
        # No typed parameter: an action as before, with no validation at all.
        await self.broadcast_to_channel(channel, {"action": "clear"})


canvas = Canvas(channel="canvas")


@app.websocket("/canvas")
async def canvas_endpoint(websocket: WebSocket) -> None:
    await canvas.connect(websocket)
