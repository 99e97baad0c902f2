from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
add_channel(app)


class Lobby(Channel):
    channel = "lobby"

    @action  # no arguments: the action takes the method's name, "hello"
    async def hello(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "hello", "text": "Welcome to the lobby!"})

    @action("shout")  # the name clients send, whatever the method is called
    async def broadcast_shout(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "shout", "text": str(data.get("text", "")).upper()})

    @action(name="rooms")
    async def list_rooms(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        """List the rooms a client can join."""
        await self.broadcast_to_personal(websocket, {"action": "rooms", "rooms": ["lobby", "games", "music"]})


lobby = Lobby()
print(lobby.actions)  # ['hello', 'shout', 'rooms']


@app.websocket("/lobby")
async def lobby_endpoint(websocket: WebSocket) -> None:
    await lobby.connect(websocket)
