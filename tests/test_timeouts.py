"""Heartbeats and timeouts against a real uvicorn process: a silent client is pinged, one that never answers
is closed with 4408, and every connection ends with 1001 at its maximum lifetime; leave runs once each time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets

from fastapi_channels.timeouts import check_timeout
from tests.conftest import UvicornProcess


def serve_faults(tmp_path: Path, **env: str) -> UvicornProcess:
    """Start tests/apps/faults_app.py with ``env`` (FAULTS_HEARTBEAT, FAULTS_LIFETIME...)."""
    server = UvicornProcess("tests.apps.faults_app:app", env={"FAULTS_LOG": str(tmp_path / "events"), **env})
    server.wait_until_serving()
    return server


async def test_silent_client_is_pinged_and_one_that_answers_stays(tmp_path: Path) -> None:
    server = serve_faults(tmp_path, FAULTS_HEARTBEAT="0.3")
    try:
        url = f"{server.url.replace('http://', 'ws://')}/ws/lobby"
        async with websockets.connect(url, ping_interval=None) as client:
            assert await asyncio.wait_for(client.recv(), 5) == "joined"
            for _ in range(3):  # three rounds: each ping answered keeps the connection (idle timeout 0.6 s)
                assert json.loads(await asyncio.wait_for(client.recv(), 5)) == {"type": "ping"}
                await client.send(json.dumps({"action": "pong"}))  # accepted silently: no error frame
            await client.send(json.dumps({"action": "echo", "text": "still here"}))
            answer = json.loads(await asyncio.wait_for(client.recv(), 5))
            while answer == {"type": "ping"}:
                answer = json.loads(await asyncio.wait_for(client.recv(), 5))
            assert answer == {"action": "echo", "text": "still here"}
    finally:
        server.close()


async def test_client_that_never_answers_is_closed_with_4408_and_leaves_once(tmp_path: Path) -> None:
    server = serve_faults(tmp_path, FAULTS_HEARTBEAT="0.2")
    try:
        url = f"{server.url.replace('http://', 'ws://')}/ws/lobby"
        async with websockets.connect(url, ping_interval=None) as client:
            assert await asyncio.wait_for(client.recv(), 5) == "joined"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    assert json.loads(await asyncio.wait_for(client.recv(), 5)) == {"type": "ping"}
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
        deadline = asyncio.get_running_loop().time() + 5
        while (tmp_path / "events").read_text().count("leave lobby") < 1:
            assert asyncio.get_running_loop().time() < deadline, "leave did not run"
            await asyncio.sleep(0.02)
        assert (tmp_path / "events").read_text().splitlines() == ["join lobby", "leave lobby"]
    finally:
        server.close()


async def test_connection_at_its_maximum_lifetime_is_closed_with_1001(tmp_path: Path) -> None:
    server = serve_faults(tmp_path, FAULTS_LIFETIME="0.3")
    try:
        url = f"{server.url.replace('http://', 'ws://')}/ws/lobby"
        async with websockets.connect(url, ping_interval=None) as client:
            assert await asyncio.wait_for(client.recv(), 5) == "joined"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 5)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                1001,
                "Connection lifetime reached: reconnect.",
            )
    finally:
        server.close()


def test_check_timeout_accepts_positive_seconds_or_none_only() -> None:
    assert check_timeout("idle_timeout", None) is None
    assert check_timeout("idle_timeout", 2) == 2.0
    for bad in (0, -1, True, "5"):
        with pytest.raises(ValueError, match="idle_timeout must be a positive number of seconds or None"):
            check_timeout("idle_timeout", bad)


async def test_relay_clients_get_no_json_ping_but_are_closed_when_idle(tmp_path: Path) -> None:
    server = serve_faults(tmp_path, FAULTS_HEARTBEAT="0.2")
    try:
        url = f"{server.url.replace('http://', 'ws://')}/relay/lobby"
        async with (
            websockets.connect(url, ping_interval=None) as relay,
            websockets.connect(url, ping_interval=None) as peer,
        ):
            # Raw text in, raw text out: a ping would be text the relay's clients never asked for.
            await relay.send("hello")
            assert await asyncio.wait_for(peer.recv(), 5) == "hello"
            assert await asyncio.wait_for(relay.recv(), 5) == "hello"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(relay.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
    finally:
        server.close()
