"""The backends page: a shared backend connects processes and limits; unknown URLs are explained."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

import fastapi_channels
from fastapi_channels.backends import PostgresBackend
from fastapi_channels.layers import create_broadcast
from tests.docs.samples import error_frame, load


@pytest.fixture(params=["memory", "redis", "redis-stream"])
def configured_urls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Set BROADCAST_URL and LIMITER_URL for the backends sample; yield the kind."""
    if request.param == "memory":
        monkeypatch.delenv("BROADCAST_URL", raising=False)
        monkeypatch.delenv("LIMITER_URL", raising=False)
    else:
        url = request.getfixturevalue("redis_url")
        monkeypatch.setenv("BROADCAST_URL", url.replace("redis://", f"{request.param}://", 1))
        monkeypatch.setenv("LIMITER_URL", url)
    yield request.param


def test_backends_shared_backend_connects_processes_and_limits(configured_urls: str, channel_name: str) -> None:
    first, second = load("backends/configured.py"), load("backends/configured.py")  # two "processes"
    for sample in (first, second):
        sample.chat.channel = channel_name
    shared = configured_urls != "memory"
    with TestClient(first.app) as one, TestClient(second.app) as two:
        with one.websocket_connect("/chat") as ann, two.websocket_connect("/chat") as bob:
            for number in range(5):
                ann.send_json({"action": "message", "text": str(number)})
                assert ann.receive_json()["text"] == str(number)
                if shared:
                    assert bob.receive_json()["text"] == str(number)
            bob.send_json({"action": "message", "text": "from bob"})
            if shared:  # one budget per client across processes: bob's address already spent it
                assert error_frame(bob)["code"] == 1013
            else:
                assert bob.receive_json()["text"] == "from bob"  # never saw ann's five
    if shared:
        client = redis.Redis.from_url(first.LIMITER_URL)
        try:
            key = f"fastapi-channels:limit:{channel_name}:message:ip:testclient"
            assert 0 < client.pttl(key) <= 2 * 10_000  # expires on its own
            client.delete(key, channel_name)
        finally:
            client.close()


def test_backends_postgres_urls_use_our_postgres_backend() -> None:
    for url in ("postgres://postgres@127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test"):
        assert isinstance(create_broadcast(url)._backend, PostgresBackend)


def test_backends_unknown_url_says_what_is_supported() -> None:
    with pytest.raises(ValueError, match="use memory://, redis://"):
        fastapi_channels.add_channel(FastAPI(), url="carrier-pigeon://coop")
