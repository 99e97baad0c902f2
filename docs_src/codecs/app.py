from fastapi import FastAPI, WebSocket
from pydantic import BaseModel

from fastapi_channels import Channel, action, add_channel
from fastapi_channels.codecs import JSON_TEXT, MSGPACK

app = FastAPI()
add_channel(app)


class Position(BaseModel):
    x: float
    y: float


class Game(Channel):
    # JSON text for clients that offer no codec, MessagePack for those that offer "fastapi-channels.msgpack".
    codecs = (JSON_TEXT, MSGPACK)

    @action()
    async def move(self, position: Position) -> Position:
        # The same validated Position whichever codec the client speaks; the reply goes out in its codec.
        return position

    @action()
    async def shout(self, text: str, channel: str) -> None:
        # Encoded as JSON once, converted once for all the MessagePack clients of this process.
        await self.broadcast_to_channel(channel, {"action": "shout", "text": text})


game = Game()


@app.websocket("/game/{room}")
async def game_endpoint(websocket: WebSocket, room: str) -> None:
    await game.connect(websocket, channel=room)
