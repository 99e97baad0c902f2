from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
add_channel(app, send_queue_size=16)  # frames waiting per connection before a non-reader is closed with 1013


class Ticker(Channel):
    @action()
    async def burst(self, channel: str, data: dict[str, Any]) -> None:
        for tick in range(int(data.get("count", 10))):
            await self.broadcast_to_channel(channel, {"action": "tick", "n": tick})


ticker = Ticker(channel="ticker")


@app.websocket("/ticker")
async def ticker_endpoint(websocket: WebSocket) -> None:
    await ticker.connect(websocket)
