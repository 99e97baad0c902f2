from pathlib import Path

from fastapi import FastAPI, WebSocket
from fastapi.responses import FileResponse

from fastapi_channels import Channel, action, add_channel

app = FastAPI()
add_channel(app)  # also serves the browser client at /fastapi-channels/channels.js


class Board(Channel):
    history_size = 100  # a client that reconnects is sent what it missed
    client_subscriptions = True  # a client may follow other boards on the same connection

    @action
    async def post(self, channel: str, text: str) -> dict[str, int]:
        position = await self.broadcast_to_channel(channel, {"text": text})
        return {"offset": position.offset if position is not None else 0}


board = Board()


@app.websocket("/boards/{name}")
async def board_endpoint(websocket: WebSocket, name: str) -> None:
    await board.connect(websocket, channel=name)


@app.get("/")
async def page() -> FileResponse:
    return FileResponse(Path(__file__).with_name("page.html"))
