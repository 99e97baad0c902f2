"""Several real uvicorn processes sharing one real Redis behave as one server (tests/apps/cluster_app.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import RedisServer, UvicornProcess

APP = "tests.apps.cluster_app:app"
FRAME_TIMEOUT = 5.0


@contextlib.contextmanager
def cluster(size: int, redis_url: str, *, presence_ttl: float = 30.0) -> Iterator[list[UvicornProcess]]:
    """Start ``size`` uvicorn processes of the cluster app sharing ``redis_url`` under a namespace of their own."""
    env = {
        "CLUSTER_REDIS_URL": redis_url,
        "CLUSTER_NAMESPACE": f"cluster-{uuid.uuid4().hex[:12]}",
        "CLUSTER_PRESENCE_TTL": str(presence_ttl),
    }
    servers = [UvicornProcess(APP, env=env) for _ in range(size)]
    try:
        for server in servers:
            server.wait_until_serving()
        yield servers
    finally:
        for server in servers:
            server.close()


def room_name() -> str:
    return f"room-{uuid.uuid4().hex[:12]}"


class Client:
    """A real websocket client connected to one process."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket

    async def send(self, action: str, **fields: Any) -> None:
        await self.websocket.send(json.dumps({"action": action, **fields}))

    async def next(self, timeout: float = FRAME_TIMEOUT) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.websocket.recv(), timeout))
        return frame

    async def call(self, action: str, **fields: Any) -> dict[str, Any]:
        await self.send(action, **fields)
        return await self.next()

    async def close(self) -> None:
        await self.websocket.close()


@contextlib.asynccontextmanager
async def client(server: UvicornProcess, path: str, *, user: str | None = None) -> AsyncIterator[Client]:
    query = f"?{urllib.parse.urlencode({'user': user})}" if user else ""
    url = f"ws://127.0.0.1:{server.port}{path}{query}"
    async with connect(url, ping_interval=None, open_timeout=FRAME_TIMEOUT, close_timeout=2) as websocket:
        yield Client(websocket)


async def http(method: str, server: UvicornProcess, path: str, **query: str) -> Any:
    url = f"{server.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")

    def request() -> Any:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=FRAME_TIMEOUT) as response:
            return json.loads(response.read() or b"null")

    return await asyncio.to_thread(request)


async def eventually(check: Any, *, within: float, interval: float = 0.1) -> float:
    """Poll the async predicate ``check`` until it holds; return how long that took, fail after ``within`` s."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"{check.__name__} did not hold within {within} s")
        await asyncio.sleep(interval)


async def counts(servers: list[UvicornProcess], room: str) -> list[int]:
    return [await http("GET", server, f"/count/{room}") for server in servers]


async def test_cluster_broadcast_reaches_every_client_on_every_process_once_and_in_order(redis_url: str) -> None:
    room = room_name()
    with cluster(3, redis_url) as servers:
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(client(server, f"/room/{room}")) for server in servers for _ in range(2)
            ]
            publisher = clients[0]
            for index in range(30):
                await publisher.send("say", text=str(index))
            for receiver in clients:
                texts = [(await receiver.next())["text"] for _ in range(30)]
                assert texts == [str(index) for index in range(30)]
            # One more message from another process: if anything had arrived twice, it would come first.
            await http("POST", servers[2], f"/say/{room}", text="end")
            for receiver in clients:
                assert await receiver.next() == {"action": "said", "text": "end"}


async def test_cluster_counts_and_members_agree_on_every_process(redis_url: str) -> None:
    room = room_name()
    with cluster(3, redis_url) as servers:
        async with contextlib.AsyncExitStack() as stack:
            ann = await stack.enter_async_context(client(servers[0], f"/room/{room}", user="ann"))
            bob = await stack.enter_async_context(client(servers[1], f"/room/{room}", user="bob"))
            await stack.enter_async_context(client(servers[2], f"/room/{room}", user="cat"))
            await stack.enter_async_context(client(servers[0], f"/room/{room}"))

            assert await counts(servers, room) == [4, 4, 4]
            assert await ann.call("count") == {"action": "count", "count": 4}
            lists = [await http("GET", server, f"/members/{room}") for server in servers]
            assert lists[0] == lists[1] == lists[2]
            assert sorted(member["user"] or "" for member in lists[0]) == ["", "ann", "bob", "cat"]
            assert len({member["node"] for member in lists[0]}) == 3
            ids = {member["user"]: member["connection_id"] for member in lists[0]}
            assert (await ann.call("whoami"))["connection_id"] == ids["ann"]

            await bob.close()

            async def bob_left() -> bool:
                return await counts(servers, room) == [3, 3, 3]

            await eventually(bob_left, within=5)
            users = {member["user"] for member in await http("GET", servers[2], f"/members/{room}")}
            assert users == {"ann", "cat", None}


async def join_small_room(server: UvicornProcess, room: str) -> tuple[bool, ClientConnection | None]:
    """Try to join the 10-seat room; return whether the process admitted the client (and its open socket)."""
    websocket = await connect(f"ws://127.0.0.1:{server.port}/small/{room}", ping_interval=None, close_timeout=2)
    with contextlib.suppress(ConnectionClosed):  # a refused client may already be closed: its frame is buffered
        await websocket.send(json.dumps({"action": "whoami"}))
    first = json.loads(await asyncio.wait_for(websocket.recv(), FRAME_TIMEOUT))
    if first.get("action") == "whoami":
        return True, websocket
    assert first["code"] == 1013, first
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(websocket.recv(), FRAME_TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    return False, None


async def test_cluster_twenty_clients_racing_for_ten_seats_on_two_processes_admit_exactly_ten(redis_url: str) -> None:
    room = room_name()
    with cluster(2, redis_url) as servers:
        results = await asyncio.gather(*(join_small_room(servers[index % 2], room) for index in range(20)))
        inside = [websocket for admitted, websocket in results if admitted and websocket is not None]
        try:
            assert len(inside) == 10
            assert [await http("GET", server, f"/count/{room}") for server in servers] == [10, 10]
            assert (await join_small_room(servers[1], room))[0] is False

            await inside.pop().close()

            async def seat_free() -> bool:
                return await counts(servers, room) == [9, 9]

            await eventually(seat_free, within=5)
            admitted, websocket = await join_small_room(servers[0], room)
            assert admitted and websocket is not None
            inside.append(websocket)
        finally:
            await asyncio.gather(*(websocket.close() for websocket in inside))


async def test_cluster_killed_process_leaves_the_counts_within_the_presence_ttl(redis_url: str) -> None:
    room = room_name()
    ttl = 2.0
    with cluster(2, redis_url, presence_ttl=ttl) as (survivor, doomed):
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(7):
                await stack.enter_async_context(client(survivor, f"/small/{room}"))
            doomed_clients = [await stack.enter_async_context(client(doomed, f"/small/{room}")) for _ in range(3)]
            assert await http("GET", survivor, f"/count/{room}") == 10
            assert (await join_small_room(survivor, room))[0] is False

            doomed.kill()

            async def doomed_gone() -> bool:
                return await http("GET", survivor, f"/count/{room}") == 7

            # Its lease was renewed at most ttl/3 before the kill, so it runs out within ttl.
            took = await eventually(doomed_gone, within=ttl + 1.5)
            assert took <= ttl + 1.5
            for orphan in doomed_clients:
                with pytest.raises(ConnectionClosed):
                    await orphan.next()
            # The dead process's seats are free again.
            for _ in range(3):
                admitted, websocket = await join_small_room(survivor, room)
                assert admitted and websocket is not None
                stack.push_async_callback(websocket.close)
            assert await http("GET", survivor, f"/count/{room}") == 10


async def test_cluster_graceful_shutdown_removes_the_process_connections_at_once(redis_url: str) -> None:
    room = room_name()
    with cluster(2, redis_url, presence_ttl=30.0) as (staying, leaving):
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(client(staying, f"/room/{room}"))
            for _ in range(2):
                await stack.enter_async_context(client(leaving, f"/room/{room}"))
            assert await http("GET", staying, f"/count/{room}") == 3

            await asyncio.to_thread(leaving.stop)

            # Far sooner than the 30 s lease: the shutdown removed them.
            assert await http("GET", staying, f"/count/{room}") == 1


async def test_cluster_direct_messages_reach_only_their_user_or_connection_on_every_process(redis_url: str) -> None:
    room = room_name()
    with cluster(2, redis_url) as (first, second):
        async with contextlib.AsyncExitStack() as stack:
            ann_here = await stack.enter_async_context(client(first, f"/room/{room}", user="ann"))
            ann_there = await stack.enter_async_context(client(second, f"/room/{room}", user="ann"))
            bob_here = await stack.enter_async_context(client(first, f"/room/{room}", user="bob"))
            bob_there = await stack.enter_async_context(client(second, f"/room/{room}", user="bob"))
            everyone = [ann_here, ann_there, bob_here, bob_there]

            await http("POST", second, "/to-user/ann", text="for ann")
            for ann in (ann_here, ann_there):
                assert await ann.next() == {"action": "direct", "text": "for ann"}

            ids = [(await receiver.call("whoami"))["connection_id"] for receiver in everyone]
            await http("POST", second, f"/to-connection/{ids[2]}", text="for one bob")
            assert await bob_here.next() == {"action": "direct", "text": "for one bob"}

            # Direct messages keep their order among themselves: anything leaked would come before these.
            for receiver, connection_id in zip(everyone, ids, strict=True):
                await http("POST", first, f"/to-connection/{connection_id}", text="end")
                assert await receiver.next() == {"action": "direct", "text": "end"}


async def test_cluster_rate_limit_spent_on_one_process_applies_on_another(redis_url: str) -> None:
    room = room_name()
    with cluster(2, redis_url) as (first, second):
        async with client(first, f"/room/{room}", user="ann") as ann:
            assert await ann.call("limited") == {"action": "limited", "ok": True}
            assert await ann.call("limited") == {"action": "limited", "ok": True}
        # Reconnecting to another process does not give a fresh budget.
        async with client(second, f"/room/{room}", user="ann") as ann_again:
            refused = await ann_again.call("limited")
            assert refused["code"] == 1013 and refused["retry_after"] > 0
            assert (await ann_again.call("whoami"))["user"] == "ann"
        async with client(second, f"/room/{room}", user="bob") as bob:
            assert await bob.call("limited") == {"action": "limited", "ok": True}


async def test_cluster_redis_restart_keeps_sockets_open_and_delivery_resumes_within_five_seconds(
    own_redis: RedisServer,
) -> None:
    room = room_name()
    with cluster(2, own_redis.url, presence_ttl=3.0) as servers:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(client(server, f"/room/{room}")) for server in servers * 2]
            sender, receiver = clients[0], clients[1]
            assert await counts(servers, room) == [4, 4]

            await asyncio.to_thread(own_redis.stop)
            refused = await sender.call("say", text="while down")
            assert refused["code"] == 1013 and refused["status"] == "bad"
            for each in clients:  # every socket is still open and served
                assert (await each.call("whoami"))["action"] == "whoami"

            await asyncio.to_thread(own_redis.start)
            back = time.monotonic()
            probes = 0
            while True:
                assert time.monotonic() - back < 5, "delivery did not resume within 5 s of Redis returning"
                probes += 1
                await sender.send("say", text=f"probe {probes}")
                with contextlib.suppress(asyncio.TimeoutError):
                    frame = await receiver.next(timeout=0.25)
                    if frame.get("action") == "said":
                        break

            async def presence_restored() -> bool:
                return await counts(servers, room) == [4, 4]

            # Redis came back empty: each process rewrites its own connections at its next renewal (ttl/3).
            await eventually(presence_restored, within=5)
            for server in servers:
                alive = await http("GET", server, "/tasks")
                assert "fastapi-channels-redis-reader" in alive
                assert "fastapi-channels-presence" in alive
                assert any(name.endswith(".direct") for name in alive)
                assert "Traceback" not in server.output()
