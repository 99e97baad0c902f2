"""Faults a production server meets, each against a real uvicorn process and real sockets: a client that
vanishes mid-action, a shutdown with a client that does not read and an action in flight."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.conftest import UvicornProcess

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
        host, port = server.url.removeprefix("http://").split(":")
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.connect((host, int(port)))
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
