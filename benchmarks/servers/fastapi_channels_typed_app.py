"""The typed echo for ``../shared/bench/`` (variant ``t``): a small pydantic model in, the model as the reply.

The harness's echo client sends ``{"action": "typed_echo", "seq": N, "ts": T, "pad": "..."}`` and waits for a frame
holding its ``seq``; here the payload is validated as ``Echo`` and the handler's return value comes back as the reply
frame ``{"type": "response", "status": "ok", "action": "typed_echo", "request_id": null, "data": {...}}``.
Compare it with variant ``b``'s hand-written echo, which validates nothing.
"""

import os

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel

from fastapi_channels import Channel, action, add_channel

BACKEND = os.environ.get("BENCH_BACKEND", "memory")
URL = "memory://" if BACKEND == "memory" else os.environ["BENCH_REDIS_URL"]

app = FastAPI()
add_channel(app, url=URL)


class Echo(BaseModel):
    seq: int
    ts: float
    pad: str


class TypedRoom(Channel):
    @action("typed_echo")
    async def typed_echo(self, payload: Echo) -> Echo:
        return payload


room = TypedRoom()


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await room.connect(websocket, channel="echo")


@app.websocket("/fanout")
async def fanout(websocket: WebSocket) -> None:
    await room.connect(websocket, channel="room")
