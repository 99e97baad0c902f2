from typing import Any

from fastapi import FastAPI, Response, WebSocket
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.metrics import ChannelMetrics, register_prometheus

app = FastAPI()
add_channel(app)
metrics: ChannelMetrics = app.state.fastapi_channels.metrics  # the counters add_channel keeps for this app

registry = CollectorRegistry()  # leave it out to use prometheus-client's default registry
register_prometheus(metrics, registry)


class ChatChannel(Channel):
    channel = "chat"

    @action("say")
    async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "said", "text": data.get("text", "")})


chat = ChatChannel()


@app.websocket("/chat")
async def chat_endpoint(websocket: WebSocket) -> None:
    await chat.connect(websocket)


@app.get("/metrics")
async def prometheus_metrics() -> Response:
    # async def: the counters are read in the event loop, the only thread that writes them.
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@app.get("/stats")
async def stats() -> dict[str, Any]:
    return metrics.stats()
