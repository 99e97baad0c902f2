import os
from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import Channel, action, add_channel, limiter

# One Redis for every worker and every host: broadcasts, rate limits and connection counts go through it.
REDIS_URL = os.environ.get("REDIS_URL") or None  # unset: in memory, which is right for one process only
# The pages allowed to open a socket here, e.g. "https://chat.example.com".
ALLOWED_ORIGINS = set(os.environ.get("ALLOWED_ORIGINS", "http://127.0.0.1:8000").split(","))

app = FastAPI()
add_channel(app, url=REDIS_URL, limiter_url=REDIS_URL, allowed_origins=sorted(ALLOWED_ORIGINS))


def same_origin(websocket: WebSocket, action: str | None, **context: Any) -> bool:
    """Refuse sockets opened by pages of other sites: a browser always sends its page's Origin."""
    return websocket.headers.get("origin") in ALLOWED_ORIGINS


class Chat(Channel):
    permission_classes = [same_origin]  # checked when a client connects and before every action

    @limiter(times=5, seconds=10)  # per client: its user when logged in, else its address
    @action()
    async def message(self, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "message", "text": data.get("text")})

    @action()
    async def online(self, websocket: WebSocket, channel: str) -> None:
        count = await self.get_connection_count(channel)  # every worker's connections, through Redis
        await self.broadcast_to_personal(websocket, {"action": "online", "count": count})


chat = Chat()


@app.websocket("/chat/{room}")
async def chat_endpoint(websocket: WebSocket, room: str) -> None:
    await chat.connect(websocket, channel=room)
