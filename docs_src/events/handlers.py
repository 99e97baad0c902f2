from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
add_channel(app)


def name_of(websocket: WebSocket) -> str:
    return websocket.query_params.get("name", "someone")


async def welcome(websocket: WebSocket, channel: str) -> None:
    await lounge.broadcast_to_personal(websocket, f"Welcome to {channel}, {name_of(websocket)}!")


class Lounge(Channel):
    @action()
    async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, f"{name_of(websocket)}: {data.get('text', '')}")

    @action()
    async def bye(self, websocket: WebSocket) -> None:
        await self.close(websocket)  # the leave handlers still run, once


lounge = Lounge(channel="lounge", on_join=[welcome])  # 1. constructor argument


async def announce_arrival(websocket: WebSocket, channel: str) -> None:
    await lounge.broadcast_to_channel(channel, f"{name_of(websocket)} joined")


lounge.add_event_handler("join", announce_arrival)  # 2. add_event_handler


@lounge.on_event("leave")  # 3. decorator
async def announce_departure(websocket: WebSocket, channel: str) -> None:
    # The leaver is already out of the channel: only those who stay get this.
    await lounge.broadcast_to_channel(channel, f"{name_of(websocket)} left")


@app.websocket("/lounge")
async def lounge_endpoint(websocket: WebSocket) -> None:
    await lounge.connect(websocket)
