from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi_limiter.depends import WebSocketRateLimiter
from pyrate_limiter import Duration, Limiter, Rate

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
add_channel(app)


async def whole_room(websocket: WebSocket) -> str:
    # fastapi-limiter awaits its identifier, so this one must be async.
    return "auditorium"


# A fastapi-limiter Limiter built from a bare Rate keeps one bucket for every key: here that is the point,
# a cap on the whole room (all clients together), not a per-client limit.
room_cap = WebSocketRateLimiter(limiter=Limiter(Rate(100, Duration.MINUTE)), identifier=whole_room)


class Auditorium(Channel):
    throttle_classes = [room_cap]

    @action()
    async def question(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "question", "text": data.get("text")})


auditorium = Auditorium(channel="auditorium")


@app.websocket("/auditorium")
async def auditorium_endpoint(websocket: WebSocket) -> None:
    await auditorium.connect(websocket)
