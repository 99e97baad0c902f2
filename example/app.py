"""The bundled demo, served by ``uvicorn example.app:app``: a chat at ``/``, the seed example's rooms at ``/explore``.

The chat (``example/chat.py``) is built on the browser client the package serves: sign in with a name, rooms with
history, who is here, private messages, and a developer panel with every frame. The explorer page tries the seed
example's three rooms action by action.

``FASTAPI_CHANNELS_URL`` picks the backend: ``memory://`` (the default: one process, no Redis needed) or a
``redis://`` URL, which then carries both the broadcasts and the rate limits.

``FASTAPI_CHANNELS_NAMESPACE`` (``fastapi-channels`` by default) prefixes the presence and rate-limit keys
and names the direct-message channel, so demos that share a Redis server under different namespaces count
their connections and rate limits apart. Their rooms keep the same channel names, so they still hear each
other's broadcasts: give each demo its own Redis server to keep them wholly apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, ValidationError

from example.chat import LOBBY, ROOMS, SESSION_COOKIE, add_chat, signed_name
from example.path import StaticPath, TemplatePath
from fastapi_channels import add_channel
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import ParseError, PermissionDenied
from fastapi_channels.permission import AllowAny
from fastapi_channels.throttling import limiter
from fastapi_channels.used import GroupChannel, PersonChannel

__all__ = [
    "app",
    "create_app",
    "ChatMessage",
    "Shout",
    "BaseRoom",
    "PersonRoom",
    "GroupRoom",
    "URL_VARIABLE",
    "NAMESPACE_VARIABLE",
]

URL_VARIABLE = "FASTAPI_CHANNELS_URL"
NAMESPACE_VARIABLE = "FASTAPI_CHANNELS_NAMESPACE"
DEFAULT_URL = "memory://"
DEFAULT_NAMESPACE = "fastapi-channels"
JOIN_NOTICE = "Join successfully"
LEAVE_NOTICE = "leave successfully"

templates = Jinja2Templates(directory=TemplatePath)


class ChatMessage(BaseModel):
    """A message the rooms send back: the action, who sent it and what they said."""

    action: str
    user: str
    message: Any = None
    status: str = "ok"
    request_id: int | str | None = None


class Shout(BaseModel):
    """What the typed ``shout`` action takes: a message (the page also sends the user, which it ignores)."""

    message: Annotated[str, Field(min_length=1, max_length=200)]


async def encode_chat_message(data: Any) -> str:
    """Encode ``data`` as a ``ChatMessage``, answering the sender with a readable error when it does not fit."""
    try:
        return ChatMessage.model_validate(data).model_dump_json(exclude_none=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'message'}: {error['msg']}" for error in exc.errors()
        )
        raise ParseError(error_msg=f"Cannot send this message ({problems}).") from None


class BaseRoom(BaseChannel):
    """Relay every text frame to everyone in the room, as it is."""

    channel = "base_channel"


class PersonRoom(PersonChannel):
    """A room for two: count, chat, and one action for each kind of error."""

    channel = "person_channel"
    encode_json = staticmethod(encode_chat_message)
    sends = {"chat": ChatMessage}  # what count and message send, for the AsyncAPI document

    @limiter(times=2, seconds=3000)  # over the limit: a RateLimitExceeded error frame, the socket stays open
    @action("count")
    async def get_count(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Tell the sender alone how many connections the room has."""
        data["message"] = await self.get_connection_count(channel)
        await self.broadcast_to_personal(websocket, data)

    @action("message")
    async def send_message(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Send the message to everyone in the room."""
        await self.broadcast_to_channel(channel, data)

    @action(deprecated=True)  # never runs: the caller gets ActionIsDeprecated and stays connected
    async def deprecated_action(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Reply to the sender (it never does: the action is deprecated)."""
        await self.broadcast_to_personal(websocket, {**data, "message": "send message"})

    @action("permission_denied", permission=False)  # never runs: the caller gets PermissionDenied, stays open
    async def permission_false(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Send the message to everyone (it never does: nobody has the permission)."""
        await self.broadcast_to_channel(channel, data)

    @action(permission=AllowAny)
    async def error(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Answer with a PermissionDenied error frame and keep the socket open."""
        raise PermissionDenied(close=False)

    @action("close")  # named close_socket so as not to hide BaseChannel.close
    async def close_socket(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Close the sender's socket."""
        await websocket.close()


class GroupRoom(GroupChannel):
    """A room for many; its actions are registered on the instance by ``build_group_room``."""

    channel = "group_channel"
    encode_json = staticmethod(encode_chat_message)
    sends = {
        "chat": ChatMessage,
        "joined": Annotated[Literal[JOIN_NOTICE], Field(description="Sent to a client once it has joined.")],
        "left": Annotated[Literal[LEAVE_NOTICE], Field(description="Sent to the others when a client leaves.")],
    }


def build_group_room(app: FastAPI) -> GroupRoom:
    """Return a group room with join/leave notices and its actions registered on the instance."""
    room = GroupRoom(app=app)

    @room.on_event("join")
    async def welcome(websocket: WebSocket, channel: str) -> None:
        # Plain strings go out as they are, without encode_json.
        await room.broadcast_to_personal(websocket, JOIN_NOTICE)

    @room.on_event("leave")
    async def farewell(websocket: WebSocket, channel: str) -> None:
        # The leaving socket may already be gone: tell those who stay.
        await room.broadcast_to_channel(channel, LEAVE_NOTICE)

    @limiter(times=1, seconds=3)
    @room.action("message")
    async def send_message(websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Send the message to everyone in the room (once per 3 seconds per client)."""
        await room.broadcast_to_channel(channel, data)

    @room.action("error_true")
    async def send_error_and_close(websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Answer with a PermissionDenied error frame, then close with 1008."""
        raise PermissionDenied(close=True)

    @room.action("error_false")
    async def send_error(websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Answer with a PermissionDenied error frame and keep the socket open."""
        raise PermissionDenied(close=False)

    @room.action()
    async def close(websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        """Close the sender's socket."""
        await websocket.close()

    @room.action("shout", summary="Shout a message back to its sender")
    async def shout(shout: Shout) -> str:
        """Answer the sender alone with the message in capitals: a typed action, whose payload is validated."""
        return shout.message.upper()

    return room


@dataclass(frozen=True)
class Room:
    """A channel object served at a URL path."""

    key: str
    path: str
    route_name: str
    channel: BaseChannel
    about: str

    async def describe(self) -> dict[str, Any]:
        """Return what the page and ``/channels`` show, read from the channel object."""
        room = self.channel
        return {
            # The first three keys are those of the seed example's page context.
            "name": self.route_name,
            "room": "channel" if isinstance(room, Channel) else "base_channel",
            "action": list(room.actions),
            "key": self.key,
            "class": type(room).__name__,
            "path": self.path,
            "channel": room.channel,
            "max_connection": room.max_connection,
            "connections": await room.get_connection_count(),
            "about": self.about,
        }


def serve(app: FastAPI, rooms: dict[str, Room], path: str, channel: BaseChannel, about: str) -> None:
    """Serve ``channel`` at the websocket route ``path`` and list it among ``rooms``."""
    key = path.strip("/")
    route_name = f"chatroom_ws_{key}"

    @channel.serves  # the AsyncAPI document lists the route with the channel's actions
    async def endpoint(websocket: WebSocket) -> None:
        await channel.connect(websocket)

    app.add_api_websocket_route(path, endpoint, name=route_name)
    rooms[key] = Room(key=key, path=path, route_name=route_name, channel=channel, about=about)


def create_app(url: str | None = None, *, namespace: str | None = None) -> FastAPI:
    """Build the demo app on ``url`` and ``namespace`` (defaults: the environment variables, else their defaults)."""
    url = url or os.environ.get(URL_VARIABLE) or DEFAULT_URL
    namespace = namespace or os.environ.get(NAMESPACE_VARIABLE) or DEFAULT_NAMESPACE
    uses_redis = urlparse(url).scheme in ("redis", "rediss")
    app = FastAPI(title="fastapi-channels demo")
    # The rate-limit keys take the namespace too, so that demos under different namespaces limit apart.
    add_channel(app, url=url, limiter_url=url if uses_redis else None, limiter_prefix=namespace, namespace=namespace)
    app.mount("/static", StaticFiles(directory=StaticPath), name="static")

    rooms: dict[str, Room] = {}
    # Rate limits count per client address: two tabs of one browser share them.
    serve(app, rooms, "/base", BaseRoom(app=app), "Relays every text frame to everyone in the room.")
    serve(app, rooms, "/person", PersonRoom(app=app), "A room for two; count: 2 calls per 3000 s per address.")
    serve(
        app,
        rooms,
        "/group",
        build_group_room(app),
        "A room for 200 with join/leave notices; 1 message per 3 s per address.",
    )
    backend = "Redis" if uses_redis else "memory (one process)"

    async def describe_all() -> dict[str, dict[str, Any]]:
        return {type(room.channel).__name__: await room.describe() for room in rooms.values()}

    add_chat(app)

    @app.get("/", response_class=HTMLResponse)
    async def chat_page(request: Request) -> HTMLResponse:
        token = request.cookies.get(SESSION_COOKIE)
        user = signed_name(token) if token else None
        context = {"user": user, "rooms": ROOMS, "lobby": LOBBY, "backend": backend}
        return templates.TemplateResponse(request, "chat.html", context)

    @app.get("/explore", response_class=HTMLResponse)
    async def explorer(request: Request) -> HTMLResponse:
        context = {"channels": await describe_all(), "backend": backend, "chat_url": "/"}
        return templates.TemplateResponse(request, "index.html", context)

    @app.get("/channels")
    async def list_channels() -> dict[str, Any]:
        return {"backend": backend, "channels": await describe_all()}

    @app.get("/count/{key}")
    async def count(key: str) -> dict[str, Any]:
        room = rooms.get(key)
        if room is None:
            raise HTTPException(404, f"No room is served at /{key}.")
        return {
            "room": key,
            "channel": room.channel.channel,
            "connections": await room.channel.get_connection_count(),
            "max_connection": room.channel.max_connection,
        }

    app.state.demo_rooms = rooms
    return app


app = create_app()
