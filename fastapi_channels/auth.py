"""Logging websocket clients in from a token: where to read it, and how it becomes ``scope["user"]``.

A *reader* finds a token in a connection (the query string, a cookie, a header, the offered subprotocols);
``TokenAuthentication`` is a Starlette ``AuthenticationBackend`` that hands the token a reader found to your
*user function*. ``authenticate_first_message`` reads the token from the connection's first frame instead.
Nothing here logs a token, and a token that maps to no user leaves the connection anonymous.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias

from starlette import status
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

__all__ = [
    "SUBPROTOCOL_KEY",
    "TokenReader",
    "UserFunction",
    "from_query",
    "from_cookie",
    "from_header",
    "from_subprotocol",
    "TokenAuthentication",
    "authenticate_first_message",
]

SUBPROTOCOL_KEY = "fastapi_channels.subprotocol"
"""The websocket scope key naming the subprotocol to accept the connection with; ``from_subprotocol`` sets it."""

TokenReader: TypeAlias = Callable[[HTTPConnection], str | None]
"""Finds a token in a connection, or returns None."""

UserFunction: TypeAlias = Callable[[str], BaseUser | str | None | Awaitable[BaseUser | str | None]]
"""Maps a token to a user, a user name or None (no such user); sync or async."""


def from_query(name: str = "token") -> TokenReader:
    """Read the token from the query parameter ``name``: only for one-time tickets, since URLs get logged."""

    def read(conn: HTTPConnection) -> str | None:
        return conn.query_params.get(name) or None

    return read


def from_cookie(name: str) -> TokenReader:
    """Read the token from the cookie ``name``, which browsers send along with the handshake."""

    def read(conn: HTTPConnection) -> str | None:
        return conn.cookies.get(name) or None

    return read


def from_header(name: str = "authorization", scheme: str | None = "Bearer") -> TokenReader:
    """Read the token from the header ``name``, after ``scheme`` (any case); with ``scheme`` None, the whole value.

    Browsers cannot set headers on a WebSocket handshake: this reader is for other programs.
    """

    def read(conn: HTTPConnection) -> str | None:
        value = conn.headers.get(name, "").strip()
        if scheme is None:
            return value or None
        given, _, token = value.partition(" ")
        if given.lower() != scheme.lower():
            return None
        return token.strip() or None

    return read


def from_subprotocol(prefix: str = "access_token.", *, protocols: Iterable[str] | None = None) -> TokenReader:
    """Read the token from the offered subprotocol that starts with ``prefix``; record another one to accept with.

    A browser sends ``new WebSocket(url, ["chat.v1", "access_token." + token])``. The server must accept with
    one of the offered subprotocols or the browser fails the handshake, and it must not be the token, which
    would then travel back in the response. The reader records the first offered subprotocol that does not
    start with ``prefix`` (and is in ``protocols``, when given) under ``scope[SUBPROTOCOL_KEY]``; the
    connection is accepted with it. It records nothing when there is no such subprotocol.

    Raises:
        ValueError: ``prefix`` is empty, so every subprotocol would be taken for a token.
    """
    if not prefix:
        raise ValueError(
            'from_subprotocol needs a prefix that marks the token, e.g. from_subprotocol("access_token.").'
        )
    accepted = None if protocols is None else frozenset(protocols)

    def read(conn: HTTPConnection) -> str | None:
        offered = [item for item in conn.scope.get("subprotocols") or () if isinstance(item, str)]
        tokens = [item[len(prefix) :] for item in offered if item.startswith(prefix)]
        answers = [item for item in offered if not item.startswith(prefix) and (accepted is None or item in accepted)]
        if answers:
            conn.scope[SUBPROTOCOL_KEY] = answers[0]
        return next((token for token in tokens if token), None)

    return read


class TokenAuthentication(AuthenticationBackend):
    """Log a connection in from the token its readers find, through ``user``; leave it anonymous otherwise.

    Install it with ``app.add_middleware(AuthenticationMiddleware, backend=TokenAuthentication(...))``.
    Every reader runs (so that ``from_subprotocol`` always records the subprotocol to accept with), and the
    token of the first one that finds one counts. A token ``user`` does not know leaves the connection
    anonymous rather than failing the handshake: the channel's permissions (``IsAuthenticated``) refuse it
    with an error frame the client can read.

    Args:
        *readers: Where to look for the token, in order: ``from_cookie("session")``, ``from_subprotocol()``...
        user: Maps a token to a ``BaseUser``, a user name (made a ``SimpleUser``) or None; sync or async. A
            sync function runs on the event loop: keep it quick, or make it async.
        scopes: The ``AuthCredentials`` scopes of a logged-in connection (``request.auth.scopes``).

    Raises:
        TypeError: No reader was given.
    """

    def __init__(self, *readers: TokenReader, user: UserFunction, scopes: Iterable[str] = ("authenticated",)) -> None:
        if not readers:
            raise TypeError(
                'TokenAuthentication needs a reader: TokenAuthentication(from_cookie("session"), user=...).'
            )
        self._readers = readers
        self._user = user
        self._scopes = list(scopes)

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        """Return the credentials and user of the connection's token, or None for an anonymous connection."""
        tokens = [reader(conn) for reader in self._readers]
        token = next((token for token in tokens if token), None)
        found = await _user_for(self._user, token) if token else None
        if found is None:
            return None
        return AuthCredentials(self._scopes), found


async def authenticate_first_message(
    websocket: WebSocket, *, user: UserFunction, timeout: float = 10.0, field: str = "token"
) -> BaseUser | None:
    """Accept ``websocket`` and log it in from the token its first frame carries; return the user.

    The first frame is a JSON object holding the token under ``field``: ``{"token": "..."}``. On success,
    ``scope["user"]`` and ``scope["auth"]`` are set, and the endpoint goes on with ``channel.connect(websocket)``.
    When no such frame arrives within ``timeout`` seconds, or ``user`` does not know the token, the socket is
    closed with 1008 (policy violation) and a reason, and None is returned; None as well when the client
    leaves first. Either way, do not serve a connection this returned None for.

    Args:
        websocket: A connection not accepted yet; it is accepted with ``scope[SUBPROTOCOL_KEY]``, if set.
        user: Maps a token to a ``BaseUser``, a user name (made a ``SimpleUser``) or None; sync or async.
        timeout: Seconds the client has to send its first frame.
        field: The key of the token in the first frame.
    """
    if websocket.application_state == WebSocketState.CONNECTING:
        await websocket.accept(subprotocol=websocket.scope.get(SUBPROTOCOL_KEY))
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout)
    except asyncio.TimeoutError:
        await _refuse(websocket, "Authenticate first.")
        return None
    if message["type"] == "websocket.disconnect":
        return None
    token = _token_in(message.get("text"), field)
    found = await _user_for(user, token) if token else None
    if found is None:
        await _refuse(websocket, "Invalid token." if token else "Authenticate first.")
        return None
    websocket.scope["auth"] = AuthCredentials(["authenticated"])
    websocket.scope["user"] = found
    return found


async def _refuse(websocket: WebSocket, reason: str) -> None:
    """Close ``websocket`` with 1008 and ``reason``; a client that has just left needs no close."""
    with contextlib.suppress(WebSocketDisconnect):
        await websocket.close(status.WS_1008_POLICY_VIOLATION, reason)


def _token_in(text: str | None, field: str) -> str | None:
    """Return the string under ``field`` of the JSON object ``text``, or None."""
    try:
        frame = json.loads(text) if text is not None else None
    except ValueError:
        return None
    token = frame.get(field) if isinstance(frame, dict) else None
    return token if isinstance(token, str) and token else None


async def _user_for(function: UserFunction, token: str) -> BaseUser | None:
    """Return the authenticated user ``function`` maps ``token`` to, or None."""
    found = function(token)
    if inspect.isawaitable(found):
        found = await found
    if isinstance(found, str):
        return SimpleUser(found) if found else None
    if isinstance(found, BaseUser):
        return found if found.is_authenticated else None
    if found is None:
        return None
    # The message names the type only: the token must not reach a log through it.
    raise TypeError(
        f"The user function returned a {type(found).__name__}: return a starlette.authentication.BaseUser, "
        "a user name or None."
    )
