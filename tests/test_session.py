"""A connection's life: joining, counts and limits, reply order, crashes, slow clients and sending after it ends."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.request
from typing import Any

import pytest
import websockets
from fastapi import WebSocket
from fastapi.testclient import TestClient

from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.testing import receive_close, receive_json, receive_text
from tests.conftest import run_uvicorn
from tests.helpers import greet_on_join, joined, serve, unread_socket

# -- handshake and reply ordering ----------------------------------------------------------------------


def test_connect_handshake_completed_client_receives_broadcast_sent_right_after(
    backend: dict[str, Any], channel_name: str
) -> None:
    # No join greeting: the handshake alone must mean the client is already in its channel.
    room = BaseChannel(channel=channel_name)
    app = serve(room, **backend)

    @app.post("/announce")
    async def announce() -> None:
        await room.broadcast_to_channel(channel_name, "announcement")

    with TestClient(app) as client:
        for _ in range(20):
            with client.websocket_connect("/ws") as ws:
                assert client.post("/announce").status_code == 200
                assert receive_text(ws) == "announcement"


def test_action_reply_then_close_client_receives_reply_before_close(backend: dict[str, Any]) -> None:
    class Room(Channel):
        @action("bye")
        async def bye(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"reply": "goodbye"})
            await websocket.close()

    app = serve(Room(), **backend)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "bye"})
        assert receive_json(ws) == {"reply": "goodbye"}
        assert receive_close(ws)[0] == 1000


# -- connection limits and counts ----------------------------------------------------------------------------


def counting_room(max_connection: int | None = None) -> Channel:
    """A room whose "count" action answers its channel's connection count and that announces leaves."""

    class Room(Channel):
        @action()
        async def count(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"count": await self.get_connection_count(channel)})

    room = Room(max_connection=max_connection)
    greet_on_join(room)
    room.add_event_handler("leave", lambda websocket, channel: room.broadcast_to_channel(channel, "left"))
    return room


def test_max_connection_extra_client_gets_error_frame_and_1013_and_is_not_counted(
    backend: dict[str, Any], channel_name: str
) -> None:
    app = serve(counting_room(max_connection=2), **backend)
    path = f"/ws/{channel_name}"
    with TestClient(app) as client, joined(client, path) as first:
        with joined(client, path) as second:
            with client.websocket_connect(path) as refused:
                frame = receive_json(refused)
                assert frame["type"] == "response"
                assert frame["status"] == "bad"
                assert frame["code"] == 1013
                assert frame["close"] is True
                assert "full" in frame["errors"]
                assert receive_close(refused)[0] == 1013
            first.send_json({"action": "count"})
            assert receive_json(first) == {"count": 2}
            # Closed from inside the block: leaving it would cancel the server side before it says "left".
            second.close()
            assert receive_text(first) == "left"
        # A place is free again.
        with joined(client, path) as again:
            again.send_json({"action": "count"})
            assert receive_json(again) == {"count": 2}


def test_get_connection_count_counts_live_connections_and_drops_on_disconnect(
    backend: dict[str, Any], channel_name: str
) -> None:
    app = serve(counting_room(), **backend)
    path = f"/ws/{channel_name}"
    with TestClient(app) as client, joined(client, path) as first:
        first.send_json({"action": "count"})
        assert receive_json(first) == {"count": 1}
        with joined(client, path) as second, joined(client, f"/ws/{channel_name}-elsewhere"):
            second.send_json({"action": "count"})
            assert receive_json(second) == {"count": 2}
            second.close()
            assert receive_text(first) == "left"
        first.send_json({"action": "count"})
        assert receive_json(first) == {"count": 1}


# -- concurrency ---------------------------------------------------------------------------------------------


def test_messages_of_one_connection_handled_in_order() -> None:
    class Room(Channel):
        @action()
        async def work(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            # Simulated work of varying length: a later, quicker message must still be answered later.
            await asyncio.sleep(data["seconds"])
            await self.broadcast_to_personal(websocket, {"done": data["request_id"]})

    app = serve(Room())
    durations = [0.3, 0.0, 0.2, 0.0, 0.1]
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        for request_id, seconds in enumerate(durations):
            ws.send_json({"action": "work", "request_id": request_id, "seconds": seconds})
        assert [receive_json(ws)["done"] for _ in durations] == list(range(len(durations)))


def test_crash_in_one_connection_action_leaves_others_working(
    backend: dict[str, Any], channel_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Room(Channel):
        @action()
        async def boom(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            raise RuntimeError("internal detail the client must not see")

        @action()
        async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(channel, {"said": data["text"]})

    room = Room()
    greet_on_join(room)
    app = serve(room, **backend)
    path = f"/ws/{channel_name}"
    with TestClient(app) as client, joined(client, path) as healthy:
        with joined(client, path) as crashing:
            crashing.send_json({"action": "boom", "request_id": "r-1"})
            text = receive_text(crashing)
            assert "internal detail" not in text
            assert json.loads(text) == {
                "type": "response",
                "status": "bad",
                "action": "boom",
                "request_id": "r-1",
                "errors": "Internal server error.",
                "code": 1011,
                "close": True,
            }
            assert receive_close(crashing)[0] == 1011
        healthy.send_json({"action": "say", "text": "still here"})
        assert receive_json(healthy) == {"said": "still here"}
        with joined(client, path) as newcomer:
            newcomer.send_json({"action": "say", "text": "me too"})
            assert receive_json(newcomer) == {"said": "me too"}
            assert receive_json(healthy) == {"said": "me too"}
    crashes = [record for record in caplog.records if record.exc_info and record.exc_info[0] is RuntimeError]
    assert len(crashes) == 1
    assert crashes[0].levelno == logging.ERROR


@pytest.mark.parametrize("ending", ["client-close", "server-close", "crash"])
def test_connection_end_leaves_no_task_behind(backend: dict[str, Any], channel_name: str, ending: str) -> None:
    class Room(Channel):
        @action()
        async def hang_up(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await websocket.close()

        @action()
        async def crash(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            raise RuntimeError("crash")

    room = Room()
    greet_on_join(room)
    app = serve(room, **backend)
    ended = threading.Event()

    @app.websocket("/watched")
    async def watched(websocket: WebSocket) -> None:
        await room.connect(websocket, channel=channel_name)
        ended.set()

    @app.get("/tasks")
    async def tasks() -> list[str]:
        # Only the channel's subscription and the connections' senders; the app-wide tasks (Redis reader,
        # presence renewal, direct-message listener) live as long as the app.
        names = (task.get_name() for task in asyncio.all_tasks() if not task.done())
        return sorted(
            name
            for name in names
            if (name.startswith("fastapi-channels:") and name.endswith(f":{channel_name}"))
            or name.startswith("fastapi-channels-send")
        )

    with TestClient(app) as client:
        with joined(client, "/watched") as ws:
            assert any(channel_name in name for name in client.get("/tasks").json())
            if ending == "client-close":
                ws.close()
            elif ending == "server-close":
                ws.send_json({"action": "hang_up"})
                assert receive_close(ws)[0] == 1000
            else:
                ws.send_json({"action": "crash"})
                assert receive_json(ws)["code"] == 1011
                assert receive_close(ws)[0] == 1011
            assert ended.wait(2), "the connection lingered after it ended"
        assert client.get("/tasks").json() == []


# -- the slow-consumer policy ------------------------------------------------------------------------------------

SLOW_CONSUMER_FRAMES = 128
SLOW_CONSUMER_FRAME_SIZE = 128 * 1024  # 16 MiB in all: far more than the socket buffers hold


async def test_slow_consumer_not_reading_is_closed_with_1013_while_reader_keeps_receiving(
    backend: dict[str, Any], channel_name: str
) -> None:
    env = {"SLOW_CONSUMER_BROADCAST_URL": backend["url"], "SLOW_CONSUMER_SEND_QUEUE_SIZE": "4"}
    with run_uvicorn("tests.apps.slow_consumer_app:app", env=env) as base_url:
        url = f"{base_url.replace('http://', 'ws://')}/ws/{channel_name}"
        # A small receive buffer, a client that stops taking frames off it (max_queue=1) once it stops reading,
        # and no compression (the padding would shrink to nothing), so the server soon has to hold the frames.
        raw = unread_socket(base_url)
        async with (
            websockets.connect(url, sock=raw, max_queue=1, ping_interval=None, compression=None) as slow,
            websockets.connect(url, max_size=None, ping_interval=None, compression=None) as reader,
        ):
            assert await asyncio.wait_for(slow.recv(), 5) == "joined"
            assert await asyncio.wait_for(reader.recv(), 5) == "joined"
            padding = "x" * SLOW_CONSUMER_FRAME_SIZE
            for number in range(SLOW_CONSUMER_FRAMES):
                await reader.send(f"{number:05d}{padding}")
                relayed = await asyncio.wait_for(reader.recv(), 10)
                assert relayed[:5] == f"{number:05d}"
            # The server let go of the slow client while it still was not reading: its seat is free.
            await wait_for_count(base_url, channel_name, 1)
            # The slow client reads again: a prefix of the frames, then the end: close 1013, or an abort when it
            # did not take even the close frame within CLOSE_TIMEOUT.
            numbers: list[int] = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    frame = await asyncio.wait_for(slow.recv(), 20)
                    numbers.append(int(frame[:5]))
            assert closed.value.rcvd is None or closed.value.rcvd.code == 1013
            assert numbers == list(range(len(numbers)))
            assert len(numbers) < SLOW_CONSUMER_FRAMES
            # The reader is still connected and served.
            await reader.send("still served")
            assert await asyncio.wait_for(reader.recv(), 5) == "still served"


async def wait_for_count(base_url: str, channel: str, expected: int, timeout: float = 15.0) -> None:
    """Poll the server's count of ``channel`` until it is ``expected``, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout

    def read_count() -> int:
        with urllib.request.urlopen(f"{base_url}/count/{channel}", timeout=5) as response:
            return int(json.load(response))

    while (count := await asyncio.to_thread(read_count)) != expected:
        assert time.monotonic() < deadline, f"{channel} still counts {count}, not {expected}"
        await asyncio.sleep(0.05)


async def test_stuck_client_that_never_reads_is_cut_after_write_timeout_and_its_seat_freed(
    backend: dict[str, Any], channel_name: str
) -> None:
    env = {
        "SLOW_CONSUMER_BROADCAST_URL": backend["url"],
        "SLOW_CONSUMER_SEND_QUEUE_SIZE": "none",
        # More than the burst below, so only the write timeout can end the stuck client.
        "SLOW_CONSUMER_SEND_QUEUE_BYTES": str(64 * 1024 * 1024),
        "SLOW_CONSUMER_WRITE_TIMEOUT": "1",
    }
    with run_uvicorn("tests.apps.slow_consumer_app:app", env=env) as base_url:
        url = f"{base_url.replace('http://', 'ws://')}/ws/{channel_name}"
        raw = unread_socket(base_url)
        async with (
            websockets.connect(url, sock=raw, max_queue=1, ping_interval=None, compression=None) as stuck,
            websockets.connect(url, max_size=None, ping_interval=None, compression=None) as reader,
        ):
            assert await asyncio.wait_for(stuck.recv(), 5) == "joined"
            assert await asyncio.wait_for(reader.recv(), 5) == "joined"
            # More than the socket buffers hold, so the server's writes to the stuck client soon have to wait.
            padding = "x" * SLOW_CONSUMER_FRAME_SIZE
            for number in range(SLOW_CONSUMER_FRAMES):
                await reader.send(f"{number:05d}{padding}")
                assert (await asyncio.wait_for(reader.recv(), 10))[:5] == f"{number:05d}"
            # The stuck client never reads and never sends: the server cuts it on its own, leave runs.
            await wait_for_count(base_url, channel_name, 1)
            # It never took its close frame either, so its TCP connection was aborted: it ends without one.
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(stuck.recv(), 20)
            assert closed.value.rcvd is None
            await reader.send("still served")
            assert await asyncio.wait_for(reader.recv(), 5) == "still served"


# -- sending to a closed socket ----------------------------------------------------------------------------


def test_broadcast_to_personal_in_leave_handler_after_client_left_is_silent(
    backend: dict[str, Any], channel_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes: list[BaseException | None] = []
    finished = threading.Event()
    room = BaseChannel()
    greet_on_join(room)

    async def say_goodbye(websocket: WebSocket, channel: str) -> None:
        try:
            await room.broadcast_to_personal(websocket, "goodbye")
            await room.broadcast_to_personal(websocket, {"goodbye": True})
        except BaseException as exc:
            outcomes.append(exc)
            raise
        else:
            outcomes.append(None)
        finally:
            finished.set()

    room.add_event_handler("leave", say_goodbye)
    app = serve(room, **backend)
    with TestClient(app) as client, joined(client, f"/ws/{channel_name}") as ws:
        ws.close()
        assert finished.wait(5), "the leave handler did not run"
    assert outcomes == [None]
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []


def test_broadcast_to_personal_from_http_after_socket_closed_is_silent(
    backend: dict[str, Any], channel_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    room = BaseChannel()
    greet_on_join(room)
    app = serve(room, **backend)
    sockets: list[WebSocket] = []
    ended = threading.Event()

    @app.websocket("/remembered")
    async def remembered(websocket: WebSocket) -> None:
        sockets.append(websocket)
        await room.connect(websocket, channel=channel_name)
        ended.set()

    @app.post("/poke")
    async def poke() -> dict[str, bool]:
        await room.broadcast_to_personal(sockets[0], "too late")
        await room.broadcast_to_personal(sockets[0], {"too": "late"})
        return {"sent": True}

    with TestClient(app) as client:
        with joined(client, "/remembered") as ws:
            ws.close()
            assert ended.wait(5), "the connection did not end"
        response = client.post("/poke")
        assert response.status_code == 200
        assert response.json() == {"sent": True}
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
