"""Answering a ``WebSocketException``: find the app's handler for it, or send the built-in error frame."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket, WebSocketState

from fastapi_channels.exceptions import WebSocketException
from fastapi_channels.outbox import CONNECTION_KEY, Connection
from fastapi_channels.protocol import error_payload, render

__all__ = ["websocket_exception_handler", "lookup_exception_handler"]


def lookup_exception_handler(websocket: WebSocket, exc: WebSocketException) -> Callable[..., Any]:
    """Return the app's handler for ``exc`` (most specific class first), else ``websocket_exception_handler``."""
    handlers = getattr(websocket.scope.get("app"), "exception_handlers", None) or {}
    for klass in type(exc).__mro__:
        if klass in handlers:
            handler: Callable[..., Any] = handlers[klass]
            return handler
        if klass is WebSocketException:
            break
    return websocket_exception_handler


async def websocket_exception_handler(websocket: HTTPConnection, exc: WebSocketException) -> Response | None:
    """Send ``exc`` as an error frame and close the socket with its code when ``exc.close`` is true.

    Installed app-wide, it also answers a ``WebSocketException`` raised in an HTTP route: with the error
    frame as a JSON body and the exception's ``http_status`` (403 for ``PermissionDenied``, and so on).
    """
    if not isinstance(websocket, WebSocket):
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(math.ceil(retry_after))} if isinstance(retry_after, int | float) else None
        return JSONResponse(error_payload(exc), status_code=exc.http_status, headers=headers)
    text = render(error_payload(exc))
    connection = websocket.scope.get(CONNECTION_KEY)
    if isinstance(connection, Connection):
        # Through the outbox, so that the error frame keeps its place among the frames already queued.
        connection.reply(text)
        if exc.close:
            connection.close(exc.code, exc.reason or "")
        return None
    # Raised outside a channel connection, e.g. in a dependency of the websocket route.
    if websocket.application_state == WebSocketState.CONNECTING:
        await websocket.close(exc.code, exc.reason or "")
    elif websocket.application_state == WebSocketState.CONNECTED:
        await websocket.send_text(text)
        if exc.close:
            await websocket.close(exc.code, exc.reason or "")
    return None
