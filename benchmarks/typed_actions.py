"""What a typed action costs per frame, in process: Channel.frame_handler driven without a network.

Each variant gets a real ``Session`` on an accepted in-process ``WebSocket`` whose ASGI ``send`` completes at
once, so what is measured is fastapi-channels' own work for one frame: parse, look up, check, (validate,)
call, encode and write; the server and the network, which cost several times more per frame, are left out.
``hand loop`` is the floor: parse the frame, encode it again and send it.

    .venv/bin/python -m benchmarks.typed_actions [--frames 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel
from pydantic_core import from_json, to_json

from fastapi_channels import Channel, action, add_channel
from fastapi_channels.session import Session

FRAME = '{"action":"echo","request_id":1,"x":3,"y":4}'


class Point(BaseModel):
    x: int
    y: int


class Untyped(Channel):
    @action
    async def echo(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        await self.broadcast_to_personal(websocket, data)


class Typed(Channel):
    @action
    async def echo(self, payload: Point) -> Point:
        return payload


class HandValidated(Channel):
    """The typed echo written by hand in an untyped action: validate, then send the same reply frame."""

    @action
    async def echo(self, websocket: WebSocket, data: dict[str, Any], request_id: Any) -> None:
        payload = {key: value for key, value in data.items() if key not in ("action", "request_id")}
        point = Point.model_validate(payload)
        reply = {"type": "response", "status": "ok", "action": "echo", "request_id": request_id, "data": point}
        await self.broadcast_to_personal(websocket, reply)


async def send(message: Any) -> None:
    """ASGI send that completes at once: the client takes every frame."""


async def receive() -> Any:
    return {"type": "websocket.connect"}


async def frame_handler(app: FastAPI, room: Channel) -> Callable[[str], Coroutine[Any, Any, None]]:
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b"", "client": ("127.0.0.1", 1)}
    websocket = WebSocket({**scope, "app": app}, receive, send)
    await websocket.accept()
    session = Session(room, websocket, "bench", room.get_config(websocket))
    await session.config.layer.add(session.connection, max_connections=None)
    session.connection.write_through(send)
    return room.frame_handler(session)


def drive(handle: Callable[[str], Coroutine[Any, Any, None]], frames: int) -> float:
    """Run ``frames`` frames through ``handle``; return microseconds per frame."""
    start = time.perf_counter()
    for _ in range(frames):
        running = handle(FRAME)
        try:
            running.send(None)
        except StopIteration:
            continue
        raise RuntimeError("a frame had to wait: the measurement needs a send that completes at once")
    return (time.perf_counter() - start) / frames * 1e6


def hand_loop(frames: int) -> float:
    start = time.perf_counter()
    for _ in range(frames):
        running = send({"type": "websocket.send", "text": to_json(from_json(FRAME)).decode()})
        try:
            running.send(None)
        except StopIteration:
            pass
    return (time.perf_counter() - start) / frames * 1e6


async def main(frames: int, rounds: int) -> None:
    app = FastAPI()
    add_channel(app)
    rooms: dict[str, Channel] = {"untyped echo": Untyped(), "typed echo": Typed(), "hand-validated": HandValidated()}
    async with app.router.lifespan_context(app):
        handles = {name: await frame_handler(app, room) for name, room in rooms.items()}
        best: dict[str, float] = {}
        for _ in range(rounds):  # interleaved, so that a noisy moment hits every variant alike
            for name, handle in handles.items():
                best[name] = min(best.get(name, float("inf")), drive(handle, frames))
            best["hand loop"] = min(best.get("hand loop", float("inf")), hand_loop(frames))
    print(f"{frames} frames x {rounds} rounds, best round per variant")
    for name, micros in best.items():
        print(f"{name:16s} {micros:6.2f} us/frame   {micros - best['untyped echo']:+6.2f} us vs the untyped echo")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.frames, arguments.rounds))
