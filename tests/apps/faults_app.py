"""A channel served by uvicorn for fault tests: a slow action, and a log of joins, leaves and cancellations.

Environment: FAULTS_URL (broadcast URL, default memory://), FAULTS_NAMESPACE, FAULTS_LOG (a file each event is
appended to, so that a test can read it after the process has exited), FAULTS_QUEUE_BYTES, FAULTS_ORIGINS
(space-separated allowed origins), FAULTS_HEARTBEAT and FAULTS_LIFETIME (seconds), FAULTS_CACHED_BUCKETS.
"""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI, WebSocket

from fastapi_channels import (
    BaseChannel,
    Channel,
    PermissionDenied,
    RateLimitExceeded,
    action,
    add_channel,
    drain,
    limiter,
    throttling,
)

# A small bucket cache (FAULTS_CACHED_BUCKETS) shows that limits hold whatever the number of keys.
throttling.MAX_CACHED_BUCKETS = int(os.environ.get("FAULTS_CACHED_BUCKETS", str(throttling.MAX_CACHED_BUCKETS)))

app = FastAPI()
add_channel(
    app,
    url=os.environ.get("FAULTS_URL", "memory://"),
    namespace=os.environ.get("FAULTS_NAMESPACE", "fastapi-channels"),
    limiter_prefix=os.environ.get("FAULTS_NAMESPACE", "fastapi-channels"),
    send_queue_bytes=int(os.environ.get("FAULTS_QUEUE_BYTES", str(16 * 1024 * 1024))),
    allowed_origins=os.environ["FAULTS_ORIGINS"].split() if os.environ.get("FAULTS_ORIGINS") else None,
    heartbeat_interval=float(os.environ["FAULTS_HEARTBEAT"]) if os.environ.get("FAULTS_HEARTBEAT") else None,
    max_lifetime=float(os.environ["FAULTS_LIFETIME"]) if os.environ.get("FAULTS_LIFETIME") else None,
)
LOG = os.environ.get("FAULTS_LOG", os.devnull)


def record(event: str) -> None:
    """Append ``event`` to the log file, at once (the process may be about to exit)."""
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(event + "\n")


class Faults(Channel):
    @action()
    async def slow(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, "started")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            record("cancelled")
            raise
        record("finished")

    @action()
    async def echo(self, websocket: WebSocket, data: dict[str, object]) -> None:
        await self.broadcast_to_personal(websocket, data)

    @limiter(times=10, seconds=60)
    @action()
    async def limited(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, "ok")

    @action()
    async def whisper(self, websocket: WebSocket, data: dict[str, str]) -> None:
        """Send ``text`` to this very connection, as a direct message through the backend."""
        await self.send_to_connection(self.get_connection_id(websocket) or "", data.get("text", ""))

    @limiter(times=5, hours=1, identifier=lambda websocket: websocket.query_params.get("device", "none"))
    @action()
    async def hourly(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, "ok")

    @action()
    async def shout(self, channel: str, data: dict[str, str]) -> None:
        await self.broadcast_to_channel(channel, data.get("text", ""))


room = Faults()
room.add_event_handler("join", lambda websocket, channel: record(f"join {channel}"))
room.add_event_handler("leave", lambda websocket, channel: record(f"leave {channel}"))


@room.on_event("join")
async def say_joined(websocket: WebSocket, channel: str) -> None:
    await room.broadcast_to_personal(websocket, "joined")


@app.websocket("/ws/{channel}")
async def serve(websocket: WebSocket, channel: str) -> None:
    await room.connect(websocket, channel=channel)


relay = BaseChannel()  # relays raw text, in channels of its own: a "lobby" here is not the lobby above


@app.websocket("/relay/{channel}")
async def serve_relay(websocket: WebSocket, channel: str) -> None:
    await relay.connect(websocket, channel=channel)


@app.post("/drain")
async def start_draining() -> int:
    return drain(app, reconnect_in=(1.0, 5.0))


@app.get("/deny")
async def deny() -> None:
    raise PermissionDenied(error_msg="Members only.")


@app.get("/busy")
async def busy() -> None:
    raise RateLimitExceeded(retry_after=1.5)


@app.get("/count/{channel}")
async def count(channel: str) -> int:
    return await room.get_connection_count(channel)
