from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel

app = FastAPI()
add_channel(app)

support = Channel(channel="support")
sales = Channel(channel="sales")


@support.action("ask")
async def ask(websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
    await support.broadcast_to_channel(channel, {"action": "question", "text": data.get("text")})


@support.action()  # named after the function: "hours"
async def hours(websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
    await support.broadcast_to_personal(websocket, {"action": "hours", "open": "9:00-17:00"})


print(support.actions)  # ['ask', 'hours']
print(sales.actions)  # []: actions registered on `support` belong to that object only


@app.websocket("/support")
async def support_endpoint(websocket: WebSocket) -> None:
    await support.connect(websocket)


@app.websocket("/sales")
async def sales_endpoint(websocket: WebSocket) -> None:
    await sales.connect(websocket)
