"""The history page: a chat whose rooms keep history, resuming clients, history() for an HTTP endpoint."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from websockets.asyncio.client import connect

from tests.conftest import RedisServer, run_uvicorn
from tests.docs.samples import load


def publication(offset: int, epoch: str, text: str) -> dict[str, Any]:
    return {"type": "publication", "channel": "lobby", "offset": offset, "epoch": epoch, "data": {"text": text}}


def chat_round_trip(client: TestClient) -> str:
    """Say something, leave, let others talk, come back with the position: return the epoch."""
    with client.websocket_connect("/chat/lobby") as ws:
        first = ws.receive_json()
        epoch = first["epoch"]
        assert first == {"type": "resume", "channel": "lobby", "recovered": False, "offset": 0, "epoch": epoch}
        ws.send_json({"action": "say", "text": "hi"})
        assert ws.receive_json() == publication(1, epoch, "hi")
    with client.websocket_connect("/chat/lobby") as other:
        other.receive_json()
        for text in ("one", "two"):
            other.send_json({"action": "say", "text": text})
            assert other.receive_json()["data"] == {"text": text}
    with client.websocket_connect(f"/chat/lobby?offset=1&epoch={epoch}") as ws:
        assert ws.receive_json() == publication(2, epoch, "one")
        assert ws.receive_json() == publication(3, epoch, "two")
        assert ws.receive_json() == {
            "type": "resume",
            "channel": "lobby",
            "recovered": True,
            "offset": 3,
            "epoch": epoch,
        }
    recent = client.get("/chat/lobby/recent").json()
    assert recent == {"messages": [{"text": "hi"}, {"text": "one"}, {"text": "two"}], "offset": 3, "epoch": epoch}
    assert client.get("/chat/lobby/recent", params={"since": 2}).json()["messages"] == [{"text": "two"}]
    return epoch


def test_history_chat_replays_what_a_reconnecting_client_missed() -> None:
    sample = load("history/chat.py")
    with TestClient(sample.app) as client:
        chat_round_trip(client)


def test_history_chat_on_redis_keeps_the_room_in_redis(own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROADCAST_URL", own_redis.url)
    sample = load("history/chat.py")
    with TestClient(sample.app) as client:
        epoch = chat_round_trip(client)
    with redis.Redis.from_url(own_redis.url) as stored:
        meta = stored.hgetall(f"fastapi-channels:history:meta:{sample.chat.topic('lobby')}")
        assert meta == {b"epoch": epoch.encode(), b"top": b"3"}
        # The room's keys go when nobody has published for history_ttl (10 minutes).
        assert 0 < stored.pttl(f"fastapi-channels:history:stream:{sample.chat.topic('lobby')}") <= 600_000


async def test_history_follower_resumes_after_a_disconnect_and_reloads_after_a_restart() -> None:
    follower_module = load("history/follower.py")
    applied: list[Any] = []
    reloads: list[int] = []
    with run_uvicorn("docs_src.history.chat:app") as base_url:
        url = base_url.replace("http", "ws") + "/chat/lobby"
        follower = follower_module.Follower(url, apply=applied.append, reload=lambda: reloads.append(1))
        async with follower.connect() as ws:
            assert follower.handle(json.loads(await ws.recv()))  # the first visit: load the state
            for text in ("a", "b"):
                await ws.send(json.dumps({"action": "say", "text": text}))
                assert follower.handle(json.loads(await ws.recv()))
        async with connect(url) as other:
            await other.recv()
            for text in ("c", "d"):
                await other.send(json.dumps({"action": "say", "text": text}))
                await other.recv()
        async with follower.connect() as ws:
            for _ in range(3):  # c and d, then the resume frame
                assert follower.handle(json.loads(await ws.recv()))
        assert applied == [{"text": text} for text in "abcd"] and len(reloads) == 1
        assert (follower.offset, follower.handle({**publication(6, follower.epoch, "?"), "channel": "lobby"})) == (
            4,
            False,
        )
        epoch = follower.epoch
    with run_uvicorn("docs_src.history.chat:app") as base_url:  # a restart: memory:// history is gone
        follower.url = base_url.replace("http", "ws") + "/chat/lobby"
        async with follower.connect() as ws:
            assert follower.handle(json.loads(await ws.recv()))
        assert len(reloads) == 2 and follower.epoch != epoch and follower.offset == 0
