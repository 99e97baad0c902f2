from typing import Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
add_channel(app)


class Reply(BaseModel):
    action: str
    status: str = "ok"
    result: Any = None
    request_id: int | str | None = None


class Calculator(Channel):
    @staticmethod
    async def encode_json(data: Any) -> str:
        # Every message that is not already a str goes through here, once.
        return Reply.model_validate(data).model_dump_json()

    @action()
    async def add(self, websocket: WebSocket, data: dict[str, Any], request_id: int | str | None) -> None:
        total = sum(data.get("numbers", []))
        await self.broadcast_to_personal(websocket, {"action": "add", "result": total, "request_id": request_id})

    @action()
    async def total_for_everyone(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "total", "result": sum(data.get("numbers", []))})

    @action()
    async def motd(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, "Numbers in, sums out.")  # a str is sent as it is


calculator = Calculator(channel="calculator")


@app.websocket("/calculator")
async def calculator_endpoint(websocket: WebSocket) -> None:
    await calculator.connect(websocket)
