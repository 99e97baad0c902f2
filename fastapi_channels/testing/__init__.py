"""Test helpers: ``ChannelCommunicator`` for async tests, and timed reads for Starlette's ``TestClient``.

``ChannelCommunicator`` connects to the app in the test's own event loop (no server, no thread) and starts the
app's lifespan when needed; ``ChannelListener`` hears a channel's broadcasts without a socket. The functions
``receive``, ``receive_text``, ``receive_json``, ``receive_close`` and ``send_action`` read and write a
``TestClient`` websocket session, failing the test after ``timeout`` seconds instead of waiting forever.
"""

from __future__ import annotations

from fastapi_channels.testing.communicator import ChannelCommunicator, HandshakeRefused
from fastapi_channels.testing.frames import DEFAULT_TIMEOUT, NOTHING_TIMEOUT
from fastapi_channels.testing.listener import ChannelListener
from fastapi_channels.testing.testclient import receive, receive_close, receive_json, receive_text, send_action

__all__ = [
    "ChannelCommunicator",
    "ChannelListener",
    "HandshakeRefused",
    "DEFAULT_TIMEOUT",
    "NOTHING_TIMEOUT",
    "receive",
    "receive_text",
    "receive_json",
    "receive_close",
    "send_action",
]
