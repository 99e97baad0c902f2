import json
from pathlib import Path

from fastapi import FastAPI

from fastapi_channels import Channel, action, add_channel
from fastapi_channels.asyncapi import asyncapi_document

app = FastAPI(title="Dice", version="1.0.0")
add_channel(app, asyncapi_url=None, asyncapi_docs_url=None)  # served nowhere


class Dice(Channel):
    @action()
    async def roll(self, sides: int = 6) -> int:
        return sides  # a fair die, rolled by the client


dice = Dice()
app.add_api_websocket_route("/dice", dice.connect)


def write_document(path: Path) -> None:
    """Write the app's AsyncAPI document, e.g. for a client generator in CI."""
    path.write_text(json.dumps(asyncapi_document(app), indent=2))
