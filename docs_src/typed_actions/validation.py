from typing import Annotated

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel, ConfigDict, Field

from fastapi_channels import Channel, action, add_channel

app = FastAPI()
add_channel(app)


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a field the model does not know is an error, not ignored

    item: str
    quantity: Annotated[int, Field(gt=0, le=100)] = 1


class Shop(Channel):
    @action()
    async def order(self, order: Order) -> Order:
        return order


shop = Shop(channel="shop")


@app.websocket("/shop")
async def shop_endpoint(websocket: WebSocket) -> None:
    await shop.connect(websocket)
