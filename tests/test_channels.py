"""Channels: names, relaying, sending and encoding, connection limits, ordering, isolation and slow clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pytest
import websockets
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.authentication import SimpleUser, UnauthenticatedUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.testclient import WebSocketTestSession

from fastapi_channels import add_channel, limiter, send_to_user
from fastapi_channels.api import STATE_KEY, get_channel_config
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.testing import receive_close, receive_json, receive_text
from tests.conftest import RedisServer, run_uvicorn
from tests.helpers import HeaderAuthentication

JOINED = "joined"


def greet_on_join(room: BaseChannel) -> None:
    """Send JOINED to each client once it is in its channel, so a test knows broadcasts reach it from then on."""
    room.add_event_handler("join", lambda websocket, channel: room.broadcast_to_personal(websocket, JOINED))


def serve(room: BaseChannel, **add_channel_options: Any) -> FastAPI:
    """An app serving ``room`` at /ws (its own channel name) and /ws/{name} (the channel ``name``)."""
    app = FastAPI()
    add_channel(app, **add_channel_options)

    @app.websocket("/ws")
    async def default_channel(websocket: WebSocket) -> None:
        await room.connect(websocket)

    @app.websocket("/ws/{name}")
    async def named_channel(websocket: WebSocket, name: str) -> None:
        await room.connect(websocket, channel=name)

    return app


@contextlib.contextmanager
def joined(client: TestClient, path: str) -> Iterator[WebSocketTestSession]:
    """Connect to ``path`` and wait until the server says the client is in its channel."""
    with client.websocket_connect(path) as ws:
        assert receive_text(ws) == JOINED
        yield ws


# -- channel names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("class_channel", "init_channel", "connect_channel", "expected"),
    [
        (None, None, None, "default_channel"),
        ("from-class", None, None, "from-class"),
        ("from-class", "from-init", None, "from-init"),
        ("from-class", "from-init", "from-connect", "from-connect"),
        (None, None, "from-connect", "from-connect"),
    ],
    ids=["default", "class-attribute", "constructor-over-class", "connect-over-all", "connect-over-default"],
)
def test_channel_name_most_specific_setting_wins(
    class_channel: str | None, init_channel: str | None, connect_channel: str | None, expected: str
) -> None:
    class Room(Channel):
        if class_channel is not None:
            channel = class_channel

        @action()
        async def where(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, channel)

    room = Room(channel=init_channel)
    app = serve(room)
    path = "/ws" if connect_channel is None else f"/ws/{connect_channel}"
    with TestClient(app) as client, client.websocket_connect(path) as ws:
        ws.send_json({"action": "where"})
        assert receive_text(ws) == expected


# -- relaying and broadcasting ---------------------------------------------------------------------------


def test_base_channel_text_frame_relayed_to_every_member_of_its_channel_only(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = BaseChannel()
    greet_on_join(room)
    app = serve(room, **backend)
    with (
        TestClient(app) as client,
        joined(client, f"/ws/{channel_name}-a") as first,
        joined(client, f"/ws/{channel_name}-a") as second,
        joined(client, f"/ws/{channel_name}-b") as other,
    ):
        first.send_text("hello, not even JSON")
        assert receive_text(first) == "hello, not even JSON"
        assert receive_text(second) == "hello, not even JSON"
        second.send_text('{"action": "anything"}')
        assert receive_text(first) == '{"action": "anything"}'
        assert receive_text(second) == '{"action": "anything"}'
        # Had the other channel heard the relays, they would arrive before its own.
        other.send_text("own")
        assert receive_text(other) == "own"


def test_broadcast_to_channel_reaches_every_connection_of_that_channel_only(
    backend: dict[str, Any], channel_name: str
) -> None:
    class Room(Channel):
        @action()
        async def shout(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(data["to"], {"shout": data["text"]})

    room = Room()
    greet_on_join(room)
    app = serve(room, **backend)
    red, blue = f"{channel_name}-red", f"{channel_name}-blue"
    with (
        TestClient(app) as client,
        joined(client, f"/ws/{red}") as red_1,
        joined(client, f"/ws/{red}") as red_2,
        joined(client, f"/ws/{blue}") as blue_1,
    ):
        blue_1.send_json({"action": "shout", "to": red, "text": "to red"})
        assert receive_json(red_1) == {"shout": "to red"}
        assert receive_json(red_2) == {"shout": "to red"}
        red_1.send_json({"action": "shout", "to": blue, "text": "to blue"})
        assert receive_json(blue_1) == {"shout": "to blue"}
        red_2.send_json({"action": "shout", "to": red, "text": "again"})
        # The red clients' next frame is the second red broadcast: the blue one never reached them.
        assert receive_json(red_1) == {"shout": "again"}
        assert receive_json(red_2) == {"shout": "again"}


def test_broadcast_to_personal_reaches_only_the_given_socket(backend: dict[str, Any], channel_name: str) -> None:
    class Room(Channel):
        @action()
        async def whisper(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"whisper": data["text"]})

        @action()
        async def shout(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(channel, {"shout": data["text"]})

    room = Room()
    greet_on_join(room)
    app = serve(room, **backend)
    with (
        TestClient(app) as client,
        joined(client, f"/ws/{channel_name}") as asker,
        joined(client, f"/ws/{channel_name}") as bystander,
    ):
        asker.send_json({"action": "whisper", "text": "secret"})
        assert receive_json(asker) == {"whisper": "secret"}
        asker.send_json({"action": "shout", "text": "public"})
        assert receive_json(asker) == {"shout": "public"}
        assert receive_json(bystander) == {"shout": "public"}


# -- encoding --------------------------------------------------------------------------------------------


class WrappingRoom(Channel):
    """Wraps every encoded message in {"wrapped": ...}: wrapped twice would mean encoded twice."""

    @staticmethod
    async def encode_json(data: Any) -> str:
        return json.dumps({"wrapped": data})

    @action()
    async def send(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        message: Any = data["payload"]
        if data["form"] == "encoded":
            message = await self.encode(message)
        elif data["form"] == "unawaited-encode":
            # The README passes self.encode(data) without awaiting it: the coroutine's text goes out as it is.
            message = self.encode(message)
        if data["to"] == "channel":
            await self.broadcast_to_channel(channel, message)
        else:
            await self.broadcast_to_personal(websocket, message)


@pytest.mark.parametrize("to", ["channel", "personal"])
@pytest.mark.parametrize(
    ("form", "payload", "expected"),
    [
        ("as-is", "plain text, sent as it is", "plain text, sent as it is"),
        ("as-is", '{"already": "json"}', '{"already": "json"}'),
        ("as-is", {"n": 1}, '{"wrapped": {"n": 1}}'),
        ("as-is", [1, "two"], '{"wrapped": [1, "two"]}'),
        ("encoded", {"n": 1}, '{"wrapped": {"n": 1}}'),
        ("unawaited-encode", {"n": 1}, '{"wrapped": {"n": 1}}'),
    ],
    ids=["str", "json-str", "dict", "list", "encode-result", "encode-coroutine"],
)
def test_send_str_goes_as_is_and_anything_else_is_encoded_exactly_once(
    backend: dict[str, Any], channel_name: str, to: str, form: str, payload: Any, expected: str
) -> None:
    room = WrappingRoom()
    greet_on_join(room)
    app = serve(room, **backend)
    with TestClient(app) as client, joined(client, f"/ws/{channel_name}") as ws:
        ws.send_json({"action": "send", "to": to, "form": form, "payload": payload})
        assert receive_text(ws) == expected


def test_broadcast_to_many_recipients_encodes_once(backend: dict[str, Any], channel_name: str) -> None:
    encoded: list[Any] = []

    class Room(Channel):
        @staticmethod
        async def encode_json(data: Any) -> str:
            encoded.append(data)
            return json.dumps(data)

        @action()
        async def shout(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(channel, {"shout": data["text"]})

    room = Room()
    greet_on_join(room)
    app = serve(room, **backend)
    with (
        TestClient(app) as client,
        joined(client, f"/ws/{channel_name}") as first,
        joined(client, f"/ws/{channel_name}") as second,
        joined(client, f"/ws/{channel_name}") as third,
    ):
        first.send_json({"action": "shout", "text": "hi"})
        for ws in (first, second, third):
            assert receive_json(ws) == {"shout": "hi"}
    assert encoded == [{"shout": "hi"}]


def test_sync_encode_json_shapes_outgoing_messages(backend: dict[str, Any], channel_name: str) -> None:
    class Room(Channel):
        @staticmethod
        def encode_json(data: Any) -> str:
            return "sync:" + json.dumps(data, sort_keys=True)

        @action()
        async def shout(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(channel, {"b": 2, "a": 1})
            await self.broadcast_to_personal(websocket, {"personal": True})

    room = Room()
    greet_on_join(room)
    app = serve(room, **backend)
    with TestClient(app) as client, joined(client, f"/ws/{channel_name}") as ws:
        ws.send_json({"action": "shout"})
        received = {receive_text(ws), receive_text(ws)}
        assert received == {'sync:{"a": 1, "b": 2}', 'sync:{"personal": true}'}


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
            if name == f"fastapi-channels:{channel_name}" or name.startswith("fastapi-channels-send")
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
        host, port = base_url.removeprefix("http://").split(":")
        # A small receive buffer, a client that stops taking frames off it (max_queue=1) once it stops reading,
        # and no compression (the padding would shrink to nothing), so the server soon has to hold the frames.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.connect((host, int(port)))
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
            # The slow client reads again: a prefix of the frames, then the server's close.
            numbers: list[int] = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    frame = await asyncio.wait_for(slow.recv(), 20)
                    numbers.append(int(frame[:5]))
            assert closed.value.rcvd is not None, "the server dropped the connection without a close frame"
            assert closed.value.rcvd.code == 1013
            assert numbers == list(range(len(numbers)))
            assert len(numbers) < SLOW_CONSUMER_FRAMES
            # The reader is still connected and served.
            await reader.send("still served")
            assert await asyncio.wait_for(reader.recv(), 5) == "still served"


# -- misuse ----------------------------------------------------------------------------------------------------


def test_channel_without_add_channel_fails_with_message_naming_add_channel() -> None:
    app = FastAPI()
    room = BaseChannel()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    with TestClient(app) as client, pytest.raises(RuntimeError, match=r"add_channel\(app\)"):
        with client.websocket_connect("/ws"):
            pass


def test_channel_with_lifespan_not_started_fails_with_message_saying_how_to_start_it() -> None:
    room = BaseChannel()
    app = serve(room)
    client = TestClient(app)  # not entered: the app lifespan never runs
    with pytest.raises(RuntimeError, match=r"with TestClient\(app\) as client"):
        with client.websocket_connect("/ws"):
            pass


async def test_broadcast_without_running_app_fails_with_message_naming_add_channel() -> None:
    room = BaseChannel()
    with pytest.raises(RuntimeError, match=r"add_channel\(app\)"):
        await room.broadcast_to_channel("anywhere", "hello")


def test_get_channel_config_without_running_app_says_how_to_fix_it() -> None:
    with pytest.raises(RuntimeError) as info:
        get_channel_config()
    message = str(info.value)
    assert "add_channel(app)" in message
    assert "with TestClient(app) as client" in message


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


# -- addressing one connection or one user, and who is online ------------------------------------------------


def unique_namespace() -> str:
    """A namespace of the test's own: messages to a user go to every app sharing the namespace on one Redis."""
    return f"test-{uuid.uuid4().hex}"


def direct_room() -> Channel:
    """A room whose actions say who the caller is, send to one connection or user, list members and ping."""

    class Room(Channel):
        @action()
        async def whoami(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"id": self.get_connection_id(websocket)})

        @action()
        async def tell(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.send_to_connection(data["to"], {"told": data["text"]})

        @action()
        async def tell_user(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.send_to_user(data["user"], {"told": data["text"]}, channel=data.get("channel"))

        @action()
        async def members(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            members = await self.get_members(channel)
            count = await self.get_connection_count(channel)
            await self.broadcast_to_personal(websocket, {"count": count, "members": [asdict(m) for m in members]})

        @action()
        async def ping(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"pong": True})

    room = Room()
    greet_on_join(room)
    return room


def serve_authenticated(room: BaseChannel, **add_channel_options: Any) -> FastAPI:
    """``serve`` behind Starlette's authentication: the ``x-user`` header names the user."""
    app = serve(room, **add_channel_options)
    app.add_middleware(AuthenticationMiddleware, backend=HeaderAuthentication())
    return app


@contextlib.contextmanager
def joined_as(client: TestClient, path: str, user: str | None) -> Iterator[WebSocketTestSession]:
    """Connect to ``path`` as ``user`` (anonymous if None) and wait until the client is in its channel."""
    with client.websocket_connect(path, headers={"x-user": user} if user else {}) as ws:
        assert receive_text(ws) == JOINED
        yield ws


def connection_id_of(ws: WebSocketTestSession) -> str:
    ws.send_json({"action": "whoami"})
    answer = receive_json(ws)
    assert isinstance(answer.get("id"), str) and answer["id"], answer
    return str(answer["id"])


def assert_nothing_else_received(*sockets: WebSocketTestSession) -> None:
    """Each socket's next frame is the answer to its ping: a message that had leaked to it would come first.

    Called once the addressee has its message: by then the server has queued the message for every socket it
    went to, so anything leaked is queued before the pong.
    """
    for ws in sockets:
        ws.send_json({"action": "ping"})
        assert receive_json(ws) == {"pong": True}


def test_send_to_connection_reaches_only_that_connection(backend: dict[str, Any], channel_name: str) -> None:
    app = serve(direct_room(), **backend)
    room, other_room = f"/ws/{channel_name}", f"/ws/{channel_name}-other"
    with (
        TestClient(app) as client,
        joined(client, room) as sender,
        joined(client, room) as target,
        joined(client, room) as bystander,
        joined(client, other_room) as elsewhere,
    ):
        ids = [connection_id_of(ws) for ws in (sender, target, bystander, elsewhere)]
        assert len(set(ids)) == 4
        sender.send_json({"action": "tell", "to": ids[1], "text": "psst"})
        assert receive_json(target) == {"told": "psst"}
        assert_nothing_else_received(sender, bystander, elsewhere)
        # Ids are unique across channels: a connection of another channel is reached too.
        target.send_json({"action": "tell", "to": ids[3], "text": "across"})
        assert receive_json(elsewhere) == {"told": "across"}
        assert_nothing_else_received(sender, target, bystander)


def test_send_to_connection_unknown_id_is_a_silent_no_op(backend: dict[str, Any], channel_name: str) -> None:
    app = serve(direct_room(), **backend)
    path = f"/ws/{channel_name}"
    with TestClient(app) as client, joined(client, path) as sender, joined(client, path) as other:
        sender.send_json({"action": "tell", "to": "no-such-connection", "text": "lost"})
        # No error for the sender; the next direct message is the first anyone receives.
        sender.send_json({"action": "tell", "to": connection_id_of(other), "text": "found"})
        assert receive_json(other) == {"told": "found"}
        assert_nothing_else_received(sender, other)


def test_send_to_user_reaches_every_connection_of_the_user_and_channel_restricts_it(
    backend: dict[str, Any], channel_name: str
) -> None:
    app = serve_authenticated(direct_room(), **backend)
    lobby, game = f"{channel_name}-lobby", f"{channel_name}-game"
    with (
        TestClient(app) as client,
        joined_as(client, f"/ws/{lobby}", "alice") as alice_lobby,
        joined_as(client, f"/ws/{lobby}", "alice") as alice_phone,
        joined_as(client, f"/ws/{game}", "alice") as alice_game,
        joined_as(client, f"/ws/{lobby}", "bob") as bob,
        joined_as(client, f"/ws/{lobby}", None) as anonymous,
    ):
        bob.send_json({"action": "tell_user", "user": "alice", "text": "hi alice"})
        for ws in (alice_lobby, alice_phone, alice_game):
            assert receive_json(ws) == {"told": "hi alice"}
        assert_nothing_else_received(bob, anonymous)
        bob.send_json({"action": "tell_user", "user": "alice", "text": "see you in the game", "channel": game})
        assert receive_json(alice_game) == {"told": "see you in the game"}
        assert_nothing_else_received(alice_lobby, alice_phone, bob, anonymous)
        # A user with no connection: nobody receives anything, and the sender gets no error.
        alice_game.send_json({"action": "tell_user", "user": "carol", "text": "nobody home"})
        alice_game.send_json({"action": "tell_user", "user": "bob", "text": "hi bob"})
        assert receive_json(bob) == {"told": "hi bob"}
        assert_nothing_else_received(alice_lobby, alice_phone, alice_game, bob, anonymous)


def test_send_to_user_and_connection_from_http_endpoint_with_channel_bound_to_app(
    backend: dict[str, Any], channel_name: str
) -> None:
    app = serve_authenticated(direct_room(), **backend)
    notifier = BaseChannel(app=app)

    @app.post("/notify/user/{user}")
    async def notify_user(user: str, text: str, channel: str | None = None) -> None:
        # App-wide: notifier serves nobody, so its own send_to_user would reach no one.
        await send_to_user(user, {"notified": text}, channel=channel, app=app)

    @app.post("/notify/connection/{connection_id}")
    async def notify_connection(connection_id: str, text: str) -> None:
        await notifier.send_to_connection(connection_id, {"notified": text})

    @app.get("/members/{channel}")
    async def members(channel: str) -> dict[str, Any]:
        found = await notifier.get_members(channel)
        return {"count": await notifier.get_connection_count(channel), "users": [m.user for m in found]}

    lobby, game = f"{channel_name}-lobby", f"{channel_name}-game"
    with (
        TestClient(app) as client,
        joined_as(client, f"/ws/{lobby}", "alice") as alice_lobby,
        joined_as(client, f"/ws/{game}", "alice") as alice_game,
        joined_as(client, f"/ws/{lobby}", "bob") as bob,
    ):
        assert client.get(f"/members/{lobby}").json() == {"count": 2, "users": ["alice", "bob"]}
        assert client.post("/notify/user/alice", params={"text": "from http"}).status_code == 200
        assert receive_json(alice_lobby) == {"notified": "from http"}
        assert receive_json(alice_game) == {"notified": "from http"}
        assert_nothing_else_received(bob)
        assert client.post("/notify/user/alice", params={"text": "game only", "channel": game}).status_code == 200
        assert receive_json(alice_game) == {"notified": "game only"}
        assert_nothing_else_received(alice_lobby, bob)
        assert client.post(f"/notify/connection/{connection_id_of(bob)}", params={"text": "bob"}).status_code == 200
        assert receive_json(bob) == {"notified": "bob"}
        assert_nothing_else_received(alice_lobby, alice_game)


def test_get_members_and_connection_id_from_an_action_agree_with_the_count(
    backend: dict[str, Any], channel_name: str
) -> None:
    app = serve_authenticated(direct_room(), **backend)
    path = f"/ws/{channel_name}"
    with (
        TestClient(app) as client,
        joined_as(client, path, "alice") as alice,
        joined_as(client, f"/ws/{channel_name}-other", "carol"),
    ):
        node = get_channel_config_of(app).presence.node
        with joined_as(client, path, "bob") as bob, joined_as(client, path, None) as anonymous:
            ids = [connection_id_of(ws) for ws in (alice, bob, anonymous)]
            anonymous.send_json({"action": "members"})
            listing = receive_json(anonymous)
            assert listing["count"] == 3
            # Oldest first: the order the clients joined in.
            assert [(m["connection_id"], m["user"], m["node"]) for m in listing["members"]] == [
                (ids[0], "alice", node),
                (ids[1], "bob", node),
                (ids[2], None, node),
            ]
            assert all(isinstance(m["joined_at"], float) for m in listing["members"])
            bob.close()
            anonymous.close()
        # The server notices the closes on its own time: ask until they are gone.
        deadline = time.monotonic() + 5
        while True:
            alice.send_json({"action": "members"})
            listing = receive_json(alice)
            assert listing["count"] == len(listing["members"])
            if listing["count"] == 1:
                break
            assert time.monotonic() < deadline, f"the closed connections are still listed: {listing}"
        assert listing["members"][0]["connection_id"] == ids[0]


def get_channel_config_of(app: FastAPI) -> Any:
    return getattr(app.state, STATE_KEY)


# -- Redis going away ------------------------------------------------------------------------------------------


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


def test_client_joining_the_direct_channel_by_name_can_neither_read_nor_forge_direct_messages(
    backend: dict[str, Any], channel_name: str
) -> None:
    # Apps that let clients name their channel (/ws/{name}) must not hand them the topic of direct messages.
    namespace = backend["namespace"]
    room = BaseChannel()
    greet_on_join(room)
    app = serve_authenticated(room, **backend)
    notifier = BaseChannel(app=app)
    reserved = f"{namespace}.direct"

    @app.post("/forge")
    async def forge() -> None:
        forged = json.dumps({"connection": None, "user": "alice", "channel": None, "text": "forged"})
        await notifier.broadcast_to_channel(reserved, forged)

    @app.post("/secret")
    async def secret() -> None:
        await notifier.send_to_user("alice", "for alice only")

    with TestClient(app, raise_server_exceptions=False) as client:
        with joined_as(client, f"/ws/{channel_name}", "alice") as alice:
            with client.websocket_connect(f"/ws/{reserved}", headers={"x-user": "mallory"}) as mallory:
                refused = receive_json(mallory)
                assert (refused["code"], refused["close"]) == (1008, True)
                assert refused["errors"] == f"The channel name {reserved!r} is reserved."
                assert receive_close(mallory)[0] == 1008
            # Nor can app code be tricked into publishing there.
            assert client.post("/forge").status_code == 500
            assert client.post("/secret").status_code == 200
            assert receive_text(alice) == "for alice only"


def test_user_who_logs_in_with_a_message_is_then_reached_by_send_to_user_and_listed(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = direct_room()

    @room.action("login")
    async def login(websocket: WebSocket, data: dict[str, Any]) -> None:
        websocket.scope["user"] = SimpleUser(data["name"])
        await room.broadcast_to_personal(websocket, {"logged_in": data["name"]})

    @room.action("logout")
    async def logout(websocket: WebSocket, data: dict[str, Any]) -> None:
        websocket.scope["user"] = UnauthenticatedUser()
        await room.broadcast_to_personal(websocket, {"logged_out": True})

    app = serve_authenticated(room, **backend)
    with TestClient(app) as client, joined_as(client, f"/ws/{channel_name}", None) as carol:
        with joined_as(client, f"/ws/{channel_name}", "dave") as dave:
            carol.send_json({"action": "login", "name": "carol"})
            assert receive_json(carol) == {"logged_in": "carol"}
            dave.send_json({"action": "members"})
            assert sorted(str(member["user"]) for member in receive_json(dave)["members"]) == ["carol", "dave"]

            dave.send_json({"action": "tell_user", "user": "carol", "text": "welcome"})
            assert receive_json(carol) == {"told": "welcome"}

            carol.send_json({"action": "logout"})
            assert receive_json(carol) == {"logged_out": True}
            dave.send_json({"action": "tell_user", "user": "carol", "text": "gone?"})
            dave.send_json({"action": "members"})
            assert sorted(str(member["user"]) for member in receive_json(dave)["members"]) == ["None", "dave"]
            assert_nothing_else_received(carol)
