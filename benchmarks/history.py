"""What history costs per publish, in process: a channel layer with one subscribed connection, no server.

For each backend (memory://, and redis:// with ``--url``) it publishes ``--messages`` messages one after
another to a channel without history (``ChannelLayer.publish``) and to one with history
(``ChannelLayer.publish_to_history``: the offset, the append, the trim and the publish), and reports the
microseconds per publish (the publisher's wait) and per delivered message (until the connection has written
it). Then it times one catch-up: a client that missed ``--missed`` publications joins and is sent them all.

    .venv/bin/python -m benchmarks.history
    .venv/bin/python -m benchmarks.history --url redis://127.0.0.1:6379/0 --messages 20000

Run it from the repository root, on a quiet machine: the figures are only as good as the quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

from starlette.websockets import WebSocket

from fastapi_channels.backends import create_broadcast
from fastapi_channels.history import HistoryPage, MemoryHistory, Position, RedisHistory, Retention
from fastapi_channels.layers import ChannelLayer
from fastapi_channels.outbox import Connection
from fastapi_channels.resume import Resumption

CHANNEL = "bench"


class Sink:
    """The client end of an in-process websocket that takes every frame at once and counts them."""

    def __init__(self) -> None:
        self.frames = 0
        self.reached = asyncio.Event()
        self.target = 0

    async def receive(self) -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            self.frames += 1
            if self.frames >= self.target:
                self.reached.set()

    async def wait_for(self, frames: int) -> None:
        self.target = frames
        if self.frames < frames:
            self.reached.clear()
            await asyncio.wait_for(self.reached.wait(), 60)


async def open_connection(sink: Sink) -> Connection:
    scope = {"type": "websocket", "path": "/", "headers": [], "query_string": b"", "client": ("127.0.0.1", 1)}
    websocket = WebSocket(scope, sink.receive, sink.send)
    await websocket.accept()
    return Connection(websocket, CHANNEL, send_queue_size=None)


async def running_layer(url: str) -> ChannelLayer:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    store = MemoryHistory() if url.startswith("memory") else RedisHistory(url, namespace=namespace)
    broadcast = create_broadcast(url)
    await broadcast.connect()
    layer = ChannelLayer(broadcast, namespace=namespace, history=store)
    await layer.start()
    return layer


async def stop(layer: ChannelLayer) -> None:
    await layer.stop()
    await layer.broadcast.disconnect()


async def publish_run(url: str, *, history: bool, messages: int, size: int) -> tuple[float, float]:
    """Return microseconds per publish and per delivered message, one subscribed connection."""
    layer = await running_layer(url)
    sink = Sink()
    connection = await open_connection(sink)
    topic = f"{CHANNEL}-{history}"
    connection.topic = topic
    await layer.add(connection)
    text = json.dumps({"text": "x" * size})
    retention = Retention(2000)

    async def publish() -> None:
        if history:
            await layer.publish_to_history(topic, CHANNEL, text, is_json=True, retention=retention)
        else:
            await layer.publish(topic, text)

    for _ in range(200):  # warm up: connections, scripts loaded, caches
        await publish()
    await sink.wait_for(200)
    started = time.perf_counter()
    for _ in range(messages):
        await publish()
    published = time.perf_counter()
    await sink.wait_for(200 + messages)
    delivered = time.perf_counter()
    await layer.discard(connection)
    await stop(layer)
    return (published - started) / messages * 1e6, (delivered - started) / messages * 1e6


async def catch_up_run(url: str, *, missed: int, size: int) -> float:
    """Return the milliseconds a client that missed ``missed`` publications takes to be sent them."""
    layer = await running_layer(url)
    retention = Retention(max(missed, 1))
    text = json.dumps({"text": "x" * size})
    last = None
    for _ in range(missed):
        last = await layer.publish_to_history(CHANNEL, CHANNEL, text, is_json=True, retention=retention)
    assert last is not None
    sink = Sink()
    connection = await open_connection(sink)

    async def read(since: int | None, limit: int | None) -> HistoryPage:
        return await layer.read_history(CHANNEL, retention, since, limit)

    started = time.perf_counter()
    since = Position(last.offset - missed, last.epoch)
    resumption = Resumption(connection, CHANNEL, read=read, since=since, buffer_bytes=1 << 24)
    await layer.add(connection, resumption=resumption)
    await resumption.prepare()
    await resumption.catch_up()
    await sink.wait_for(missed + 1)  # and the resume frame
    elapsed = time.perf_counter() - started
    await layer.discard(connection)
    await stop(layer)
    return elapsed * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", action="append", help="backend URL(s) besides memory:// (e.g. redis://...)")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=100, help="characters of text in each message")
    parser.add_argument("--missed", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    urls = ["memory://", *(options.url or [])]
    print(f"{options.messages} messages of ~{options.size + 12} bytes, {options.rounds} rounds, medians")
    print(f"{'backend':<10} {'history':<8} {'us/publish':>11} {'us/delivered':>13}")
    for url in urls:
        for history in (False, True):
            runs = [
                await publish_run(url, history=history, messages=options.messages, size=options.size)
                for _ in range(options.rounds)
            ]
            publish_us = statistics.median(run[0] for run in runs)
            delivered_us = statistics.median(run[1] for run in runs)
            print(f"{url.split(':')[0]:<10} {'yes' if history else 'no':<8} {publish_us:>11.1f} {delivered_us:>13.1f}")
    for url in urls:
        catch_up = statistics.median(
            [await catch_up_run(url, missed=options.missed, size=options.size) for _ in range(options.rounds)]
        )
        print(f"{url.split(':')[0]}: a client that missed {options.missed} is sent them in {catch_up:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
