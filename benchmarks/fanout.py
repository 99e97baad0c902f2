"""Measure broadcast fan-out: one client publishes, N clients of the same channel receive every message."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect

APP = """
import os
from fastapi import FastAPI, WebSocket
from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
url = os.environ.get("BENCH_URL", "memory://")
add_channel(app, url=url, send_queue_size=10_000)


class Room(Channel):
    @action("message")
    async def message(self, websocket: WebSocket, channel: str, data: dict):
        await self.broadcast_to_channel(channel, data)


room = Room()


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await room.connect(websocket, channel="bench")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run(port: int, clients: int, messages: int) -> float:
    uri = f"ws://127.0.0.1:{port}/ws"
    async with contextlib.AsyncExitStack() as stack:
        receivers = [await stack.enter_async_context(connect(uri, max_queue=None)) for _ in range(clients)]
        publisher = await stack.enter_async_context(connect(uri))

        async def drain(ws: object) -> None:
            for _ in range(messages):
                await ws.recv()  # type: ignore[attr-defined]

        started = time.perf_counter()
        tasks = [asyncio.create_task(drain(ws)) for ws in receivers]
        for index in range(messages):
            await publisher.send(f'{{"action": "message", "n": {index}}}')
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--url", default="memory://")
    args = parser.parse_args()

    workdir = Path(__file__).resolve().parent
    (workdir / "_fanout_app.py").write_text(APP)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "_fanout_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=workdir,
        env={**os.environ, "BENCH_URL": args.url},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline:
                raise SystemExit("uvicorn did not start")
            time.sleep(0.05)
        elapsed = asyncio.run(run(port, args.clients, args.messages))
    finally:
        server.terminate()
        server.wait(10)
        (workdir / "_fanout_app.py").unlink(missing_ok=True)
    delivered = args.clients * args.messages
    print(f"backend={args.url} clients={args.clients} messages={args.messages}")
    print(f"delivered={delivered} in {elapsed:.3f}s -> {delivered / elapsed:,.0f} messages/s")


if __name__ == "__main__":
    main()
