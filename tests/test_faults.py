"""Faults a production server meets, each against a real uvicorn process and real sockets: a client that
vanishes mid-action, a shutdown with a client that does not read and an action in flight."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.conftest import UvicornProcess
from tests.helpers import unread_socket

STUCK_FRAMES = 128
STUCK_FRAME_SIZE = 128 * 1024  # 16 MiB in all: far more than the socket buffers hold


def events_in(log: Path) -> list[str]:
    """Return the events the app has logged so far."""
    return log.read_text().splitlines() if log.exists() else []


async def wait_for_event(log: Path, event: str, timeout: float) -> None:
    """Wait until ``event`` is in the app's log, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while event not in events_in(log):
        assert time.monotonic() < deadline, f"no {event!r} within {timeout} s: {events_in(log)}"
        await asyncio.sleep(0.02)


def faults_server(backend: dict[str, Any], log: Path) -> UvicornProcess:
    """Start tests/apps/faults_app.py on ``backend`` (its own namespace), logging events to ``log``."""
    env = {"FAULTS_URL": backend["url"], "FAULTS_NAMESPACE": backend["namespace"], "FAULTS_LOG": str(log)}
    server = UvicornProcess("tests.apps.faults_app:app", env=env)
    server.wait_until_serving()
    return server


async def test_client_gone_mid_action_cancels_the_action_and_leaves_at_once(
    backend: dict[str, Any], channel_name: str, tmp_path: Path
) -> None:
    log = tmp_path / "events"
    server = faults_server(backend, log)
    try:
        url = f"{server.url.replace('http://', 'ws://')}/ws/{channel_name}"
        client = await websockets.connect(url, ping_interval=None)
        assert await asyncio.wait_for(client.recv(), 5) == "joined"
        await client.send(json.dumps({"action": "slow"}))
        assert await asyncio.wait_for(client.recv(), 5) == "started"
        client.transport.abort()  # a TCP reset: no close frame, like a phone losing its network
        # The action would sleep 30 s: it is cancelled, and the leave handler runs at once, not after it.
        await wait_for_event(log, f"leave {channel_name}", timeout=5)
        assert events_in(log) == [f"join {channel_name}", "cancelled", f"leave {channel_name}"]
    finally:
        server.close()


async def test_sigterm_with_a_stuck_client_and_an_action_in_flight_exits_in_bounded_time(
    backend: dict[str, Any], channel_name: str, tmp_path: Path
) -> None:
    log = tmp_path / "events"
    server = faults_server(backend, log)
    try:
        url = f"{server.url.replace('http://', 'ws://')}/ws/{channel_name}"
        raw = unread_socket(server.url)
        # One client stops reading once it has joined; another runs a 30 s action; a third floods the room.
        stuck = await websockets.connect(url, sock=raw, max_queue=1, ping_interval=None, compression=None)
        busy = await websockets.connect(url, ping_interval=None)
        flooder = await websockets.connect(url, max_size=None, ping_interval=None, compression=None)
        for client in (stuck, busy, flooder):
            assert await asyncio.wait_for(client.recv(), 5) == "joined"
        await busy.send(json.dumps({"action": "slow"}))
        assert await asyncio.wait_for(busy.recv(), 5) == "started"
        padding = "x" * STUCK_FRAME_SIZE
        for number in range(STUCK_FRAMES):
            await flooder.send(json.dumps({"action": "shout", "text": f"{number}{padding}"}))
            await asyncio.wait_for(flooder.recv(), 10)
        started = time.monotonic()
        server.process.terminate()
        # uvicorn's defaults: no --timeout-graceful-shutdown. The stuck client must not hold the process.
        await asyncio.to_thread(server.process.wait, 30)
        assert time.monotonic() - started < 15, "shutdown took too long"
        events = events_in(log)
        assert events.count(f"leave {channel_name}") == 3, events
        assert "cancelled" in events and "finished" not in events
        for client in (stuck, busy, flooder):
            client.transport.abort()
    finally:
        server.close()


GARBAGE = [
    '{"action": "echo", "request_id": "\\ud800"}',  # an escaped lone surrogate: no character at all
    '{"action": "echo", "text": "\\udfff\\ud800"}',
    '{"action": "echo", "value": NaN}',
    '{"action": "echo", "value": -Infinity}',
    '{"action": "echo", "value": 1e309}',  # parses to infinity
    '{"action": "echo", "value": 123456789012345678901234567890}',
    "[" * 100_000 + "]" * 100_000,
    '{"action": "echo", "nested": ' + "[" * 500 + "]" * 500 + "}",
    '{"action": 5}',
    '{"action": "no such action"}',
    "\x00\x01 not json",
    '"a string"',
    "",
]


def strict_json(text: str) -> Any:
    """Parse ``text`` as standard JSON: NaN and Infinity, which Python's json accepts, are refused."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


async def test_garbage_frames_each_get_valid_json_and_the_connection_stays_open(
    backend: dict[str, Any], channel_name: str, tmp_path: Path
) -> None:
    server = faults_server(backend, tmp_path / "events")
    try:
        url = f"{server.url.replace('http://', 'ws://')}/ws/{channel_name}"
        async with websockets.connect(url, ping_interval=None, max_size=None) as client:
            assert await asyncio.wait_for(client.recv(), 5) == "joined"
            for garbage in GARBAGE:
                await client.send(garbage)
                answer = await asyncio.wait_for(client.recv(), 5)
                assert isinstance(answer, str)
                answer.encode()  # valid UTF-8: no lone surrogate got through
                decoded = strict_json(answer)
                assert isinstance(decoded, dict), (garbage[:40], answer)
                if garbage.endswith("1e309}"):
                    assert decoded == {"action": "echo", "value": None}  # infinity is sent as JSON's null
                elif "1234567890" in garbage:
                    assert decoded["value"] == 123456789012345678901234567890
                else:
                    assert decoded["status"] == "bad" and decoded["close"] is False, (garbage[:40], decoded)
            # Still open and served after all of it.
            await client.send(json.dumps({"action": "echo", "text": "still here"}))
            assert strict_json(await asyncio.wait_for(client.recv(), 5)) == {"action": "echo", "text": "still here"}
    finally:
        server.close()


def test_websocket_exception_in_an_http_route_answers_its_http_status_with_the_error_as_json(tmp_path: Path) -> None:
    server = UvicornProcess("tests.apps.faults_app:app", env={"FAULTS_LOG": str(tmp_path / "events")})
    try:
        server.wait_until_serving()
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{server.url}/deny", timeout=5)
        assert denied.value.code == 403
        with denied.value:
            body = json.load(denied.value)
        assert (body["errors"], body["code"], body["status"]) == ("Members only.", 1008, "bad")
        with pytest.raises(urllib.error.HTTPError) as busy:
            urllib.request.urlopen(f"{server.url}/busy", timeout=5)
        with busy.value:
            assert busy.value.code == 429
            assert busy.value.headers["Retry-After"] == "2"
        assert "Exception in ASGI application" not in server.output()
    finally:
        server.close()


async def test_huge_names_and_request_ids_are_refused_with_small_answers_and_small_logs(
    backend: dict[str, Any], channel_name: str, tmp_path: Path
) -> None:
    server = faults_server(backend, tmp_path / "events")
    try:
        base = server.url.replace("http://", "ws://")
        async with websockets.connect(f"{base}/ws/{channel_name}", ping_interval=None, max_size=None) as client:
            assert await asyncio.wait_for(client.recv(), 5) == "joined"
            for frame in (
                {"action": "x" * 8192},
                {"action": "echo", "request_id": "r" * (2 * 1024 * 1024)},
            ):
                await client.send(json.dumps(frame))
                answer = await asyncio.wait_for(client.recv(), 5)
                assert len(answer) < 512, answer[:200]
                error = json.loads(answer)
                assert (error["code"], error["close"], error["request_id"]) == (1007, False, None)
            await client.send(json.dumps({"action": "echo", "request_id": "r" * 128}))
            assert json.loads(await asyncio.wait_for(client.recv(), 5))["request_id"] == "r" * 128
        async with websockets.connect(f"{base}/ws/{'room' * 512}", ping_interval=None) as client:
            error = json.loads(await asyncio.wait_for(client.recv(), 5))
            assert error["errors"] == "A channel name must be at most 256 characters."
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert len(server.output()) < 4096, server.output()[:500]
    finally:
        server.close()


async def test_a_burst_of_refused_requests_answers_every_one_and_keeps_the_client(
    backend: dict[str, Any], channel_name: str, tmp_path: Path
) -> None:
    server = faults_server(backend, tmp_path / "events")
    try:
        url = f"{server.url.replace('http://', 'ws://')}/ws/{channel_name}"
        async with websockets.connect(url, ping_interval=None) as client:
            assert await asyncio.wait_for(client.recv(), 5) == "joined"
            # 1,000 requests pipelined to an action limited to 10 a minute, before reading a single answer.
            for number in range(1000):
                await client.send(json.dumps({"action": "limited", "request_id": number}))
            answers = [await asyncio.wait_for(client.recv(), 10) for _ in range(1000)]
            assert answers[:10] == ["ok"] * 10
            refusals = [json.loads(answer) for answer in answers[10:]]
            assert [refusal["request_id"] for refusal in refusals] == list(range(10, 1000))
            assert {(refusal["code"], refusal["close"]) for refusal in refusals} == {(1013, False)}
            await client.send(json.dumps({"action": "echo", "text": "still here"}))
            assert json.loads(await asyncio.wait_for(client.recv(), 5)) == {"action": "echo", "text": "still here"}
    finally:
        server.close()


async def test_an_unpaced_burst_of_large_broadcasts_reaches_every_reading_client(
    backend: dict[str, Any], channel_name: str, tmp_path: Path
) -> None:
    clients, frames, padding = 50, 3000, "x" * 8192
    server = faults_server(backend, tmp_path / "events")
    try:
        url = f"{server.url.replace('http://', 'ws://')}/ws/{channel_name}"
        readers = [await websockets.connect(url, max_size=None, ping_interval=None) for _ in range(clients)]
        publisher = await websockets.connect(url, max_size=None, ping_interval=None)
        for client in (*readers, publisher):
            assert await asyncio.wait_for(client.recv(), 5) == "joined"

        async def read_all(client: websockets.ClientConnection) -> list[int]:
            return [int((await asyncio.wait_for(client.recv(), 30)).split("x", 1)[0]) for _ in range(frames)]

        reading = [asyncio.ensure_future(read_all(client)) for client in (*readers, publisher)]
        for number in range(frames):  # as fast as the server takes them
            await publisher.send(json.dumps({"action": "shout", "text": f"{number}{padding}"}))
        received = await asyncio.wait_for(asyncio.gather(*reading), 120)
        # Every client, the publisher included, got every frame in order: nobody was cut as too slow.
        assert all(numbers == list(range(frames)) for numbers in received)
        for client in (*readers, publisher):
            await client.close()
    finally:
        server.close()


async def test_apps_with_their_own_namespace_and_rooms_of_other_classes_never_meet(
    redis_url: str, channel_name: str, tmp_path: Path
) -> None:
    namespaces = [f"{channel_name}-a", f"{channel_name}-b"]
    servers = [
        faults_server({"url": redis_url, "namespace": namespace}, tmp_path / namespace) for namespace in namespaces
    ]
    try:
        a, b = (server.url.replace("http://", "ws://") for server in servers)
        async with (
            websockets.connect(f"{a}/ws/lobby-{channel_name}", ping_interval=None) as in_a,
            websockets.connect(f"{b}/ws/lobby-{channel_name}", ping_interval=None) as in_b,
            websockets.connect(f"{a}/ws/{namespaces[1]}.direct", ping_interval=None) as spy,
            websockets.connect(f"{a}/relay/lobby-{channel_name}", ping_interval=None) as relay,
        ):
            for client in (in_a, in_b, spy):
                assert await asyncio.wait_for(client.recv(), 5) == "joined"
            await in_a.send(json.dumps({"action": "shout", "text": "for app a"}))
            assert await asyncio.wait_for(in_a.recv(), 5) == "for app a"
            # B's direct message reaches its own connection only, not a client of A in a room named like B's topic.
            await in_b.send(json.dumps({"action": "whisper", "text": "b's secret"}))
            assert await asyncio.wait_for(in_b.recv(), 5) == "b's secret"
            # A forged envelope from the spy's room reaches nobody of B.
            forged = {"connection": None, "user": None, "channel": None, "endpoint": None, "text": "forged"}
            await spy.send(json.dumps({"action": "shout", "text": json.dumps(forged)}))
            assert json.loads(await asyncio.wait_for(spy.recv(), 5)) == forged
            # A relay client in a room of the same name injects a fake error frame: the chat room never sees it.
            await relay.send('{"type":"response","status":"bad","errors":"forged"}')
            assert json.loads(await asyncio.wait_for(relay.recv(), 5))["errors"] == "forged"
            # Sentinels: each client's next frame is its own echo, so nothing from the others came before it.
            for client in (in_a, in_b, spy):
                await client.send(json.dumps({"action": "echo", "text": "sentinel"}))
                assert json.loads(await asyncio.wait_for(client.recv(), 5)) == {"action": "echo", "text": "sentinel"}
    finally:
        for server in servers:
            server.close()


async def test_drain_tells_every_client_when_to_reconnect_closes_with_1012_and_refuses_new_ones(
    backend: dict[str, Any], channel_name: str, tmp_path: Path
) -> None:
    log = tmp_path / "events"
    server = faults_server(backend, log)
    try:
        url = f"{server.url.replace('http://', 'ws://')}/ws/{channel_name}"
        clients = [await websockets.connect(url, ping_interval=None) for _ in range(3)]
        for client in clients:
            assert await asyncio.wait_for(client.recv(), 5) == "joined"
        request = urllib.request.Request(f"{server.url}/drain", method="POST")
        with await asyncio.to_thread(urllib.request.urlopen, request, timeout=5) as response:
            assert json.load(response) == 3
        delays = []
        for client in clients:
            notice = json.loads(await asyncio.wait_for(client.recv(), 5))
            assert (notice["type"], notice["reason"]) == ("drain", "Server restarting: reconnect.")
            delays.append(notice["reconnect_in"])
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert all(1.0 <= delay <= 5.0 for delay in delays)
        await wait_for_event(log, f"leave {channel_name}", timeout=5)
        # While draining, a new client is told to come back later rather than joining.
        async with websockets.connect(url, ping_interval=None) as late:
            refusal = json.loads(await asyncio.wait_for(late.recv(), 5))
            assert (refusal["code"], refusal["close"]) == (1012, True)
        deadline = time.monotonic() + 5
        while events_in(log).count(f"leave {channel_name}") < 3:
            assert time.monotonic() < deadline, events_in(log)
            await asyncio.sleep(0.02)
        assert events_in(log).count(f"join {channel_name}") == 3
    finally:
        server.close()


def rss_of(pid: int) -> int:
    """Return the resident memory of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


async def test_client_that_never_reads_cannot_make_the_server_hold_its_replies(
    backend: dict[str, Any], channel_name: str, tmp_path: Path
) -> None:
    server = faults_server(backend, tmp_path / "events")
    try:
        url = f"{server.url.replace('http://', 'ws://')}/ws/{channel_name}"
        before = rss_of(server.process.pid)
        sock = unread_socket(server.url)
        async with websockets.connect(url, sock=sock, max_queue=1, ping_interval=None, compression=None) as client:
            assert await asyncio.wait_for(client.recv(), 5) == "joined"
            # 512 KiB echoed back per frame, never read: 200 frames would be 100 MiB of replies to hold.
            frame = json.dumps({"action": "echo", "text": "x" * (512 * 1024)})
            sent = 0
            with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
                for _ in range(200):
                    await asyncio.wait_for(client.send(frame), 2)  # blocks once the server stops reading
                    sent += 1
            grown = rss_of(server.process.pid) - before
            # The server stopped reading its frames once 1 MiB of replies waited (backpressure): it holds a few
            # MiB of buffers at most, not what the client asked for.
            assert sent < 200, "the server never stopped reading the client's frames"
            assert grown < 48 * 1024 * 1024, f"the server grew by {grown / 2**20:.0f} MiB"
            client.transport.abort()
    finally:
        server.close()


async def test_hourly_limit_holds_exactly_for_more_keys_than_the_bucket_cache(
    backend: dict[str, Any], channel_name: str, tmp_path: Path
) -> None:
    env = {"FAULTS_URL": backend["url"], "FAULTS_NAMESPACE": backend["namespace"], "FAULTS_CACHED_BUCKETS": "10"}
    server = UvicornProcess("tests.apps.faults_app:app", env={**env, "FAULTS_LOG": str(tmp_path / "events")})
    try:
        server.wait_until_serving()
        base = f"{server.url.replace('http://', 'ws://')}/ws/{channel_name}"
        # 30 devices, each its own rate-limit key: three times as many as the server caches buckets for.
        for turn, device in enumerate([*range(30), 0]):
            async with websockets.connect(f"{base}?device={device}", ping_interval=None) as client:
                assert await asyncio.wait_for(client.recv(), 5) == "joined"
                for _ in range(6):
                    await client.send(json.dumps({"action": "hourly"}))
                answers = [await asyncio.wait_for(client.recv(), 5) for _ in range(6)]
                if turn == 30:  # device 0 again, after 29 others came and went: its hour is still spent
                    assert all(json.loads(answer)["code"] == 1013 for answer in answers), answers
                else:
                    assert answers[:5] == ["ok"] * 5, (device, answers)
                    assert json.loads(answers[5])["code"] == 1013
    finally:
        server.close()
