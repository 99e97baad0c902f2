from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import BaseChannel

app = FastAPI()
add_channel(app)

relay = BaseChannel(channel="lobby")


@app.websocket("/relay")
async def relay_endpoint(websocket: WebSocket) -> None:
    await relay.connect(websocket)


@app.websocket("/relay/{room}")
async def room_endpoint(websocket: WebSocket, room: str) -> None:
    await relay.connect(websocket, channel=room)
