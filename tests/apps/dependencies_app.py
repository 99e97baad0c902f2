"""A channel whose slow action holds yield dependencies, served by uvicorn at /ws/{channel}.

When the action is over, the cleanup of its dependencies broadcasts what it saw to the channel, so that a test
watching from another connection sees the cleanup run to its end after the client of the action went away.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, WebSocket

from fastapi_channels import Channel, action, add_channel

app = FastAPI()
add_channel(app)


def new_notes() -> list[str]:
    """A list the dependencies of one frame share (cached: one list per frame)."""
    return []


def guard(notes: Annotated[list[str], Depends(new_notes)]) -> Iterator[None]:
    """A sync generator dependency: notes the exception its action ended with."""
    try:
        yield
    except BaseException as exc:
        notes.append(f"sync cleanup saw {type(exc).__name__}")
        raise


async def witness(channel: str, notes: Annotated[list[str], Depends(new_notes)]) -> AsyncIterator[None]:
    """An async generator dependency whose cleanup waits, then tells the channel what every cleanup saw."""
    try:
        yield
    except BaseException as exc:
        notes.append(f"async cleanup saw {type(exc).__name__}")
        raise
    finally:
        await asyncio.sleep(0.01)  # a cleanup that waits after the cancellation still runs to its end
        notes.append("cleanup finished")
        await room.broadcast_to_channel(channel, json.dumps(notes))


class Watched(Channel):
    @action(dependencies=[Depends(witness)])
    async def slow(
        self,
        websocket: WebSocket,
        notes: Annotated[list[str], Depends(new_notes)],
        guarded: Annotated[None, Depends(guard)],
    ) -> str:
        await self.broadcast_to_personal(websocket, "started")
        try:
            await asyncio.Event().wait()  # until the client goes away
        except asyncio.CancelledError:
            notes.append("handler cancelled")
            raise
        return "never"


room = Watched()


@room.on_event("join")
async def say_joined(websocket: WebSocket, channel: str) -> None:
    await room.broadcast_to_personal(websocket, "joined")


@app.websocket("/ws/{channel}")
async def serve(websocket: WebSocket, channel: str) -> None:
    await room.connect(websocket, channel=channel)
