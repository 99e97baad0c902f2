import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel

temperatures: dict[str, float] = {}


async def follow_temperatures(listening: asyncio.Event) -> None:
    # Every channel named sensors.<room>.temp, on every process: "+" stands for one dot-separated segment.
    async with sensors.listen("sensors.+.temp", queue_size=100) as readings:
        listening.set()
        async for channel, reading in readings:
            temperatures[channel.split(".")[1]] = reading["value"]


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    listening = asyncio.Event()
    follower = asyncio.create_task(follow_temperatures(listening))
    await listening.wait()  # serve requests once the listener hears every reading
    yield
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower


app = FastAPI(lifespan=lifespan)
add_channel(app)  # the channel layer starts before the app's own lifespan, and stops after it
sensors = Channel(channel="sensors", app=app)


@app.websocket("/sensors/{name}")
async def sensor_endpoint(websocket: WebSocket, name: str) -> None:
    await sensors.connect(websocket, channel=name)  # a dashboard that shows one sensor


@app.post("/sensors/{room}/{kind}")
async def report(room: str, kind: str, value: float) -> None:
    await sensors.broadcast_to_channel(f"sensors.{room}.{kind}", {"value": value})


@app.get("/temperatures")
async def read_temperatures() -> dict[str, float]:
    return temperatures
