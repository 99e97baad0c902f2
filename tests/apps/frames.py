"""Read what a TestClient websocket receives, failing fast instead of hanging (kept for tests that import it).

New tests use ``fastapi_channels.testing`` directly; this adds ``receive_close`` returning only the code.
"""

from __future__ import annotations

from starlette.testclient import WebSocketTestSession

from fastapi_channels import testing
from fastapi_channels.testing import receive as next_message
from fastapi_channels.testing import receive_json, receive_text

__all__ = ["TIMEOUT", "next_message", "receive_text", "receive_json", "receive_close"]

TIMEOUT = testing.DEFAULT_TIMEOUT


def receive_close(ws: WebSocketTestSession, timeout: float = TIMEOUT) -> int:
    """Return the close code of the server's close, which must be the next message."""
    return testing.receive_close(ws, timeout)[0]
