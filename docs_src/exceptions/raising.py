from typing import Any

from fastapi import FastAPI, WebSocket
from starlette import status

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import NotFound, PermissionDenied, WebSocketException

app = FastAPI()
add_channel(app)

STOCK = {"tea": 3, "cake": 0}


class OutOfStock(WebSocketException):
    """A client-caused outcome of our own: an error frame, and the socket stays open."""

    default_code = status.WS_1008_POLICY_VIOLATION
    default_error_msg = "This item is sold out."
    default_close = False


class Shop(Channel):
    @action()
    async def buy(self, websocket: WebSocket, data: dict[str, Any]) -> None:
        item = data.get("item")
        if item not in STOCK:
            raise NotFound(error_msg=f"We do not sell {item!r}.", close=False)
        if STOCK[item] == 0:
            raise OutOfStock(data={"item": item}, restock_in_days=2)  # data and extra keywords reach the frame
        STOCK[item] -= 1
        await self.broadcast_to_personal(websocket, {"action": "buy", "item": item, "left": STOCK[item]})

    @action()
    async def shoplift(self, websocket: WebSocket) -> None:
        raise PermissionDenied(error_msg="You have been shown the door.")  # closes with 1008

    @action()
    async def checkout(self, websocket: WebSocket) -> None:
        raise RuntimeError("the till is broken")  # a bug: logged, generic frame, close 1011


shop = Shop(channel="shop")


@app.websocket("/shop")
async def shop_endpoint(websocket: WebSocket) -> None:
    await shop.connect(websocket)
