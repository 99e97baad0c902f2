import contextlib
from collections.abc import AsyncIterator

from broadcaster import Broadcast
from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel

broadcast = Broadcast("memory://")  # shared with the rest of your app, which also publishes through it


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await broadcast.connect()  # you passed broadcast=, so connecting it is your job
    try:
        yield
    finally:
        await broadcast.disconnect()


app = FastAPI(lifespan=lifespan)
add_channel(app, broadcast=broadcast)  # your lifespan keeps running, inside the channels' own

alerts = Channel(channel="alerts")


@app.websocket("/alerts")
async def alerts_endpoint(websocket: WebSocket) -> None:
    await alerts.connect(websocket)


@app.post("/alerts")
async def raise_alert() -> dict[str, bool]:
    # The backend name carries the app's namespace and the channel's group; broadcaster wants encoded text.
    await broadcast.publish(alerts.backend_channel("alerts"), '{"action": "alert"}')
    return {"sent": True}
