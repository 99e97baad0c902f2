"""Redis going away: publishing, presence and rate-limit checks answer 1013, keep the socket, and recover."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from fastapi import WebSocket
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from fastapi_channels import limiter
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.testing import receive_close, receive_json
from tests.conftest import RedisServer
from tests.helpers import greet_on_join, joined, serve


def unique_namespace() -> str:
    """A namespace of the test's own: messages to a user go to every app sharing the namespace on one Redis."""
    return f"test-{uuid.uuid4().hex}"


def until_one_arrives(sender: WebSocketTestSession, receiver: WebSocketTestSession, *, within: float) -> Any:
    """Have ``sender`` say numbered messages until ``receiver`` gets one; return it (fail after ``within`` s)."""
    deadline = time.monotonic() + within
    number = 0
    while time.monotonic() < deadline:
        sender.send_json({"action": "say", "text": f"after {number}"})
        number += 1
        with contextlib.suppress(AssertionError):  # nothing within the short wait: this one was lost
            return receive_json(receiver, timeout=0.2)
    raise AssertionError(f"no broadcast was delivered within {within} s")


def test_publish_while_redis_is_down_answers_1013_keeps_the_socket_and_delivery_resumes(
    own_redis: RedisServer, channel_name: str
) -> None:
    class Room(Channel):
        @action()
        async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(channel, {"said": data["text"]})

        @action()
        async def ping(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"pong": True})

        @action()
        async def members(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"count": len(await self.get_members(channel))})

    room = Room()
    greet_on_join(room)
    presence_ttl = 1.5
    app = serve(room, url=own_redis.url, namespace=unique_namespace(), presence_ttl=presence_ttl)
    path = f"/ws/{channel_name}"
    with TestClient(app) as client, joined(client, path) as speaker, joined(client, path) as listener:
        speaker.send_json({"action": "say", "text": "before"})
        assert receive_json(listener) == {"said": "before"}
        assert receive_json(speaker) == {"said": "before"}

        own_redis.stop()
        speaker.send_json({"action": "say", "text": "during", "request_id": 7})
        error = receive_json(speaker)
        assert {key: error[key] for key in ("status", "action", "request_id", "code", "close")} == {
            "status": "bad",
            "action": "say",
            "request_id": 7,
            "code": 1013,
            "close": False,
        }
        assert "cannot be reached" in error["errors"]
        # The socket stays open and the next frame is answered.
        speaker.send_json({"action": "ping"})
        assert receive_json(speaker) == {"pong": True}
        # Who is online cannot be read either: an error frame, the socket stays open.
        speaker.send_json({"action": "members"})
        assert receive_json(speaker)["code"] == 1013
        # A client that cannot be admitted is told why and closed with 1013.
        with client.websocket_connect(path) as refused:
            assert receive_json(refused)["code"] == 1013
            assert receive_close(refused)[0] == 1013

        own_redis.start()
        assert until_one_arrives(speaker, listener, within=5)["said"].startswith("after ")
        speaker.send_json({"action": "say", "text": "final"})
        while (frame := receive_json(speaker)) != {"said": "final"}:
            assert frame.get("said", "").startswith("after ") or frame.get("code") == 1013, frame
        while (frame := receive_json(listener)) != {"said": "final"}:
            assert frame["said"].startswith("after "), frame

        # Redis came back empty; the next renewal of the lease rewrites who is connected.
        def both_listed() -> bool:
            speaker.send_json({"action": "members"})
            return bool(receive_json(speaker) == {"count": 2})

        deadline = time.monotonic() + presence_ttl / 3 + 1
        while not both_listed():
            assert time.monotonic() < deadline, "the members were not restored after the restart"


def test_rate_limit_check_while_limiter_redis_is_down_answers_backend_unavailable(
    own_redis: RedisServer, channel_name: str
) -> None:
    class Room(Channel):
        @action()
        @limiter(100, seconds=1)
        async def limited(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"done": data["n"]})

        @action()
        async def ping(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"pong": True})

    app = serve(Room(), url="memory://", limiter_url=own_redis.url, limiter_prefix=f"test-{uuid.uuid4().hex}")
    with TestClient(app) as client, client.websocket_connect(f"/ws/{channel_name}") as ws:
        ws.send_json({"action": "limited", "n": 1})
        assert receive_json(ws) == {"done": 1}
        own_redis.stop()
        ws.send_json({"action": "limited", "n": 2, "request_id": "r-2"})
        error = receive_json(ws)
        assert {key: error[key] for key in ("action", "request_id", "code", "close")} == {
            "action": "limited",
            "request_id": "r-2",
            "code": 1013,
            "close": False,
        }
        assert "Rate limits cannot be checked" in error["errors"]
        ws.send_json({"action": "ping"})
        assert receive_json(ws) == {"pong": True}
        own_redis.start()
        ws.send_json({"action": "limited", "n": 3})
        assert receive_json(ws) == {"done": 3}
