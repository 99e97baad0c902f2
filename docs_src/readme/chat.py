from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import Channel, action, add_channel, limiter

app = FastAPI()
add_channel(app)  # in memory; add_channel(app, url="redis://localhost:6379") shares rooms between processes


class ChatRoom(Channel):
    @limiter(times=5, seconds=10)  # per client: 5 messages at once, then one every 2 seconds
    @action()
    async def message(self, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"user": data.get("user"), "text": data.get("text")})

    @action()
    async def count(self, websocket: WebSocket, channel: str) -> None:
        await self.broadcast_to_personal(websocket, {"online": await self.get_connection_count(channel)})


chat = ChatRoom()


@app.websocket("/chat/{room}")
async def chat_endpoint(websocket: WebSocket, room: str) -> None:
    await chat.connect(websocket, channel=room)
