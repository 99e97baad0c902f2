from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.throttling import limiter

app = FastAPI()
add_channel(app, throttle_classes=[limiter(times=20, minutes=1)])  # the default of every channel


class Quiet(Channel):  # no throttle_classes of its own: 20 requests a minute per client, all actions together
    @action()
    async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "say", "text": data.get("text")})

    @action()
    async def wave(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "wave"})


class Unlimited(Quiet):
    throttle_classes = []  # an empty list opts out of the app default


quiet = Quiet(channel="quiet")
unlimited = Unlimited(channel="unlimited")
relay = BaseChannel(channel="relay", throttle_classes=[limiter(times=3, seconds=3)])  # relayed text counts too


@app.websocket("/quiet")
async def quiet_endpoint(websocket: WebSocket) -> None:
    await quiet.connect(websocket)


@app.websocket("/unlimited")
async def unlimited_endpoint(websocket: WebSocket) -> None:
    await unlimited.connect(websocket)


@app.websocket("/relay")
async def relay_endpoint(websocket: WebSocket) -> None:
    await relay.connect(websocket)
