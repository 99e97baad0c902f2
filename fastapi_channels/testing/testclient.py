"""Helpers for testing channels with Starlette's ``TestClient``: read frames and close codes with a timeout.

``WebSocketTestSession.receive()`` waits forever; these helpers fail the test after ``timeout`` seconds instead.
"""

from __future__ import annotations

import json
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from fastapi_channels.testing.frames import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from starlette.testclient import WebSocketTestSession

__all__ = ["receive", "receive_text", "receive_json", "receive_close", "send_action"]

# A wait that timed out keeps running in its thread; the next call takes over its result so no frame is lost.
_pending: weakref.WeakKeyDictionary[Any, Future[dict[str, Any]]] = weakref.WeakKeyDictionary()


def receive(websocket: WebSocketTestSession, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Return the next ASGI message the server sent (``websocket.send`` or ``websocket.close``)."""
    future = _pending.pop(websocket, None)
    if future is None:
        # The session's receive() blocks its caller, so wait for it from a helper thread with a deadline.
        executor = ThreadPoolExecutor(max_workers=1)
        future = executor.submit(lambda: dict(websocket.receive()))
        executor.shutdown(wait=False)
    try:
        message: dict[str, Any] = future.result(timeout)
    except FutureTimeout:
        _pending[websocket] = future
        raise AssertionError(f"The server sent nothing within {timeout} s.") from None
    return message


def receive_text(websocket: WebSocketTestSession, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Return the next text frame; fail if the server closed the socket instead."""
    message = receive(websocket, timeout)
    if message["type"] != "websocket.send" or message.get("text") is None:
        raise AssertionError(f"Expected a text frame, got {message!r}.")
    return str(message["text"])


def receive_json(websocket: WebSocketTestSession, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Return the next text frame decoded from JSON."""
    return json.loads(receive_text(websocket, timeout))


def receive_close(websocket: WebSocketTestSession, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str]:
    """Return ``(code, reason)`` of the server's close; fail if a frame arrives instead."""
    message = receive(websocket, timeout)
    if message["type"] != "websocket.close":
        raise AssertionError(f"Expected the server to close the socket, got {message!r}.")
    return int(message.get("code", 1000)), str(message.get("reason") or "")


def send_action(websocket: WebSocketTestSession, action: str, **data: Any) -> None:
    """Send the frame ``{"action": action, **data}``."""
    websocket.send_text(json.dumps({"action": action, **data}))
