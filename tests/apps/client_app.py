"""The app the browser client (fastapi_channels/static/channels.js) is tested against, served by real uvicorn processes.

Settings come from the environment: ``CLIENT_URL`` (memory:// or a Redis URL: then history outlives a restart)
and ``CLIENT_NAMESPACE`` (keeps test runs apart). ``GET /`` is a page that imports the client and wires every
event of the clients it makes into ``window.clients[name].events``, for Selenium to read.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import HTMLResponse

from fastapi_channels import add_channel, drain
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import PermissionDenied
from fastapi_channels.permission import DenyAll

URL = os.environ.get("CLIENT_URL", "memory://")
NAMESPACE = os.environ.get("CLIENT_NAMESPACE", "client-test")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>client test</title></head><body>
<script type="module">
import { ChannelClient, ChannelError } from "/fastapi-channels/channels.js";
const TYPES = ["open", "close", "reconnecting", "message", "publication", "resume", "gap", "reply", "error",
               "join", "leave", "drain", "frame", "send"];
window.clients = {};
window.makeClient = (name, path, options = {}) => {
  const client = new ChannelClient(path, options);
  const events = [];
  const numbers = {}; // channel -> the "n" of each publication handled, for tests that count thousands
  for (const type of TYPES) client.on(type, (detail) => events.push({ type, detail }));
  client.on("publication", (detail) => (numbers[detail.channel] ??= []).push(detail.data?.n ?? null));
  window.clients[name] = { client, events, numbers };
  return client;
};
window.settle = (promise, done) => promise.then(
  (value) => done({ ok: true, value: value ?? null }),
  (error) => done({ ok: false, name: error.name, message: error.message, isChannelError: error instanceof ChannelError,
                    frame: error.frame ?? null, code: error.code ?? null, timeout: error.timeout ?? false }),
);
window.ready = true;
</script>
</body></html>
"""


class Room(Channel):
    """A room that keeps its last 1000 broadcasts, with actions that answer, refuse and stay silent."""

    history_size = 1000
    client_subscriptions = True  # clients may subscribe to other rooms on the same connection

    @action
    async def echo(self, text: str) -> dict[str, Any]:
        """Answer with the text."""
        return {"text": text}

    @action
    async def refuse(self) -> None:
        """Answer with a PermissionDenied error frame; the socket stays open."""
        raise PermissionDenied(close=False)

    @action
    async def quiet(self) -> None:
        """Answer nothing."""

    @action
    async def say(self, channel: str, n: int) -> None:
        """Broadcast ``{"n": n}`` to the room."""
        await self.broadcast_to_channel(channel, {"n": n})


class Closed(Channel):
    """A channel nobody may join: the client reads an error frame, then the close with 1008."""

    permission_classes = [DenyAll]


def create_app(**options: Any) -> FastAPI:
    """The test app; ``options`` go to ``add_channel``."""
    app = FastAPI()
    add_channel(app, url=URL, namespace=NAMESPACE, **options)
    room, closed = Room(app=app), Closed(app=app)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.websocket("/room/{name}")
    async def room_endpoint(websocket: WebSocket, name: str) -> None:
        await room.connect(websocket, channel=name)

    @app.websocket("/closed")
    async def closed_endpoint(websocket: WebSocket) -> None:
        await closed.connect(websocket)

    @app.post("/publish/{name}")
    async def publish(name: str, n: int) -> dict[str, Any]:
        position = await room.broadcast_to_channel(name, {"n": n})
        assert position is not None
        return {"offset": position.offset, "epoch": position.epoch}

    @app.post("/drain")
    async def drain_now() -> dict[str, int]:
        return {"closed": drain(app, reconnect_in=(0.2, 0.4))}

    return app


app = create_app()
heartbeat_app = create_app(heartbeat_interval=0.3)
