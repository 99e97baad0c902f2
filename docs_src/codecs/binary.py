from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import Channel, action, add_channel
from fastapi_channels.codecs import JSON_BINARY, JSON_TEXT

app = FastAPI()
add_channel(app)


class Sensors(Channel):
    # Devices that send JSON in binary frames are read like any other client; those that offer
    # "fastapi-channels.json-binary" get binary frames back, the others text.
    codecs = (JSON_TEXT, JSON_BINARY)

    @action()
    async def report(self, sensor: str, value: float) -> dict[str, Any]:
        return {"sensor": sensor, "value": value, "stored": True}


sensors = Sensors()


@app.websocket("/sensors")
async def sensors_endpoint(websocket: WebSocket) -> None:
    await sensors.connect(websocket)
