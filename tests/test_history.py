"""Channels with history: publication frames, resuming after a disconnect, bounds, and the history() call.

The resume bars run in process on memory:// and Redis (one fixture), and on two uvicorn processes sharing one
Redis (tests/apps/history_app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.testclient import WebSocketTestSession

from fastapi_channels import add_channel
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import PermissionDenied
from fastapi_channels.history import MemoryHistory, Position, RedisHistory, Retention
from fastapi_channels.testing import receive_close, receive_json, receive_text, send_action
from tests.apps.backends import CountingMemoryBackend
from tests.conftest import RedisServer, UvicornProcess
from tests.helpers import serve
from tests.test_cluster import Client, client, http
from tests.test_redis_outage_publish import FREEZES, frozen, say_during_outage

HISTORY_APP = "tests.apps.history_app:app"


def history_app(room: BaseChannel, backend: dict[str, Any]) -> FastAPI:
    """Serve ``room`` at /ws/{name}, with ``POST /publish/{name}?count=N`` publishing ``{"n": i}`` N times."""
    app = serve(room, **backend)

    async def publish(name: str, count: int, text: str | None = None) -> dict[str, Any] | None:
        position = None
        for index in range(count):
            position = await room.broadcast_to_channel(name, text if text is not None else {"n": index})
        return None if position is None else {"offset": position.offset, "epoch": position.epoch}

    app.add_api_route("/publish/{name}", publish, methods=["POST"])
    return app


def publish(client: TestClient, channel: str, count: int, **query: Any) -> dict[str, Any]:
    response = client.post(f"/publish/{channel}", params={"count": count, **query})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] | None = response.json()
    assert answer is not None, "a channel without history gives no position"
    return answer


def resume_frame(channel: str, *, recovered: bool, offset: int, epoch: str) -> dict[str, Any]:
    return {"type": "resume", "channel": channel, "recovered": recovered, "offset": offset, "epoch": epoch}


@contextlib.contextmanager
def joined(client: TestClient, channel: str, query: str = "") -> Iterator[WebSocketTestSession]:
    with client.websocket_connect(f"/ws/{channel}{query}") as ws:
        yield ws


# -- frames ----------------------------------------------------------------------------------------------


def test_history_fresh_join_gets_resume_frame_then_publications_with_offset_and_epoch(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=10)
    with TestClient(history_app(room, backend)) as client, joined(client, channel_name) as ws:
        first = receive_json(ws)
        epoch = first["epoch"]
        assert first == resume_frame(channel_name, recovered=False, offset=0, epoch=epoch)
        assert isinstance(epoch, str) and len(epoch) == 16
        publish(client, channel_name, 2)
        assert receive_json(ws) == {
            "type": "publication",
            "channel": channel_name,
            "offset": 1,
            "epoch": epoch,
            "data": {"n": 0},
        }
        assert receive_json(ws)["offset"] == 2


def test_history_channel_without_history_sends_messages_unwrapped_and_no_resume_frame(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel()
    with TestClient(history_app(room, backend)) as client, joined(client, channel_name) as ws:
        send_action(ws, "resume", offset=0, epoch="abc")
        assert receive_json(ws)["errors"] == "The action 'resume' does not exist."
        assert client.post(f"/publish/{channel_name}", params={"count": 1}).json() is None
        assert receive_text(ws) == '{"n":0}'


def test_history_replayed_frame_is_the_live_frame_byte_for_byte(backend: dict[str, Any], channel_name: str) -> None:
    room = Channel(history_size=10)
    with TestClient(history_app(room, backend)) as client:
        with joined(client, channel_name) as ws:
            epoch = receive_json(ws)["epoch"]
            publish(client, channel_name, 1, text='{"quote":"\\"","é":"ü\\u2028"}')
            live = receive_text(ws)
        with joined(client, channel_name, f"?offset=0&epoch={epoch}") as ws:
            assert receive_text(ws) == live
            assert receive_json(ws)["recovered"] is True


def test_history_relay_keeps_json_as_data_and_other_text_as_text(backend: dict[str, Any], channel_name: str) -> None:
    room = BaseChannel(history_size=10)
    with TestClient(serve(room, **backend)) as client:
        with joined(client, channel_name) as sender, joined(client, channel_name) as receiver:
            epoch = receive_json(sender)["epoch"]
            receive_json(receiver)
            sender.send_text("hello")
            sender.send_text('{"a": [1, 2]}')
            sender.send_text('{"a": ')  # not JSON: travels as text
            frames = [receive_json(receiver) for _ in range(3)]
        assert [(frame.get("data"), frame.get("text")) for frame in frames] == [
            (None, "hello"),
            ({"a": [1, 2]}, None),
            (None, '{"a": '),
        ]
        with joined(client, channel_name, f"?offset=0&epoch={epoch}") as ws:
            assert [receive_json(ws) for _ in range(3)] == frames


# -- the resume bars, in process -----------------------------------------------------------------------


def test_history_client_away_for_1000_publications_with_history_2000_gets_all_in_order_recovered(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=2000)
    with TestClient(history_app(room, backend)) as client:
        with joined(client, channel_name) as ws:
            epoch = receive_json(ws)["epoch"]
            publish(client, channel_name, 5)
            last = [receive_json(ws) for _ in range(5)][-1]
        assert last["offset"] == 5
        publish(client, channel_name, 1000)
        with joined(client, channel_name, f"?offset=5&epoch={epoch}") as ws:
            frames = [receive_json(ws) for _ in range(1000)]
            assert [frame["offset"] for frame in frames] == list(range(6, 1006))
            assert [frame["data"]["n"] for frame in frames] == list(range(1000))
            assert {(frame["type"], frame["epoch"]) for frame in frames} == {("publication", epoch)}
            assert receive_json(ws) == resume_frame(channel_name, recovered=True, offset=1005, epoch=epoch)
            # The next publication follows at once: nothing twice at the seam.
            publish(client, channel_name, 1)
            assert receive_json(ws)["offset"] == 1006


def test_history_client_away_for_1000_publications_with_history_100_is_not_recovered(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=100)
    with TestClient(history_app(room, backend)) as client:
        with joined(client, channel_name) as ws:
            epoch = receive_json(ws)["epoch"]
        publish(client, channel_name, 1000)
        with joined(client, channel_name, f"?offset=0&epoch={epoch}") as ws:
            # Nothing is replayed: the client reloads its state, and resumes from here next time.
            assert receive_json(ws) == resume_frame(channel_name, recovered=False, offset=1000, epoch=epoch)
            publish(client, channel_name, 1)
            assert receive_json(ws)["offset"] == 1001


def test_history_client_that_missed_nothing_is_recovered_with_no_replay(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=5)
    with TestClient(history_app(room, backend)) as client:
        epoch = publish(client, channel_name, 20)["epoch"]
        with joined(client, channel_name, f"?offset=20&epoch={epoch}") as ws:
            assert receive_json(ws) == resume_frame(channel_name, recovered=True, offset=20, epoch=epoch)


# -- epochs and bounds ---------------------------------------------------------------------------------


def history_keys(backend: dict[str, Any], room: BaseChannel, channel: str) -> list[str]:
    """Return the Redis keys of ``channel``'s stream and of its epoch and last offset."""
    return [f"{backend['namespace']}:history:{kind}:{room.topic(channel)}" for kind in ("stream", "meta")]


def test_history_lost_stream_gets_a_new_epoch_and_resuming_into_the_old_one_is_not_recovered(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=100)
    app = history_app(room, backend)
    with TestClient(app) as client:
        old = publish(client, channel_name, 3)
        if backend["url"].startswith("redis"):
            # Redis lost the stream (a restart without persistence, an eviction): a new epoch starts.
            with redis.Redis.from_url(backend["url"]) as server:
                assert server.delete(*history_keys(backend, room, channel_name)) == 2
    with TestClient(app) as client:  # memory:// loses its history when the app stops, as a restart would
        with joined(client, channel_name, f"?offset=3&epoch={old['epoch']}") as ws:
            frame = receive_json(ws)
            assert frame["recovered"] is False and frame["offset"] == 0 and frame["epoch"] != old["epoch"]
            new = publish(client, channel_name, 1)
            assert receive_json(ws)["epoch"] == new["epoch"] == frame["epoch"]


def test_history_keeps_at_most_history_size_publications(backend: dict[str, Any], channel_name: str) -> None:
    room = Channel(history_size=10)
    with TestClient(history_app(room, backend)) as client:
        publish(client, channel_name, 35)
        store = room.get_config().layer.history
        if isinstance(store, MemoryHistory):
            assert store.held() == 10
        else:
            stream, meta = history_keys(backend, room, channel_name)
            with redis.Redis.from_url(backend["url"]) as server:
                assert server.xlen(stream) == 10
                assert server.hget(meta, "top") == b"35"
                # Both expire when nobody publishes: no key stays in Redis for ever.
                assert 0 < server.pttl(stream) and 0 < server.pttl(meta)


def test_history_ttl_drops_old_publications_and_resuming_past_them_is_not_recovered(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=10, history_ttl=0.2)
    with TestClient(history_app(room, backend)) as client:
        position = publish(client, channel_name, 3)

        def expired() -> bool:
            return client.portal.call(room.history, channel_name).publications == []

        wait_until(expired, within=5)
        with joined(client, channel_name, f"?offset=0&epoch={position['epoch']}") as ws:
            assert receive_json(ws) == resume_frame(channel_name, recovered=False, offset=3, epoch=position["epoch"])
        # A client that had everything missed nothing: it resumes even though the publications expired.
        with joined(client, channel_name, f"?offset=3&epoch={position['epoch']}") as ws:
            assert receive_json(ws)["recovered"] is True


def wait_until(check: Callable[[], bool], *, within: float, interval: float = 0.05) -> None:
    """Poll ``check`` until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{check.__name__} did not hold within {within} s")
        time.sleep(interval)


# -- join handlers -------------------------------------------------------------------------------------


def test_history_join_handler_broadcast_reaches_the_newcomer_after_its_resume_frame(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=10)

    async def announce(websocket: WebSocket, channel: str) -> None:
        await room.broadcast_to_channel(channel, {"joined": True})

    room.add_event_handler("join", announce)
    with TestClient(history_app(room, backend)) as client, joined(client, channel_name) as ws:
        resume = receive_json(ws)
        assert (resume["type"], resume["offset"]) == ("resume", 0)
        assert receive_json(ws) == {
            "type": "publication",
            "channel": channel_name,
            "offset": 1,
            "epoch": resume["epoch"],
            "data": {"joined": True},
        }


def test_history_join_handler_that_refuses_the_client_leaks_nothing_of_the_history(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=10)

    async def refuse(websocket: WebSocket, channel: str) -> None:
        if websocket.query_params.get("locked"):
            raise PermissionDenied(error_msg="This room is locked.")

    room.add_event_handler("join", refuse)
    with TestClient(history_app(room, backend)) as client:
        epoch = publish(client, channel_name, 3)["epoch"]
        with joined(client, channel_name, f"?offset=0&epoch={epoch}&locked=1") as ws:
            assert receive_json(ws)["errors"] == "This room is locked."
            assert receive_close(ws)[0] == 1008


# -- history() for server code -------------------------------------------------------------------------


def test_history_call_returns_last_or_since_with_limits_and_says_when_publications_are_gone(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=5)
    with TestClient(history_app(room, backend)) as client:
        epoch = publish(client, channel_name, 10)["epoch"]
        publish(client, channel_name, 1, text="plain text")

        def read(**options: Any) -> tuple[list[int], bool]:
            page = client.portal.call(lambda: room.history(channel_name, **options))
            assert (page.offset, page.epoch) == (11, epoch)
            return [publication.offset for publication in page.publications], page.complete

        assert read() == ([7, 8, 9, 10, 11], True)
        assert read(limit=2) == ([10, 11], True)
        assert read(since=8) == ([9, 10, 11], True)
        assert read(since=8, limit=1) == ([9], True)
        assert read(since=3) == ([7, 8, 9, 10, 11], False)
        assert read(since=11) == ([], True)
        assert read(since=12) == ([], False)
        last_two = client.portal.call(lambda: room.history(channel_name, limit=2)).publications
        assert [(p.data, p.text, p.is_json) for p in last_two] == [
            ({"n": 9}, '{"n":9}', True),
            ("plain text", "plain text", False),
        ]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"limit": 0}, "limit must be an integer of at least 1"),
        ({"limit": True}, "limit must be an integer of at least 1"),
        ({"since": -1}, "since must be an integer of at least 0"),
        ({"since": "3"}, "since must be an integer of at least 0"),
    ],
)
def test_history_call_with_bad_arguments_raises_value_error(options: dict[str, Any], error: str) -> None:
    room = Channel(history_size=5)
    with TestClient(history_app(room, {})) as client, pytest.raises(ValueError, match=error):
        client.portal.call(lambda: room.history(**options))


def test_history_call_on_a_channel_without_history_says_to_set_history_size() -> None:
    room = Channel()
    with TestClient(history_app(room, {})) as client, pytest.raises(RuntimeError, match="give it a history_size"):
        client.portal.call(room.history)


# -- configuration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"history_size": 0}, "history_size must be a positive number"),
        ({"history_size": True}, "history_size must be a positive number"),
        ({"history_size": "10"}, "history_size must be a positive number"),
        ({"history_size": 10, "history_ttl": 0}, "history_ttl must be a positive number"),
        ({"history_size": 10, "history_ttl": -1.5}, "history_ttl must be a positive number"),
        ({"history_size": 10, "history_ttl": math.nan}, "history_ttl must be a positive number"),
        ({"history_size": 10, "history_ttl": math.inf}, "history_ttl must be a positive number"),
        ({"history_ttl": 60}, "history_ttl needs a history_size too"),
    ],
)
def test_history_bad_settings_raise_at_definition(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Channel(**options)
    with pytest.raises(ValueError, match=error):
        type("Room", (Channel,), dict(options))


def test_history_settings_of_class_attributes_and_constructor_resolve_once() -> None:
    class Room(Channel):
        history_size = 50
        history_ttl = 60.0

    assert Room().retention == Retention(50, 60.0)
    assert Room(history_size=5).retention == Retention(5, 60.0)
    assert Channel().retention is None


def test_history_on_a_backend_that_keeps_none_fails_loudly_with_the_fix(
    channel_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    room = Channel(history_size=10)
    app = FastAPI()
    add_channel(app, backend=CountingMemoryBackend())

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    with TestClient(app) as client:
        with pytest.raises(RuntimeError, match="need add_channel\\(url=...\\) with memory://"):
            client.portal.call(room.broadcast_to_channel, channel_name, "hello")
        with client.websocket_connect("/ws") as ws:
            assert receive_json(ws)["code"] == 1011
            assert receive_close(ws)[0] == 1011
    assert any("need add_channel(url=...)" in str(record.exc_info[1]) for record in caplog.records if record.exc_info)


def test_history_epoch_given_before_the_first_publication_is_the_first_publications_and_resumes(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = Channel(history_size=100)
    with TestClient(history_app(room, backend)) as client:
        with joined(client, channel_name) as ws:
            epoch = receive_json(ws)["epoch"]
        assert publish(client, channel_name, 3)["epoch"] == epoch
        with joined(client, channel_name, f"?offset=0&epoch={epoch}") as ws:
            assert [receive_json(ws)["offset"] for _ in range(3)] == [1, 2, 3]
            assert receive_json(ws) == resume_frame(channel_name, recovered=True, offset=3, epoch=epoch)


def test_history_channel_only_read_is_forgotten_after_pending_ttl(backend: dict[str, Any], channel_name: str) -> None:
    room = Channel(history_size=100, client_subscriptions=True)
    with TestClient(history_app(room, backend)) as client:
        room.get_config().layer.history.pending_ttl = 0.05  # type: ignore[union-attr]
        with joined(client, channel_name) as ws:
            first = receive_json(ws)["epoch"]
            # Subscribe frames read history too: each name read is held briefly, never for HISTORY_META_TTL.
            names = [f"{channel_name}-{index}" for index in range(20)]
            for name in names:
                send_action(ws, "subscribe", channel=name)
                while receive_json(ws)["type"] != "resume":
                    pass
        if backend["url"].startswith("redis"):
            with redis.Redis.from_url(backend["url"]) as server:
                ttl = [server.pttl(history_keys(backend, room, name)[1]) for name in names]
            # Each key expires within pending_ttl: gone (-2), or at most 50 ms left (0 at the very edge of expiring).
            assert all(0 <= milliseconds <= 50 or milliseconds == -2 for milliseconds in ttl), ttl

        def forgotten() -> bool:
            with joined(client, channel_name) as ws:
                return bool(receive_json(ws)["epoch"] != first)

        wait_until(forgotten, within=5)


def test_history_memory_store_forgets_streams_nobody_published_to_for_meta_ttl() -> None:
    async def scenario() -> None:
        store = MemoryHistory(meta_ttl=0.05)
        retention = Retention(5, 0.01)
        first = await store.append("a", '"data":1', retention, head="", channel="")
        deadline = time.monotonic() + 5
        # Another stream's publications sweep the store now and then.
        while (await store.read("a", retention)).epoch == first.epoch:
            assert time.monotonic() < deadline, "the idle stream was never dropped"
            await store.append("b", '"data":1', retention, head="", channel="")
            await asyncio.sleep(0.01)

    asyncio.run(scenario())


# -- real servers --------------------------------------------------------------------------------------


@contextlib.contextmanager
def history_servers(count: int, url: str, *, size: int) -> Iterator[list[UvicornProcess]]:
    """Start ``count`` uvicorn processes of the history app on ``url`` under a namespace of their own."""
    env = {"HISTORY_URL": url, "HISTORY_NAMESPACE": f"history-{uuid.uuid4().hex[:12]}", "HISTORY_SIZE": str(size)}
    servers = [UvicornProcess(HISTORY_APP, env=env) for _ in range(count)]
    try:
        for server in servers:
            server.wait_until_serving()
        yield servers
    finally:
        for server in servers:
            server.close()


async def first_position(server: UvicornProcess, room: str) -> str:
    """Join ``room`` once and return its epoch, as a client would keep it."""
    async with client(server, f"/room/{room}") as ws:
        frame = await ws.next()
        assert frame["type"] == "resume"
        return str(frame["epoch"])


async def read_catch_up(ws: Client, until: int) -> tuple[list[int], dict[str, Any]]:
    """Read publications up to offset ``until`` and the resume frame; return the offsets in order and the frame."""
    offsets: list[int] = []
    resume: dict[str, Any] | None = None
    while resume is None or not offsets or offsets[-1] < until:
        frame = await ws.next(timeout=20)
        if frame["type"] == "resume":
            assert resume is None, "two resume frames"
            resume = frame
            # Every publication before the resume frame is replayed, every one after it newer.
            assert offsets[-1:] in ([], [frame["offset"]]), (offsets[-1:], frame)
        else:
            assert resume is None or frame["offset"] > resume["offset"], (frame, resume)
            offsets.append(frame["offset"])
    return offsets, resume


@pytest.mark.parametrize(("size", "recovered"), [(2000, True), (100, False)])
async def test_history_two_processes_client_away_for_1000_resumes_on_the_other_process(
    redis_url: str, size: int, recovered: bool
) -> None:
    room = f"room-{uuid.uuid4().hex[:12]}"
    with history_servers(2, redis_url, size=size) as (first, second):
        epoch = await first_position(first, room)
        assert (await http("POST", second, f"/publish/{room}", count="1000"))["offset"] == 1000
        async with client(first, f"/room/{room}?offset=0&epoch={epoch}") as ws:
            if recovered:
                frames = [await ws.next() for _ in range(1000)]
                assert [frame["offset"] for frame in frames] == list(range(1, 1001))
                assert [frame["data"]["n"] for frame in frames] == [f"0-{index}" for index in range(1000)]
            assert await ws.next() == resume_frame(room, recovered=recovered, offset=1000, epoch=epoch)
            await http("POST", second, f"/publish/{room}", count="1")
            assert (await ws.next())["offset"] == 1001


@pytest.mark.parametrize("processes", [1, 2])
async def test_history_resume_while_every_process_publishes_concurrently_has_no_gap_and_no_duplicate(
    redis_url: str, processes: int
) -> None:
    room = f"room-{uuid.uuid4().hex[:12]}"
    url = redis_url if processes == 2 else "memory://"
    with history_servers(processes, url, size=10_000) as servers:
        epoch = await first_position(servers[0], room)
        # A replay of 12 MB: far more than the socket buffers hold, so it waits on the client.
        await http("POST", servers[-1], f"/publish/{room}", count="1500", pad="8000")
        total = 1500 + 1000 * len(servers)
        async with client(servers[0], f"/room/{room}?offset=0&epoch={epoch}") as ws:
            # The client reads nothing yet: every process publishes while its replay is under way.
            await asyncio.gather(
                *(
                    http("POST", server, f"/publish/{room}", count="1000", workers="4", pad="500", tag=f"p{index}-")
                    for index, server in enumerate(servers)
                )
            )
            offsets, resume = await read_catch_up(ws, until=total)
        assert offsets == list(range(1, total + 1))
        assert resume == resume_frame(room, recovered=True, offset=1500, epoch=epoch)


# -- Redis outages -------------------------------------------------------------------------------------


class Talk(Channel):
    history_size = 100

    @action()
    async def say(self, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"said": data["text"]})


def test_history_publish_while_redis_is_stopped_fails_fast_then_goes_on_in_a_new_epoch(
    own_redis: RedisServer, channel_name: str
) -> None:
    room = Talk()
    app = serve(room, url=own_redis.url, namespace=f"test-{uuid.uuid4().hex}")
    with TestClient(app) as client:
        with joined(client, channel_name) as speaker:
            epoch = receive_json(speaker)["epoch"]
            send_action(speaker, "say", text="before")
            assert receive_json(speaker)["offset"] == 1
            own_redis.stop()
            # The first publish finds Redis gone; the others are refused at once, none kept for later.
            say_during_outage(speaker, within=1.0)
            own_redis.start()
            deadline = time.monotonic() + 15
            while True:
                assert time.monotonic() < deadline, "nothing was published within 15 s of Redis coming back"
                send_action(speaker, "say", text="after")
                frame = receive_json(speaker)
                if frame["type"] == "publication":
                    break
                assert frame["code"] == 1013, frame
            # Redis came back empty: the stream started again, in a new epoch.
            assert (frame["offset"], frame["data"]) == (1, {"said": "after"}) and frame["epoch"] != epoch
        with joined(client, channel_name, f"?offset=1&epoch={epoch}") as ws:
            assert receive_json(ws) == resume_frame(channel_name, recovered=False, offset=1, epoch=frame["epoch"])


@pytest.mark.parametrize("freeze", FREEZES)
async def test_history_append_that_redis_gets_to_after_the_deadline_is_dropped_not_kept(
    own_redis: RedisServer, channel_name: str, freeze: str
) -> None:
    store = RedisHistory(own_redis.url, namespace=f"test-{uuid.uuid4().hex}")
    await store.start()
    retention = Retention(10)
    try:
        first = await store.append(channel_name, '"data":1', retention, head="{", channel="")
        store.publish_deadline = 0.2
        with frozen(own_redis, freeze):
            late = asyncio.create_task(store.append(channel_name, '"data":2', retention, head="{", channel=""))
            done, _ = await asyncio.wait({late}, timeout=0.5)
            assert not done
        with pytest.raises(RedisTimeoutError, match="dropped it"):
            await asyncio.wait_for(late, 5)
        page = await store.read(channel_name, retention)
        assert ([publication.offset for publication in page.publications], page.offset) == ([1], 1)
        assert await store.append(channel_name, '"data":3', retention, head="{", channel="") == Position(2, first.epoch)
    finally:
        await store.stop()
