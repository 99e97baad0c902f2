"""Events: join/leave handlers and per-connection lifespans, however they are declared and however a connection ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import pytest
import websockets
from fastapi import WebSocket
from pydantic import BaseModel

from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import PermissionDenied, WebSocketException
from fastapi_channels.testing import ChannelCommunicator, ChannelListener
from fastapi_channels.used import GroupChannel
from tests.conftest import run_uvicorn
from tests.helpers import serve

WELCOME = "welcome"


# -- declaring join and leave handlers ----------------------------------------------------------------------


def handlers(record: list[Any], room: Callable[[], BaseChannel]) -> dict[str, list[Callable[..., Any]]]:
    """A sync and an async handler for each event; the async join handler welcomes the client."""

    def sync_join(websocket: WebSocket, channel: str) -> None:
        record.append(("sync join", channel))

    async def async_join(websocket: WebSocket, channel: str) -> None:
        record.append(("async join", channel))
        await room().broadcast_to_personal(websocket, WELCOME)

    def sync_leave(websocket: WebSocket, channel: str) -> None:
        record.append(("sync leave", channel))

    async def async_leave(websocket: WebSocket, channel: str) -> None:
        record.append(("async leave", channel))
        await room().broadcast_to_channel(channel, "left")

    return {"join": [sync_join, async_join], "leave": [sync_leave, async_leave]}


def room_with_add_event_handler(record: list[Any]) -> BaseChannel:
    room = BaseChannel()
    for event, functions in handlers(record, lambda: room).items():
        for function in functions:
            room.add_event_handler(event, function)
    return room


def room_with_on_event(record: list[Any]) -> BaseChannel:
    room = BaseChannel()
    for event, functions in handlers(record, lambda: room).items():
        for function in functions:
            assert room.on_event(event)(function) is function
    return room


def room_with_constructor_arguments(record: list[Any]) -> BaseChannel:
    declared = handlers(record, lambda: room)
    room = BaseChannel(on_join=declared["join"], on_leave=declared["leave"])
    return room


def room_with_class_attributes(record: list[Any]) -> BaseChannel:
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
async def test_event_handlers_sync_and_async_run_in_order_on_join_and_once_on_leave(
    backend: dict[str, Any], channel_name: str, make_room: Callable[[list[Any]], BaseChannel]
) -> None:
    record: list[Any] = []
    room = make_room(record)
    app = serve(room, **backend)
    async with ChannelListener(app, room, channel_name) as heard:
        async with ChannelCommunicator(app, f"/ws/{channel_name}") as client:
            assert await client.receive_text() == WELCOME
            assert record == [("sync join", channel_name), ("async join", channel_name)]
            await client.send_text("relayed")
            assert await client.receive_text() == "relayed"
            assert await heard.receive_text() == "relayed"
        assert record == [
            ("sync join", channel_name),
            ("async join", channel_name),
            ("sync leave", channel_name),
            ("async leave", channel_name),
        ]
        assert await heard.receive_text() == "left"


@pytest.mark.parametrize("event_type", ["connect", "disconnect", "JOIN", ""])
def test_add_event_handler_unknown_event_type_raises_value_error(event_type: str) -> None:
    room = BaseChannel()
    with pytest.raises(ValueError, match="'join' or 'leave'"):
        room.add_event_handler(event_type, lambda websocket, channel: None)
    with pytest.raises(ValueError, match="'join' or 'leave'"):
        room.on_event(event_type)(lambda websocket, channel: None)


# -- lifespans ----------------------------------------------------------------------------------------------


def lifespan_from_constructor(record: list[Any]) -> BaseChannel:
    @contextlib.asynccontextmanager
    async def lifespan(websocket: WebSocket, channel: str) -> AsyncIterator[None]:
        record.append("enter")
        await room.broadcast_to_personal(websocket, WELCOME)
        yield
        record.append("exit")
        await room.broadcast_to_channel(channel, "goodbye")

    room = BaseChannel(lifespan=lifespan)
    return room


def lifespan_method(record: list[Any]) -> BaseChannel:
    class Room(BaseChannel):
        @contextlib.asynccontextmanager
        async def lifespan(self, websocket: WebSocket, channel: str) -> AsyncIterator[None]:
            record.append("enter")
            await self.broadcast_to_personal(websocket, WELCOME)
            yield
            record.append("exit")
            await self.broadcast_to_channel(channel, "goodbye")

    return Room()


def lifespan_function_taking_self(record: list[Any]) -> BaseChannel:
    # Written as in the README: a function with a ``self`` parameter, passed to the constructor.
    @contextlib.asynccontextmanager
    async def lifespan(self: BaseChannel, websocket: WebSocket, channel: str) -> AsyncIterator[None]:
        assert self is room
        record.append("enter")
        await self.broadcast_to_personal(websocket, WELCOME)
        yield
        record.append("exit")
        await self.broadcast_to_channel(channel, "goodbye")

    room = BaseChannel(lifespan=lifespan)
    return room


@pytest.mark.parametrize(
    "make_room",
    [lifespan_from_constructor, lifespan_method, lifespan_function_taking_self],
    ids=["constructor", "method", "function-taking-self"],
)
async def test_lifespan_wraps_the_connection_and_runs_inside_join_and_leave_handlers(
    backend: dict[str, Any], channel_name: str, make_room: Callable[[list[Any]], BaseChannel]
) -> None:
    record: list[Any] = []
    room = make_room(record)
    room.add_event_handler("join", lambda websocket, channel: record.append("join"))
    room.add_event_handler("leave", lambda websocket, channel: record.append("leave"))
    app = serve(room, **backend)
    async with ChannelListener(app, room, channel_name) as heard:
        async with ChannelCommunicator(app, f"/ws/{channel_name}") as client:
            assert await client.receive_text() == WELCOME
            assert record == ["enter", "join"]
        assert record == ["enter", "join", "leave", "exit"]
        assert await heard.receive_text() == "goodbye"


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


async def end_by_client(client: ChannelCommunicator) -> None:
    await client.disconnect()


async def end_by_server_close(client: ChannelCommunicator) -> None:
    await client.send_action("hang_up")
    assert (await client.receive_close())[0] == 1000


async def end_by_exception_with_close(client: ChannelCommunicator) -> None:
    await client.send_action("refuse")
    assert (await client.receive_json())["code"] == 1008
    assert (await client.receive_close())[0] == 1008


async def end_by_unexpected_exception(client: ChannelCommunicator) -> None:
    await client.send_action("crash")
    assert (await client.receive_json())["errors"] == "Internal server error."
    assert (await client.receive_close())[0] == 1011


@pytest.mark.parametrize(
    "end",
    [end_by_client, end_by_server_close, end_by_exception_with_close, end_by_unexpected_exception],
    ids=["client-close", "server-close", "exception-close-true", "unexpected-exception"],
)
async def test_leave_handlers_and_lifespan_exit_run_exactly_once_however_connection_ends(
    backend: dict[str, Any], channel_name: str, end: Callable[[ChannelCommunicator], Awaitable[None]]
) -> None:
    record: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(websocket: WebSocket, channel: str) -> AsyncIterator[None]:
        yield
        record.append("lifespan exit")

    room = EndingRoom(lifespan=lifespan)

    @room.on_event("join")
    async def welcome(websocket: WebSocket, channel: str) -> None:
        await room.broadcast_to_personal(websocket, WELCOME)

    @room.on_event("leave")
    def count_sync(websocket: WebSocket, channel: str) -> None:
        record.append("sync leave")

    @room.on_event("leave")
    async def count_async(websocket: WebSocket, channel: str) -> None:
        record.append("async leave")
        await room.broadcast_to_channel(channel, "left")

    app = serve(room, **backend)
    async with ChannelListener(app, room, channel_name) as heard:
        async with ChannelCommunicator(app, f"/ws/{channel_name}") as client:
            assert await client.receive_text() == WELCOME
            await end(client)
        assert record == ["sync leave", "async leave", "lifespan exit"]
        # Had "left" been announced twice, the second would arrive before the marker.
        await room.broadcast_to_channel(channel_name, "marker")
        assert await heard.receive_text() == "left"
        assert await heard.receive_text() == "marker"


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


async def test_group_room_join_and_leave_notices_go_out_as_plain_strings(
    backend: dict[str, Any], channel_name: str
) -> None:
    app = serve(group_room(), **backend)
    path = f"/ws/{channel_name}"
    async with ChannelCommunicator(app, path) as alice:
        assert await alice.receive_text() == "Join successfully"
        async with ChannelCommunicator(app, path) as bob:
            assert await bob.receive_text() == "Join successfully"
            await bob.send_action("message", user="bob", message="hi all", request_id=3)
            expected = {"action": "message", "user": "bob", "message": "hi all", "status": "ok", "request_id": 3}
            assert await alice.receive_json() == expected
            assert await bob.receive_json() == expected
        assert await alice.receive_text() == "leave successfully"
        async with ChannelCommunicator(app, path) as carol:
            assert await carol.receive_text() == "Join successfully"
            await carol.send_action("close")
            assert (await carol.receive_close())[0] == 1000
            assert await alice.receive_text() == "leave successfully"


# -- failing handlers -----------------------------------------------------------------------------------------


async def test_join_handler_raising_exception_with_close_closes_with_its_code_and_skips_leave(
    backend: dict[str, Any], channel_name: str
) -> None:
    record: list[str] = []
    room = BaseChannel()

    @room.on_event("join")
    async def members_only(websocket: WebSocket, channel: str) -> None:
        raise WebSocketException(4403, error_msg="Members only.", close=True)

    room.add_event_handler("leave", lambda websocket, channel: record.append("leave"))
    app = serve(room, **backend)
    async with ChannelCommunicator(app, f"/ws/{channel_name}") as client:
        frame = await client.receive_json()
        assert (frame["status"], frame["errors"], frame["code"], frame["close"]) == ("bad", "Members only.", 4403, True)
        assert (await client.receive_close())[0] == 4403
    assert record == []


async def test_join_handler_raising_exception_without_close_keeps_connection(
    backend: dict[str, Any], channel_name: str
) -> None:
    record: list[str] = []
    room = BaseChannel()

    @room.on_event("join")
    async def warn(websocket: WebSocket, channel: str) -> None:
        raise WebSocketException(error_msg="Heads up: read the rules.", close=False)

    room.add_event_handler("leave", lambda websocket, channel: record.append("leave"))
    app = serve(room, **backend)
    async with ChannelCommunicator(app, f"/ws/{channel_name}") as client:
        frame = await client.receive_json()
        assert (frame["errors"], frame["close"]) == ("Heads up: read the rules.", False)
        await client.send_text("still here")
        assert await client.receive_text() == "still here"
    assert record == ["leave"]


async def test_failing_leave_handler_is_logged_and_other_leave_handlers_still_run(
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

    app = serve(room, **backend)
    async with ChannelListener(app, room, channel_name) as heard:
        async with ChannelCommunicator(app, f"/ws/{channel_name}") as client:
            assert await client.receive_text() == WELCOME
        assert await heard.receive_text() == "left"
    failures = [record for record in caplog.records if record.exc_info and record.exc_info[0] is RuntimeError]
    assert len(failures) == 1
    assert failures[0].levelno == logging.ERROR
    assert "leave handler broke" in str(failures[0].exc_info[1])
