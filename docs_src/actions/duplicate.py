from typing import Any

from fastapi import WebSocket

from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action


class Confused(Channel):  # raises TypeError as soon as Python reads the class
    @action("send")
    async def send_text(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None: ...

    @action("send")
    async def send_image(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None: ...
