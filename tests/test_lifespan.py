"""Events: join/leave handlers and per-connection lifespans, however they are declared and however a connection ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import pytest
import websockets
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.testclient import WebSocketTestSession

from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import PermissionDenied, WebSocketException
from fastapi_channels.testing import receive_close, receive_json, receive_text
from fastapi_channels.used import GroupChannel
from tests.conftest import run_uvicorn
from tests.helpers import serve

WELCOME = "welcome"


class Record:
    """What handlers did, in order; the server appends from its thread and the test waits for it."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = threading.Condition()

    def add(self, item: Any) -> None:
        with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        """Wait until at least ``count`` items are recorded, and return them."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.items) >= count, timeout), (
                f"expected {count} records within {timeout} s, got {self.items}"
            )
            return list(self.items)


def watched_app(room: BaseChannel, **add_channel_options: Any) -> tuple[FastAPI, threading.Event]:
    """Return an app serving ``room`` at /ws/{name} and a silent listener at /listen/{name}, and an end event.

    The event is set each time a connection of ``room`` has fully ended: its ``connect`` call has returned.
    """
    listener = BaseChannel(group=room.group)  # its rooms are the rooms of the channel under test
    listener.add_event_handler("join", lambda websocket, channel: listener.broadcast_to_personal(websocket, WELCOME))
    app = serve(listener, path="/listen", **add_channel_options)
    ended = threading.Event()

    @app.websocket("/ws/{name}")
    async def endpoint(websocket: WebSocket, name: str) -> None:
        await room.connect(websocket, channel=name)
        ended.set()

    return app, ended


@contextlib.contextmanager
def listening(client: TestClient, channel: str) -> Iterator[WebSocketTestSession]:
    """A client of ``channel`` that has no handlers of its own: it only hears broadcasts."""
    with client.websocket_connect(f"/listen/{channel}") as ws:
        assert receive_text(ws) == WELCOME
        yield ws


# -- declaring join and leave handlers ----------------------------------------------------------------------


def handlers(record: Record, room: Callable[[], BaseChannel]) -> dict[str, list[Callable[..., Any]]]:
    """A sync and an async handler for each event; the async join handler welcomes the client."""

    def sync_join(websocket: WebSocket, channel: str) -> None:
        record.add(("sync join", channel))

    async def async_join(websocket: WebSocket, channel: str) -> None:
        record.add(("async join", channel))
        await room().broadcast_to_personal(websocket, WELCOME)

    def sync_leave(websocket: WebSocket, channel: str) -> None:
        record.add(("sync leave", channel))

    async def async_leave(websocket: WebSocket, channel: str) -> None:
        record.add(("async leave", channel))
        await room().broadcast_to_channel(channel, "left")

    return {"join": [sync_join, async_join], "leave": [sync_leave, async_leave]}


def room_with_add_event_handler(record: Record) -> BaseChannel:
    room = BaseChannel()
    for event, functions in handlers(record, lambda: room).items():
        for function in functions:
            room.add_event_handler(event, function)
    return room


def room_with_on_event(record: Record) -> BaseChannel:
    room = BaseChannel()
    for event, functions in handlers(record, lambda: room).items():
        for function in functions:
            assert room.on_event(event)(function) is function
    return room


def room_with_constructor_arguments(record: Record) -> BaseChannel:
    declared = handlers(record, lambda: room)
    room = BaseChannel(on_join=declared["join"], on_leave=declared["leave"])
    return room


def room_with_class_attributes(record: Record) -> BaseChannel:
    declared = handlers(record, lambda: room)

    class Room(BaseChannel):
        on_join = declared["join"]
        on_leave = declared["leave"]

    room = Room()
    return room


@pytest.mark.parametrize(
    "make_room",
    [room_with_add_event_handler, room_with_on_event, room_with_constructor_arguments, room_with_class_attributes],
    ids=["add_event_handler", "on_event", "constructor", "class-attributes"],
)
def test_event_handlers_sync_and_async_run_in_order_on_join_and_once_on_leave(
    backend: dict[str, Any], channel_name: str, make_room: Callable[[Record], BaseChannel]
) -> None:
    record = Record()
    app, _ = watched_app(make_room(record), **backend)
    with TestClient(app) as client, listening(client, channel_name) as listener:
        with client.websocket_connect(f"/ws/{channel_name}") as ws:
            assert receive_text(ws) == WELCOME
            assert record.items == [("sync join", channel_name), ("async join", channel_name)]
            ws.send_text("relayed")
            assert receive_text(ws) == "relayed"
            assert receive_text(listener) == "relayed"
            ws.close()
            assert receive_text(listener) == "left"
    assert record.items == [
        ("sync join", channel_name),
        ("async join", channel_name),
        ("sync leave", channel_name),
        ("async leave", channel_name),
    ]


@pytest.mark.parametrize("event_type", ["connect", "disconnect", "JOIN", ""])
def test_add_event_handler_unknown_event_type_raises_value_error(event_type: str) -> None:
    room = BaseChannel()
    with pytest.raises(ValueError, match="'join' or 'leave'"):
        room.add_event_handler(event_type, lambda websocket, channel: None)
    with pytest.raises(ValueError, match="'join' or 'leave'"):
        room.on_event(event_type)(lambda websocket, channel: None)


# -- lifespans ----------------------------------------------------------------------------------------------


def lifespan_from_constructor(record: Record) -> BaseChannel:
    @contextlib.asynccontextmanager
    async def lifespan(websocket: WebSocket, channel: str) -> AsyncIterator[None]:
        record.add("enter")
        await room.broadcast_to_personal(websocket, WELCOME)
        yield
        record.add("exit")
        await room.broadcast_to_channel(channel, "goodbye")

    room = BaseChannel(lifespan=lifespan)
    return room


def lifespan_method(record: Record) -> BaseChannel:
    class Room(BaseChannel):
        @contextlib.asynccontextmanager
        async def lifespan(self, websocket: WebSocket, channel: str) -> AsyncIterator[None]:
            record.add("enter")
            await self.broadcast_to_personal(websocket, WELCOME)
            yield
            record.add("exit")
            await self.broadcast_to_channel(channel, "goodbye")

    return Room()


def lifespan_function_taking_self(record: Record) -> BaseChannel:
    # Written as in the README: a function with a ``self`` parameter, passed to the constructor.
    @contextlib.asynccontextmanager
    async def lifespan(self: BaseChannel, websocket: WebSocket, channel: str) -> AsyncIterator[None]:
        assert self is room
        record.add("enter")
        await self.broadcast_to_personal(websocket, WELCOME)
        yield
        record.add("exit")
        await self.broadcast_to_channel(channel, "goodbye")

    room = BaseChannel(lifespan=lifespan)
    return room


@pytest.mark.parametrize(
    "make_room",
    [lifespan_from_constructor, lifespan_method, lifespan_function_taking_self],
    ids=["constructor", "method", "function-taking-self"],
)
def test_lifespan_wraps_the_connection_and_runs_inside_join_and_leave_handlers(
    backend: dict[str, Any], channel_name: str, make_room: Callable[[Record], BaseChannel]
) -> None:
    record = Record()
    room = make_room(record)
    room.add_event_handler("join", lambda websocket, channel: record.add("join"))
    room.add_event_handler("leave", lambda websocket, channel: record.add("leave"))
    app, _ = watched_app(room, **backend)
    with TestClient(app) as client, listening(client, channel_name) as listener:
        with client.websocket_connect(f"/ws/{channel_name}") as ws:
            assert receive_text(ws) == WELCOME
            assert record.items == ["enter", "join"]
            ws.close()
            assert receive_text(listener) == "goodbye"
    assert record.items == ["enter", "join", "leave", "exit"]


# -- leave handlers run exactly once, however the connection ends ----------------------------------------------


class EndingRoom(Channel):
    """Actions that end the connection from the server side in each way there is."""

    @action()
    async def hang_up(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await websocket.close()

    @action()
    async def refuse(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        raise PermissionDenied(close=True)

    @action()
    async def crash(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        raise RuntimeError("unexpected")


def end_by_client(ws: WebSocketTestSession) -> None:
    ws.close()


def end_by_server_close(ws: WebSocketTestSession) -> None:
    ws.send_json({"action": "hang_up"})
    assert receive_close(ws)[0] == 1000


def end_by_exception_with_close(ws: WebSocketTestSession) -> None:
    ws.send_json({"action": "refuse"})
    assert receive_json(ws)["code"] == 1008
    assert receive_close(ws)[0] == 1008


def end_by_unexpected_exception(ws: WebSocketTestSession) -> None:
    ws.send_json({"action": "crash"})
    assert receive_json(ws)["errors"] == "Internal server error."
    assert receive_close(ws)[0] == 1011


@pytest.mark.parametrize(
    "end",
    [end_by_client, end_by_server_close, end_by_exception_with_close, end_by_unexpected_exception],
    ids=["client-close", "server-close", "exception-close-true", "unexpected-exception"],
)
def test_leave_handlers_and_lifespan_exit_run_exactly_once_however_connection_ends(
    backend: dict[str, Any], channel_name: str, end: Callable[[WebSocketTestSession], None]
) -> None:
    record = Record()

    @contextlib.asynccontextmanager
    async def lifespan(websocket: WebSocket, channel: str) -> AsyncIterator[None]:
        yield
        record.add("lifespan exit")

    room = EndingRoom(lifespan=lifespan)

    @room.on_event("join")
    async def welcome(websocket: WebSocket, channel: str) -> None:
        await room.broadcast_to_personal(websocket, WELCOME)

    @room.on_event("leave")
    def count_sync(websocket: WebSocket, channel: str) -> None:
        record.add("sync leave")

    @room.on_event("leave")
    async def count_async(websocket: WebSocket, channel: str) -> None:
        record.add("async leave")
        await room.broadcast_to_channel(channel, "left")

    app, ended = watched_app(room, **backend)
    with TestClient(app) as client, listening(client, channel_name) as listener:
        with client.websocket_connect(f"/ws/{channel_name}") as ws:
            assert receive_text(ws) == WELCOME
            end(ws)
            assert receive_text(listener) == "left"
            assert ended.wait(5), "the connection did not end"
        # Had "left" been announced twice, the second would arrive before the relayed marker.
        listener.send_text("marker")
        assert receive_text(listener) == "marker"
    assert record.items == ["sync leave", "async leave", "lifespan exit"]


@pytest.mark.parametrize("abrupt", [True, False], ids=["dropped-without-close-frame", "closed-cleanly"])
async def test_leave_handlers_run_once_when_real_client_goes_away(
    backend: dict[str, Any], channel_name: str, abrupt: bool
) -> None:
    with run_uvicorn("tests.apps.events_app:app", env={"EVENTS_BROADCAST_URL": backend["url"]}) as base_url:
        ws_url = base_url.replace("http://", "ws://")
        async with websockets.connect(f"{ws_url}/ws/{channel_name}/observer") as observer:
            assert await asyncio.wait_for(observer.recv(), 5) == "joined"
            leaver = await websockets.connect(f"{ws_url}/ws/{channel_name}/leaver")
            assert await asyncio.wait_for(leaver.recv(), 5) == "joined"
            if abrupt:
                # Reset the TCP connection: the server never gets a close frame.
                leaver.transport.abort()
            else:
                await leaver.close()
            await asyncio.wait_for(leaver.wait_closed(), 5)
            assert await asyncio.wait_for(observer.recv(), 10) == "left:leaver"
            await observer.send("marker")
            assert await asyncio.wait_for(observer.recv(), 5) == "marker"
            async with httpx2.AsyncClient(base_url=base_url) as http:
                response = await http.get("/leaves/leaver")
            assert response.json() == {"leaves": 1}


# -- the group room's join and leave notices ------------------------------------------------------------------


class ResponseModel(BaseModel):
    action: str
    user: str
    message: Any
    status: str = "ok"
    errors: str | None = None
    request_id: int = 1

    def create(self) -> str:
        return self.model_dump_json(exclude_none=True)


def group_room() -> GroupChannel:
    """The README's group room: encode_json takes only dicts, its join/leave handlers send plain strings."""

    class GroupChatRoom(GroupChannel):
        @staticmethod
        async def encode_json(data: dict[str, Any]) -> str:
            return ResponseModel(**data).create()

    group_chatroom = GroupChatRoom()

    async def join_room(websocket: WebSocket, channel: str) -> None:
        await group_chatroom.broadcast_to_personal(websocket, "Join successfully")

    async def leave_room(websocket: WebSocket, channel: str) -> None:
        await group_chatroom.broadcast_to_channel(channel, "leave successfully")

    group_chatroom.add_event_handler("join", join_room)
    group_chatroom.add_event_handler("leave", leave_room)

    @group_chatroom.action("message")
    async def send_message(websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        await group_chatroom.broadcast_to_channel(channel, await group_chatroom.encode(data))

    @group_chatroom.action()
    async def close(websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        await websocket.close()

    return group_chatroom


def test_group_room_join_and_leave_notices_go_out_as_plain_strings(backend: dict[str, Any], channel_name: str) -> None:
    app, _ = watched_app(group_room(), **backend)
    path = f"/ws/{channel_name}"
    with TestClient(app) as client, client.websocket_connect(path) as alice:
        assert receive_text(alice) == "Join successfully"
        with client.websocket_connect(path) as bob:
            assert receive_text(bob) == "Join successfully"
            bob.send_json({"action": "message", "user": "bob", "message": "hi all", "request_id": 3})
            expected = {"action": "message", "user": "bob", "message": "hi all", "status": "ok", "request_id": 3}
            assert receive_json(alice) == expected
            assert receive_json(bob) == expected
            bob.close()
            assert receive_text(alice) == "leave successfully"
        with client.websocket_connect(path) as carol:
            assert receive_text(carol) == "Join successfully"
            carol.send_json({"action": "close"})
            assert receive_close(carol)[0] == 1000
            assert receive_text(alice) == "leave successfully"


# -- failing handlers -----------------------------------------------------------------------------------------


def test_join_handler_raising_exception_with_close_closes_with_its_code_and_skips_leave(
    backend: dict[str, Any], channel_name: str
) -> None:
    record = Record()
    room = BaseChannel()

    @room.on_event("join")
    async def members_only(websocket: WebSocket, channel: str) -> None:
        raise WebSocketException(4403, error_msg="Members only.", close=True)

    room.add_event_handler("leave", lambda websocket, channel: record.add("leave"))
    app, ended = watched_app(room, **backend)
    with TestClient(app) as client, client.websocket_connect(f"/ws/{channel_name}") as ws:
        frame = receive_json(ws)
        assert frame["status"] == "bad"
        assert frame["errors"] == "Members only."
        assert frame["code"] == 4403
        assert frame["close"] is True
        assert receive_close(ws)[0] == 4403
        assert ended.wait(5), "the connection did not end"
    assert record.items == []


def test_join_handler_raising_exception_without_close_keeps_connection(
    backend: dict[str, Any], channel_name: str
) -> None:
    record = Record()
    room = BaseChannel()

    @room.on_event("join")
    async def warn(websocket: WebSocket, channel: str) -> None:
        raise WebSocketException(error_msg="Heads up: read the rules.", close=False)

    room.add_event_handler("leave", lambda websocket, channel: record.add("leave"))
    app, ended = watched_app(room, **backend)
    with TestClient(app) as client, client.websocket_connect(f"/ws/{channel_name}") as ws:
        frame = receive_json(ws)
        assert frame["errors"] == "Heads up: read the rules."
        assert frame["close"] is False
        ws.send_text("still here")
        assert receive_text(ws) == "still here"
        ws.close()
        assert ended.wait(5), "the connection did not end"
    assert record.items == ["leave"]


def test_failing_leave_handler_is_logged_and_other_leave_handlers_still_run(
    backend: dict[str, Any], channel_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    room = BaseChannel()
    room.add_event_handler("join", lambda websocket, channel: room.broadcast_to_personal(websocket, WELCOME))

    @room.on_event("leave")
    async def broken(websocket: WebSocket, channel: str) -> None:
        raise RuntimeError("leave handler broke")

    @room.on_event("leave")
    async def announce(websocket: WebSocket, channel: str) -> None:
        await room.broadcast_to_channel(channel, "left")

    app, ended = watched_app(room, **backend)
    with TestClient(app) as client, listening(client, channel_name) as listener:
        with client.websocket_connect(f"/ws/{channel_name}") as ws:
            assert receive_text(ws) == WELCOME
            ws.close()
            assert receive_text(listener) == "left"
            assert ended.wait(5), "the connection did not end"
    failures = [record for record in caplog.records if record.exc_info and record.exc_info[0] is RuntimeError]
    assert len(failures) == 1
    assert failures[0].levelno == logging.ERROR
    assert "leave handler broke" in str(failures[0].exc_info[1])
