import os
from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.throttling import limiter

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

app = FastAPI()
# One Redis carries the broadcasts, the direct messages, who is online and the rate limits of every process.
add_channel(app, url=REDIS_URL, limiter_url=REDIS_URL)


class Lobby(Channel):
    max_connection = 500  # for the whole cluster, however many processes serve it

    @limiter(times=5, seconds=10)  # per client, across every process
    @action("say")
    async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "said", "text": data.get("text")})

    @action("online")
    async def online(self, websocket: WebSocket, channel: str) -> None:
        count = await self.get_connection_count(channel)  # every process's connections
        await self.broadcast_to_personal(websocket, {"action": "online", "count": count})


lobby = Lobby(channel="lobby", app=app)


@app.websocket("/lobby")
async def lobby_endpoint(websocket: WebSocket) -> None:
    await lobby.connect(websocket)
