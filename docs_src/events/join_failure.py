from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.exceptions import PermissionDenied, WebSocketException

app = FastAPI()
add_channel(app)

LOCKED = {"vault"}
READ_ONLY = {"archive"}
departures: list[str] = []


async def refuse_locked_rooms(websocket: WebSocket, channel: str) -> None:
    if channel in LOCKED:
        raise PermissionDenied(error_msg="This room is locked.")  # error frame, then close 1008


async def warn_read_only(websocket: WebSocket, channel: str) -> None:
    if channel in READ_ONLY:
        raise WebSocketException(error_msg="This room is read-only.", close=False)  # error frame, stay


async def greet(websocket: WebSocket, channel: str) -> None:
    await rooms.broadcast_to_personal(websocket, f"Welcome to {channel}.")


def record_departure(websocket: WebSocket, channel: str) -> None:  # handlers may be sync
    departures.append(channel)


rooms = Channel(on_join=[refuse_locked_rooms, greet, warn_read_only], on_leave=[record_departure])


@app.websocket("/rooms/{name}")
async def room_endpoint(websocket: WebSocket, name: str) -> None:
    await rooms.connect(websocket, channel=name)
