import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
add_channel(app)

online: dict[str, set[str]] = {}


@contextlib.asynccontextmanager
async def presence(websocket: WebSocket, channel: str) -> AsyncIterator[None]:
    user = websocket.query_params.get("user", "guest")
    online.setdefault(channel, set()).add(user)
    try:
        yield  # the connection lives here
    finally:
        online[channel].discard(user)


class Office(Channel):
    @action()
    async def who(self, websocket: WebSocket, channel: str) -> None:
        await self.broadcast_to_personal(websocket, {"online": sorted(online.get(channel, ()))})


office = Office(channel="office", lifespan=presence)  # as a constructor argument


class Arena(Channel):
    @contextlib.asynccontextmanager
    async def lifespan(self, websocket: WebSocket, channel: str) -> AsyncIterator[None]:  # or as a method
        await self.broadcast_to_channel(channel, "A player entered the arena.")
        yield
        await self.broadcast_to_channel(channel, "A player left the arena.")


arena = Arena(channel="arena")


@app.websocket("/office")
async def office_endpoint(websocket: WebSocket) -> None:
    await office.connect(websocket)


@app.websocket("/arena")
async def arena_endpoint(websocket: WebSocket) -> None:
    await arena.connect(websocket)
