"""The scaling page: rooms, counts and direct messages across processes through Redis."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from tests.conftest import RedisServer
from tests.docs.samples import load


def test_scaling_lobby_counts_and_broadcasts_through_redis(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    sample = load("scaling/app.py")
    assert type(sample.app.state.fastapi_channels.presence).__name__ == "RedisPresence"
    with TestClient(sample.app) as client:
        with client.websocket_connect("/lobby") as first, client.websocket_connect("/lobby") as second:
            first.send_json({"action": "online"})
            assert first.receive_json() == {"action": "online", "count": 2}
            second.send_json({"action": "say", "text": "hello"})
            for websocket in (first, second):
                assert websocket.receive_json() == {"action": "said", "text": "hello"}
        stored = redis.Redis.from_url(own_redis.url)
        try:
            # The lobby's members live in Redis, where every process sees them; both have left.
            assert stored.hlen("fastapi-channels:presence:channel:lobby") == 0
        finally:
            stored.close()


def test_scaling_direct_messages_reach_one_user_or_one_connection(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    sample = load("scaling/direct.py")

    def as_user(token: str) -> dict[str, str]:
        return {"cookie": f"session={token}"}

    with TestClient(sample.app) as client:
        with (
            client.websocket_connect("/notifications", headers=as_user("token-of-ann")) as ann_phone,
            client.websocket_connect("/notifications", headers=as_user("token-of-ann")) as ann_laptop,
            client.websocket_connect("/notifications", headers=as_user("token-of-bob")) as bob,
            client.websocket_connect("/notifications") as anonymous,
            client.websocket_connect("/chat/lobby", headers=as_user("token-of-ann")) as ann_chat,
        ):
            online = client.get("/online").json()
            assert [member["user"] for member in online] == ["ann", "ann", "bob", None]

            assert client.post("/notify/ann", params={"text": "your order shipped"}).json() == {"sent": True}
            for websocket in (ann_phone, ann_laptop):
                assert websocket.receive_json() == {"action": "notice", "text": "your order shipped"}
            # An announcement reaches all of ann's sockets: the chat socket's first frame is the announcement,
            # so the notice before it never reached the chat.
            assert client.post("/announce/ann", params={"text": "maintenance at 6"}).json() == {"sent": True}
            for websocket in (ann_chat, ann_phone, ann_laptop):
                assert websocket.receive_json() == {"action": "announcement", "text": "maintenance at 6"}

            for member, websocket in zip(online, (ann_phone, ann_laptop, bob, anonymous), strict=True):
                client.post(f"/connections/{member['connection']}/notify", params={"text": f"just {member['user']}"})
                # The first frame each one gets is its own: bob and the anonymous client got nothing before.
                assert websocket.receive_json() == {"action": "notice", "text": f"just {member['user']}"}
