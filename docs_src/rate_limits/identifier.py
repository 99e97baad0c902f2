from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.throttling import limiter

app = FastAPI()
add_channel(app)


def by_device(websocket: WebSocket) -> str:
    # Whose budget a request spends. Sync or async. Never trust X-Forwarded-For here.
    return "device:" + websocket.query_params.get("device", "unknown")


async def slow_down(websocket: WebSocket, retry_after_ms: int) -> None:
    # Called instead of sending the RateLimitExceeded error frame; the action does not run either way.
    await sensors.broadcast_to_personal(websocket, {"action": "slow_down", "retry_after_ms": retry_after_ms})


class Sensors(Channel):
    @limiter(times=2, seconds=10, identifier=by_device)
    @action()
    async def reading(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "reading", "value": data.get("value")})

    @limiter(times=1, seconds=30, ws_callback=slow_down)
    @action()
    async def calibrate(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "calibrate", "status": "started"})


sensors = Sensors(channel="sensors")


@app.websocket("/sensors")
async def sensors_endpoint(websocket: WebSocket) -> None:
    await sensors.connect(websocket)
