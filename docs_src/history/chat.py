import os
from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
# memory:// keeps history in this process; give every process the same redis:// URL to share it.
add_channel(app, url=os.environ.get("BROADCAST_URL", "memory://"))


class Chat(Channel):
    history_size = 500  # each room keeps its last 500 messages...
    history_ttl = 600.0  # ...for 10 minutes at most

    @action("say")
    async def say(self, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"text": data.get("text")})


chat = Chat(app=app)


@app.websocket("/chat/{room}")
async def chat_endpoint(websocket: WebSocket, room: str) -> None:
    await chat.connect(websocket, channel=room)


@app.get("/chat/{room}/recent")
async def recent(room: str, since: int | None = None) -> dict[str, Any]:
    """The state a client loads: the last messages, and the position to resume from."""
    page = await chat.history(room, limit=50, since=since)
    return {
        "messages": [publication.data for publication in page.publications],
        "offset": page.offset,
        "epoch": page.epoch,
    }
