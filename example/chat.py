"""The demo's chat: sign in with a name, rooms with history, who is here, private messages.

The server knows who a connection is from a signed cookie set by ``POST /login``: a message never carries a
name the page chose. The page speaks to ``/chat`` through the browser client that ``add_channel`` serves
(``/fastapi-channels/channels.js``); its own channel is the lobby, and it subscribes to the other rooms on the same
connection. Every room keeps its last ``HISTORY_SIZE`` messages, so a late joiner reads them and a page that lost
its connection (a server restart) catches up on what it missed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Request, Response, WebSocket
from pydantic import BaseModel, Field
from starlette.middleware.authentication import AuthenticationMiddleware
from typing_extensions import TypedDict

from fastapi_channels import send_to_user
from fastapi_channels.auth import TokenAuthentication, from_cookie
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import NotFound, PermissionDenied
from fastapi_channels.permission import IsAuthenticated
from fastapi_channels.throttling import limiter

__all__ = [
    "ROOMS",
    "LOBBY",
    "HISTORY_SIZE",
    "SESSION_COOKIE",
    "SECRET_VARIABLE",
    "Login",
    "ChatRoom",
    "known_room",
    "rooms_of",
    "sign",
    "signed_name",
    "add_chat",
]

ROOMS = ("lobby", "random", "help")
"""The rooms of the chat; the lobby is every connection's own channel, the others are subscribed to."""
LOBBY = ROOMS[0]
HISTORY_SIZE = 100
RECENT = 50  # messages a page loads when it joins a room it has no position in
SESSION_COOKIE = "demo_session"
SECRET_VARIABLE = "FASTAPI_CHANNELS_DEMO_SECRET"
# Anyone may sign in under any name here, so a forged cookie would gain nothing a sign-in does not: the secret only
# makes the name one the server issued. A fixed default keeps pages signed in across restarts; set your own anyway.
DEFAULT_SECRET = "fastapi-channels demo: set FASTAPI_CHANNELS_DEMO_SECRET"
NAME_PATTERN = re.compile(r"[\w][\w .'-]{0,23}")


class Login(BaseModel):
    """What ``POST /login`` takes: the name to chat under."""

    name: Annotated[str, Field(min_length=1, max_length=24)]


def _secret() -> bytes:
    return (os.environ.get(SECRET_VARIABLE) or DEFAULT_SECRET).encode()


def sign(name: str) -> str:
    """Return the session token of ``name``: the name and its HMAC, both URL-safe."""
    encoded = base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")
    return f"{encoded}.{hmac.new(_secret(), encoded.encode(), hashlib.sha256).hexdigest()}"


def signed_name(token: str) -> str | None:
    """Return the name a session token was issued for, or None when it is not one of ours."""
    encoded, _, signature = token.partition(".")
    expected = hmac.new(_secret(), encoded.encode(), hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(signature, expected):
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _user(websocket: WebSocket) -> str:
    return str(websocket.user.display_name)


ROOMS_KEY = "demo.rooms"  # the rooms a connection is in, kept in its scope by the join and leave handlers


def rooms_of(websocket: WebSocket) -> set[str]:
    """Return the rooms ``websocket``'s connection is in."""
    rooms: set[str] = websocket.scope.setdefault(ROOMS_KEY, set())
    return rooms


def known_room(websocket: WebSocket, action: str | None, **context: Any) -> bool:
    """Let a page subscribe to the chat's rooms only, not to channels of its own making."""
    return context.get("channel") in ROOMS


class Said(TypedDict):
    """A message someone said in a room (in a publication frame: the rooms keep history)."""

    kind: Literal["message"]
    user: str
    text: str
    at: str


class Presence(TypedDict):
    """Who is in a room now; ``event`` says who came or went, None when only a second page did."""

    kind: Literal["presence"]
    event: Literal["join", "leave"] | None
    user: str
    members: list[str]
    at: str


# A private message, sent to every page of its receiver and of its sender ("from" is a keyword: the call form).
Private = TypedDict("Private", {"kind": Literal["private"], "from": str, "to": str, "text": str, "at": str})


class ChatRoom(Channel):
    """The chat's rooms: messages, who is here, private messages; only signed-in people come in."""

    history_size = HISTORY_SIZE
    permission_classes = [IsAuthenticated]
    client_subscriptions = True  # pages subscribe to more rooms on their one connection...
    join_permission = known_room  # ...the chat's own rooms only
    max_channels_per_connection = len(ROOMS)
    sends = {"message": Said, "presence": Presence, "private": Private}  # for the AsyncAPI page

    async def members(self, room: str) -> list[str]:
        """Return the names of the people in ``room``, each once, in the order they came."""
        return list(dict.fromkeys(member.user for member in await self.get_members(room) if member.user))

    @limiter(times=10, seconds=10)
    @action(summary="Say something in a room")
    async def say(
        self,
        websocket: WebSocket,
        text: Annotated[str, Field(min_length=1, max_length=500)],
        room: str = LOBBY,
    ) -> dict[str, int]:
        """Send ``text`` to everyone in ``room``, under the name the server knows; return its offset."""
        if room not in rooms_of(websocket):
            raise PermissionDenied(error_msg=f"Join #{room} before you speak in it.", close=False)
        message = {"kind": "message", "user": _user(websocket), "text": text, "at": _now()}
        position = await self.broadcast_to_channel(room, message)
        return {"offset": position.offset if position is not None else 0}

    @limiter(times=10, seconds=10)
    @action(summary="Send a private message to someone in the chat")
    async def whisper(
        self,
        websocket: WebSocket,
        to: Annotated[str, Field(min_length=1, max_length=24)],
        text: Annotated[str, Field(min_length=1, max_length=500)],
    ) -> dict[str, str]:
        """Send ``text`` to every page of ``to`` and of the sender, and to nobody else."""
        sender = _user(websocket)
        if to not in await self.members(LOBBY):
            raise NotFound(error_msg=f"{to} is not in the chat right now.", close=False)
        message = {"kind": "private", "from": sender, "to": to, "text": text, "at": _now()}
        for user in dict.fromkeys((to, sender)):
            await send_to_user(user, message)
        return {"to": to}

    @action(summary="Who is in a room")
    async def who(self, room: str = LOBBY) -> list[str]:
        """Return the names of the people in ``room``."""
        if room not in ROOMS:
            raise NotFound(error_msg=f"There is no room {room!r}: the rooms are {', '.join(ROOMS)}.", close=False)
        return await self.members(room)


def add_chat(app: FastAPI) -> ChatRoom:
    """Add the chat to the demo ``app``: sign-in, the chat socket and the rooms' recent messages."""
    # The cookie logs the socket in at the handshake; HTTP requests read the same user.
    app.add_middleware(
        AuthenticationMiddleware, backend=TokenAuthentication(from_cookie(SESSION_COOKIE), user=signed_name)
    )
    chat = ChatRoom(app=app)

    async def announce(websocket: WebSocket, channel: str, event: str) -> None:
        everyone = await chat.get_members(channel)
        user = _user(websocket)
        # Someone's second page coming, or one of several going, changes nobody's list of names: no notice.
        pages = sum(member.user == user for member in everyone)
        changed = pages == (1 if event == "join" else 0)
        names = list(dict.fromkeys(member.user for member in everyone if member.user))
        notice = {"kind": "presence", "event": event if changed else None, "user": user, "members": names}
        await chat.broadcast_to_channel(channel, {**notice, "at": _now()})

    # Join handlers run for the connection's own room and for each room it subscribes to; leave handlers likewise.
    @chat.on_event("join")
    async def joined(websocket: WebSocket, channel: str) -> None:
        rooms_of(websocket).add(channel)
        await announce(websocket, channel, "join")

    @chat.on_event("leave")
    async def left(websocket: WebSocket, channel: str) -> None:
        rooms_of(websocket).discard(channel)
        await announce(websocket, channel, "leave")

    @app.websocket("/chat")
    @chat.serves
    async def chat_endpoint(websocket: WebSocket) -> None:
        await chat.connect(websocket, channel=LOBBY)

    @app.post("/login")
    async def login(login: Login, request: Request, response: Response) -> dict[str, str]:
        name = login.name.strip()
        if not NAME_PATTERN.fullmatch(name):
            raise HTTPException(422, "A name is 1 to 24 letters, digits, spaces, dots, dashes or apostrophes.")
        response.set_cookie(
            SESSION_COOKIE,
            sign(name),
            max_age=7 * 24 * 3600,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return {"user": name}

    @app.post("/logout")
    async def logout(response: Response) -> dict[str, bool]:
        response.delete_cookie(SESSION_COOKIE)
        return {"signed_out": True}

    @app.get("/rooms/{room}/recent")
    async def recent(room: str, request: Request) -> dict[str, Any]:
        """The last messages of ``room`` and where its stream stands: what a page shows when it joins."""
        if not request.user.is_authenticated:
            raise HTTPException(401, "Sign in first.")
        if room not in ROOMS:
            raise HTTPException(404, f"No room {room!r}: the rooms are {', '.join(ROOMS)}.")
        page = await chat.history(room, limit=RECENT)
        return {
            "room": room,
            "messages": [{"offset": item.offset, "data": item.data} for item in page.publications],
            "offset": page.offset,
            "epoch": page.epoch,
        }

    return chat
