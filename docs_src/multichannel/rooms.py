from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import PermissionDenied

app = FastAPI()
add_channel(app)

STAFF = {"ann"}


def name_of(websocket: WebSocket) -> str:
    return websocket.query_params.get("user", "guest")


def staff_rooms_for_staff(websocket: WebSocket, action: str | None, channel: str) -> bool:
    return not channel.startswith("staff:") or name_of(websocket) in STAFF


class Chat(Channel):
    client_subscriptions = True  # clients may send subscribe and unsubscribe frames themselves
    join_permission = staff_rooms_for_staff  # asked at every join, besides permission_classes
    max_channels_per_connection = 10  # its own channel included

    @action("say")
    async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        to = data.get("to", channel)  # any channel the connection is in; its own by default
        if to not in self.get_channels(websocket):
            raise PermissionDenied(error_msg=f"Join {to!r} before you speak there.", close=False)
        await self.broadcast_to_channel(to, {"user": name_of(websocket), "text": data.get("text")})

    @action("help")
    async def help_desk(self, websocket: WebSocket) -> list[str]:
        # Server code joins channels too: here one the client did not choose.
        await self.join(websocket, f"help:{name_of(websocket)}")
        return self.get_channels(websocket)


chat = Chat(channel="lobby", app=app)


@chat.on_event("join")  # runs for the lobby and for every channel joined later
async def announce(websocket: WebSocket, channel: str) -> None:
    await chat.broadcast_to_channel(channel, {"joined": name_of(websocket)})


@chat.on_event("leave")  # once per channel, the last joined first, the lobby last
async def farewell(websocket: WebSocket, channel: str) -> None:
    await chat.broadcast_to_channel(channel, {"left": name_of(websocket)})


@app.websocket("/chat")
async def chat_endpoint(websocket: WebSocket) -> None:
    await chat.connect(websocket)  # the lobby: the connection's own channel for its whole life
