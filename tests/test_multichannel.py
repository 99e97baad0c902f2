"""Several channels per connection: join and leave, subscribe frames, wrapped broadcasts, topic patterns, cleanup.

In-process tests run on memory:// and Redis through one fixture; abrupt disconnects, two processes sharing one
Redis and the bar (1,000 connections joining 10 channels each) run on real uvicorn processes
(tests/apps/multichannel_app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import pytest
import redis
from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import ClientConnection, connect

from fastapi_channels import add_channel
from fastapi_channels.backends import glob_matcher
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.config import STATE_KEY, FastAPIChannel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import BackendUnavailable, PermissionDenied, WebSocketException
from fastapi_channels.history import Position
from fastapi_channels.permission import BasePermission
from fastapi_channels.testing import ChannelCommunicator
from fastapi_channels.throttling import limiter
from fastapi_channels.topics import TopicPattern
from tests.apps.backends import CountingMemoryBackend
from tests.conftest import RedisServer, UvicornProcess
from tests.test_cluster import eventually, http

APP = "tests.apps.multichannel_app:app"
FRAME_TIMEOUT = 5.0


class Rooms(Channel):
    """Rooms that clients join with subscribe frames, or through actions that call join() and leave()."""

    client_subscriptions = True

    @action("say")
    async def say(self, channel: str, data: dict[str, Any]) -> None:
        message = data["text"] if data.get("raw") else {"text": data.get("text")}
        await self.broadcast_to_channel(data.get("to") or channel, message)

    @action("enter")
    async def enter(self, websocket: WebSocket, data: dict[str, Any]) -> bool:
        return await self.join(websocket, data["room"])

    @action("exit")
    async def exit_room(self, websocket: WebSocket, data: dict[str, Any]) -> bool:
        return await self.leave(websocket, data["room"])

    @action("where")
    async def where(self, websocket: WebSocket) -> list[str]:
        return self.get_channels(websocket)

    @action("count")
    async def count(self, data: dict[str, Any]) -> int:
        return await self.get_connection_count(data["room"])

    @action("members")
    async def members(self, data: dict[str, Any]) -> list[str | None]:
        return [member.connection_id for member in await self.get_members(data["room"])]

    @action("me")
    async def me(self, websocket: WebSocket) -> str | None:
        return self.get_connection_id(websocket)


def recording(log: list[tuple[str, str]]) -> dict[str, Any]:
    """Keywords for a channel object whose join and leave handlers append (event, channel) to ``log``."""
    return {
        "on_join": [lambda websocket, channel: log.append(("join", channel))],
        "on_leave": [lambda websocket, channel: log.append(("leave", channel))],
    }


def rooms_app(backend: dict[str, Any], room: BaseChannel, **add_channel_options: Any) -> FastAPI:
    """Serve ``room`` at /ws/{name} on the channel ``name``."""
    app = FastAPI()
    add_channel(app, **{**backend, **add_channel_options})

    @app.websocket("/ws/{name}")
    async def endpoint(websocket: WebSocket, name: str) -> None:
        await room.connect(websocket, channel=name)

    return app


def config_of(app: FastAPI) -> FastAPIChannel:
    config = getattr(app.state, STATE_KEY)
    assert isinstance(config, FastAPIChannel)
    return config


def ok(action: str, request_id: int, data: Any) -> dict[str, Any]:
    return {"type": "response", "status": "ok", "action": action, "request_id": request_id, "data": data}


def wrapped(channel: str, data: Any) -> dict[str, Any]:
    return {"type": "broadcast", "channel": channel, "data": data}


async def error(communicator: ChannelCommunicator, name: str, **payload: Any) -> dict[str, Any]:
    """Send ``name`` and return its answer, checking it is an error frame that leaves the socket open."""
    answer = await communicator.request(name, **payload)
    assert answer["status"] == "bad" and answer["close"] is False, answer
    return answer


async def finishes(test: Coroutine[Any, Any, None]) -> None:
    """Run ``test`` in a task of its own, failing if it has not ended in time: a hang fails rather than blocks."""
    task = asyncio.ensure_future(test)
    done, _ = await asyncio.wait({task}, timeout=4 * FRAME_TIMEOUT)
    if not done:
        task.cancel()  # may not end: what hangs may ignore cancellation
        raise AssertionError("The test hung.")
    task.result()


# -- joining and leaving ---------------------------------------------------------------------------------


async def test_join_from_an_action_wraps_broadcasts_of_every_channel_of_that_connection_only(
    backend: dict[str, Any],
) -> None:
    room = Rooms()
    app = rooms_app(backend, room)
    async with ChannelCommunicator(app, "/ws/lobby") as joiner, ChannelCommunicator(app, "/ws/lobby") as stayer:
        await joiner.send_action("say", text="before")
        assert await joiner.receive_json() == {"text": "before"}
        assert await stayer.receive_json() == {"text": "before"}
        assert await joiner.request("enter", room="kitchen") == ok("enter", 1, True)
        await stayer.send_action("say", text="hi")
        assert await joiner.receive_json() == wrapped("lobby", {"text": "hi"})
        assert await stayer.receive_json() == {"text": "hi"}  # a connection in one channel: as before
        await stayer.send_action("say", text="cook", to="kitchen")
        assert await joiner.receive_json() == wrapped("kitchen", {"text": "cook"})
        assert await joiner.request("where") == ok("where", 2, ["lobby", "kitchen"])
        await joiner.assert_nothing()
        await stayer.assert_nothing()


async def test_leave_from_an_action_stops_broadcasts_and_keeps_frames_wrapped(backend: dict[str, Any]) -> None:
    log: list[tuple[str, str]] = []
    room = Rooms(**recording(log))
    app = rooms_app(backend, room)
    async with ChannelCommunicator(app, "/ws/lobby") as client, ChannelCommunicator(app, "/ws/lobby") as other:
        await client.request("enter", room="kitchen")
        assert await client.request("exit", room="kitchen") == ok("exit", 2, True)
        assert await client.request("exit", room="kitchen") == ok("exit", 3, False)  # not in it any more
        await other.send_action("say", text="anyone?", to="kitchen")
        await other.send_action("say", text="still here")
        assert await client.receive_json() == wrapped("lobby", {"text": "still here"})
        assert await other.receive_json() == {"text": "still here"}
    assert log.count(("join", "kitchen")) == log.count(("leave", "kitchen")) == 1


async def test_broadcast_of_text_that_is_not_json_is_wrapped_as_text(backend: dict[str, Any]) -> None:
    app = rooms_app(backend, Rooms())
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        await client.request("subscribe", channel="kitchen")
        await client.send_action("say", text="plain words", raw=True, to="kitchen")
        assert await client.receive_json() == {"type": "broadcast", "channel": "kitchen", "text": "plain words"}


async def test_join_of_another_channel_object_runs_its_handlers_and_names_the_channel(backend: dict[str, Any]) -> None:
    log: list[tuple[str, str]] = []
    notices = Channel(**recording(log))
    lobby = Rooms()

    @lobby.action("follow")
    async def follow(websocket: WebSocket, data: dict[str, Any]) -> bool:
        return await notices.join(websocket, data["topic"])

    app = rooms_app(backend, lobby)
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        assert await client.request("follow", topic="news") == ok("follow", 1, True)
        assert log == [("join", "news")]
        await notices.broadcast_to_channel("news", {"notice": "news"})
        assert await client.receive_json() == wrapped("news", {"notice": "news"})
        # The lobby object's own "news" would be another channel of the same name: frames could not tell them apart.
        answer = await error(client, "subscribe", channel="news")
        assert "already in another channel named 'news'" in answer["errors"]
    assert log == [("join", "news"), ("leave", "news")]


async def test_join_twice_is_idempotent_with_one_presence_entry(backend: dict[str, Any]) -> None:
    log: list[tuple[str, str]] = []
    app = rooms_app(backend, Rooms(**recording(log)))
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        assert await client.request("enter", room="kitchen") == ok("enter", 1, True)
        assert await client.request("enter", room="kitchen") == ok("enter", 2, False)
        assert await client.request("subscribe", channel="kitchen") == ok("subscribe", 3, {"channel": "kitchen"})
        assert await client.request("subscribe", channel="lobby") == ok("subscribe", 4, {"channel": "lobby"})
        assert await client.request("count", room="kitchen") == ok("count", 5, 1)
        assert await client.request("where") == ok("where", 6, ["lobby", "kitchen"])
    assert log.count(("join", "kitchen")) == 1


async def test_presence_counts_and_members_per_joined_channel(backend: dict[str, Any]) -> None:
    app = rooms_app(backend, Rooms())
    async with ChannelCommunicator(app, "/ws/lobby") as one, ChannelCommunicator(app, "/ws/hall") as two:
        ids = [(await one.request("me"))["data"], (await two.request("me"))["data"]]
        await one.request("subscribe", channel="kitchen")
        await two.request("subscribe", channel="kitchen")
        await two.request("subscribe", channel="lobby")
        assert (await one.request("count", room="kitchen"))["data"] == 2
        assert (await one.request("count", room="lobby"))["data"] == 2
        assert (await one.request("count", room="hall"))["data"] == 1
        assert (await one.request("members", room="kitchen"))["data"] == ids
        await two.request("unsubscribe", channel="kitchen")
        assert (await one.request("count", room="kitchen"))["data"] == 1
        assert config_of(app).presence.held() == 4  # lobby x2, hall, kitchen
        await two.disconnect()
        assert [(await one.request("count", room=name))["data"] for name in ("kitchen", "lobby", "hall")] == [1, 1, 0]
        assert config_of(app).presence.held() == 2


async def test_leave_own_channel_is_refused_with_an_error_frame_and_value_error(backend: dict[str, Any]) -> None:
    room = Rooms()

    @room.action("leave_own")
    async def leave_own(websocket: WebSocket, channel: str) -> str:
        try:
            await room.leave(websocket, channel)
        except ValueError as exc:
            return str(exc)
        return "left"

    async with ChannelCommunicator(rooms_app(backend, room), "/ws/lobby") as client:
        answer = await error(client, "unsubscribe", channel="lobby")
        assert answer["code"] == 1008 and "cannot leave its own channel 'lobby'" in answer["errors"]
        assert "close it instead" in (await client.request("leave_own"))["data"]
        assert (await client.request("where"))["data"] == ["lobby"]


async def test_join_with_a_websocket_that_is_not_served_raises_runtime_error() -> None:
    room = Rooms()
    app = FastAPI()
    add_channel(app)
    raised: list[str] = []

    @app.websocket("/early")
    async def early(websocket: WebSocket) -> None:
        try:
            await room.join(websocket, "kitchen")
        except RuntimeError as exc:
            raised.append(str(exc))
        assert await room.leave(websocket, "kitchen") is False
        assert room.get_channels(websocket) == []
        await room.connect(websocket, channel="lobby")

    async with ChannelCommunicator(app, "/early") as client:
        assert (await client.request("where"))["data"] == ["lobby"]
    assert raised and "connect() serves on this process" in raised[0]


# -- subscribe and unsubscribe frames ----------------------------------------------------------------------


async def test_subscribe_frame_joins_and_unsubscribe_frame_leaves_with_ok_replies(backend: dict[str, Any]) -> None:
    log: list[tuple[str, str]] = []
    app = rooms_app(backend, Rooms(**recording(log)))
    async with ChannelCommunicator(app, "/ws/lobby") as client, ChannelCommunicator(app, "/ws/lobby") as other:
        await client.send_json({"action": "subscribe", "channel": "room:42", "request_id": 7})
        assert await client.receive_json() == ok("subscribe", 7, {"channel": "room:42"})
        await other.send_action("say", text="in 42", to="room:42")
        assert await client.receive_json() == wrapped("room:42", {"text": "in 42"})
        await client.send_json({"action": "unsubscribe", "channel": "room:42", "request_id": 8})
        assert await client.receive_json() == ok("unsubscribe", 8, {"channel": "room:42"})
        assert await client.request("unsubscribe", channel="never") == ok("unsubscribe", 1, {"channel": "never"})
        await other.send_action("say", text="gone", to="room:42")
        await other.send_action("say", text="lobby")
        assert await client.receive_json() == wrapped("lobby", {"text": "lobby"})
    assert (
        log
        == [("join", "lobby"), ("join", "lobby"), ("join", "room:42"), ("leave", "room:42")] + [("leave", "lobby")] * 2
    )


async def test_subscribe_frame_without_client_subscriptions_is_an_unknown_action(backend: dict[str, Any]) -> None:
    class Closed(Channel):
        @action("enter")
        async def enter(self, websocket: WebSocket, data: dict[str, Any]) -> bool:
            return await self.join(websocket, data["room"])

    async with ChannelCommunicator(rooms_app(backend, Closed()), "/ws/lobby") as client:
        for name in ("subscribe", "unsubscribe"):
            answer = await error(client, name, channel="kitchen")
            assert (answer["code"], answer["errors"]) == (1008, f"The action {name!r} does not exist.")
        assert await client.request("enter", room="kitchen") == ok("enter", 3, True)  # server code still may


async def test_user_action_named_subscribe_takes_precedence(backend: dict[str, Any]) -> None:
    room = Rooms()

    @room.action("subscribe")
    async def subscribe(data: dict[str, Any]) -> str:
        return f"mine: {data['channel']}"

    async with ChannelCommunicator(rooms_app(backend, room), "/ws/lobby") as client:
        assert await client.request("subscribe", channel="kitchen") == ok("subscribe", 1, "mine: kitchen")
        assert (await client.request("where"))["data"] == ["lobby"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, 'The message has no "channel" field.'),
        ({"channel": 42}, 'The "channel" field must be a non-empty string.'),
        ({"channel": ""}, 'The "channel" field must be a non-empty string.'),
        ({"channel": ["a"]}, 'The "channel" field must be a non-empty string.'),
        ({"channel": "x" * 257}, 'The "channel" field must be at most 256 characters.'),
        ({"channel": "ok", "offset": 3}, 'Resuming takes both "offset" and "epoch".'),
        ({"channel": "ok", "offset": -1, "epoch": "e"}, 'The "offset" to resume from must be a whole number'),
        ({"channel": "ok", "offset": 1, "epoch": "e" * 65}, 'The "epoch" to resume in must be a string'),
    ],
)
async def test_subscribe_frame_with_a_bad_field_gets_an_error_frame_and_socket_stays_open(
    fields: dict[str, Any], message: str
) -> None:
    room = Rooms()
    app = rooms_app({"url": "memory://"}, room)
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        answer = await error(client, "subscribe", **fields)
        assert answer["code"] == 1007 and answer["errors"].startswith(message) and answer["request_id"] == 1
        assert (await client.request("where"))["data"] == ["lobby"]
        assert config_of(app).layer.topics() == [room.topic("lobby")]


async def test_join_permission_refusal_gets_an_error_frame_and_socket_stays_open(backend: dict[str, Any]) -> None:
    asked: list[tuple[str | None, str]] = []

    def not_secret(websocket: WebSocket, action: str | None, channel: str) -> bool:
        asked.append((action, channel))
        return not channel.startswith("secret")

    app = rooms_app(backend, Rooms(join_permission=not_secret))
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        answer = await error(client, "subscribe", channel="secret:1")
        assert (answer["code"], answer["request_id"]) == (1008, 1)
        assert await client.request("subscribe", channel="open") == ok("subscribe", 2, {"channel": "open"})
        answer = await error(client, "enter", room="secret:2")  # from server code alike
        assert answer["errors"] == "You do not have permission to perform this action."
        assert (await client.request("where"))["data"] == ["lobby", "open"]
    assert asked == [("join", "secret:1"), ("join", "open"), ("join", "secret:2")]


async def test_join_checks_the_channel_permission_with_the_join_action(backend: dict[str, Any]) -> None:
    class NoJoiningVaults(BasePermission):
        def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
            return not (action == "join" and context["channel"] == "vault")

    app = rooms_app(backend, Rooms(permission_classes=[NoJoiningVaults]))
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        assert (await error(client, "subscribe", channel="vault"))["code"] == 1008
        assert (await client.request("subscribe", channel="hall"))["status"] == "ok"


async def test_join_of_a_full_channel_gets_an_error_frame_and_socket_stays_open(backend: dict[str, Any]) -> None:
    app = rooms_app(backend, Rooms(max_connection=1))
    async with ChannelCommunicator(app, "/ws/one") as first, ChannelCommunicator(app, "/ws/two") as second:
        assert (await first.request("subscribe", channel="booth"))["status"] == "ok"
        answer = await error(second, "subscribe", channel="booth")
        assert (answer["code"], answer["errors"]) == (1013, "This channel is full. Try again later.")
        assert (await error(second, "subscribe", channel="one"))["code"] == 1013  # first's own channel
        await first.request("unsubscribe", channel="booth")
        assert (await second.request("subscribe", channel="booth"))["status"] == "ok"
        assert (await second.request("count", room="booth"))["data"] == 1


async def test_join_beyond_max_channels_per_connection_is_refused_until_one_is_left(backend: dict[str, Any]) -> None:
    app = rooms_app(backend, Rooms(max_channels_per_connection=3))
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        for name in ("a", "b"):
            assert (await client.request("subscribe", channel=name))["status"] == "ok"
        answer = await error(client, "subscribe", channel="c")
        assert answer["errors"] == "A connection may be in at most 3 channels, its own included: leave one first."
        assert (await client.request("subscribe", channel="a"))["status"] == "ok"  # in it already: fine
        await client.request("unsubscribe", channel="a")
        assert (await client.request("subscribe", channel="c"))["status"] == "ok"
        assert (await client.request("where"))["data"] == ["lobby", "b", "c"]


async def test_subscribe_flood_is_bounded_by_max_channels_per_connection(backend: dict[str, Any]) -> None:
    room = Rooms()  # the default: 100 channels, its own included
    app = rooms_app(backend, room)
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        for index in range(300):  # sent at once, as a hostile client would
            await client.send_json({"action": "subscribe", "channel": f"c{index}", "request_id": index})
        answers = [await client.receive_json() for _ in range(300)]
        assert [answer["status"] for answer in answers] == ["ok"] * 99 + ["bad"] * 201
        assert {answer["code"] for answer in answers[99:]} == {1008}
        assert config_of(app).presence.held() == len(config_of(app).layer.topics()) == 100


async def test_join_permission_as_a_plain_function_class_attribute_is_not_bound(backend: dict[str, Any]) -> None:
    def only_open(websocket: WebSocket, action: str | None, channel: str) -> bool:
        return channel.startswith("open")

    class Picky(Rooms):
        join_permission = only_open

    async with ChannelCommunicator(rooms_app(backend, Picky()), "/ws/lobby") as client:
        assert (await client.request("subscribe", channel="open:1"))["status"] == "ok"
        assert (await error(client, "subscribe", channel="shut"))["code"] == 1008


def test_channel_settings_for_several_channels_are_checked_when_defined() -> None:
    with pytest.raises(ValueError, match="max_channels_per_connection must be a positive integer"):
        Rooms(max_channels_per_connection=0)
    with pytest.raises(ValueError, match="max_channels_per_connection must be a positive integer"):

        class Broken(Channel):
            max_channels_per_connection = True  # type: ignore[assignment]

    with pytest.raises(TypeError, match="subclass Channel to let clients join channels themselves"):
        BaseChannel(client_subscriptions=True)
    with pytest.raises(TypeError, match="subclass Channel"):

        class Relay(BaseChannel):
            client_subscriptions = True

    with pytest.raises(TypeError, match="is not a permission"):
        Rooms(join_permission=42)  # type: ignore[arg-type]


async def test_subscribe_frames_go_through_an_overridden_check_throttles(backend: dict[str, Any]) -> None:
    checked: list[tuple[str, str | None]] = []

    class Counted(Rooms):
        async def check_throttles(
            self, websocket: WebSocket, channel: str, action: str | None = None, limits: Any = ()
        ) -> None:
            checked.append((channel, action))

    async with ChannelCommunicator(rooms_app(backend, Counted()), "/ws/lobby") as client:
        await client.request("subscribe", channel="a")
        await client.request("unsubscribe", channel="a")
    assert checked == [("lobby", "subscribe"), ("lobby", "unsubscribe")]


async def test_subscribe_frames_spend_the_channel_wide_rate_limit(backend: dict[str, Any]) -> None:
    room = Rooms(throttle_classes=[limiter(times=3, minutes=1)])
    app = rooms_app(backend, room)
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        for name in ("a", "b"):
            assert (await client.request("subscribe", channel=name))["status"] == "ok"
        assert (await client.request("unsubscribe", channel="a"))["status"] == "ok"
        answer = await error(client, "subscribe", channel="c")
        assert answer["code"] == 1013 and answer["errors"].startswith("Too many requests.")
        # Refused before joining: the connection is in its own channel and b only.
        assert sorted(config_of(app).layer.topics()) == sorted(room.topic(name) for name in ("lobby", "b"))


# -- handlers, lifespans and the end of a connection -------------------------------------------------------


async def test_leave_handlers_run_once_per_channel_last_joined_first_on_disconnect(backend: dict[str, Any]) -> None:
    log: list[tuple[str, str]] = []
    room = Rooms(**recording(log))
    app = rooms_app(backend, room)
    async with ChannelCommunicator(app, "/ws/watch") as watcher:
        async with ChannelCommunicator(app, "/ws/lobby") as client:
            for name in ("a", "b", "c"):
                await client.request("subscribe", channel=name)
            await client.request("unsubscribe", channel="b")
        assert log[1:] == [("join", "lobby"), ("join", "a"), ("join", "b"), ("join", "c")] + [
            ("leave", "b"),
            ("leave", "c"),
            ("leave", "a"),
            ("leave", "lobby"),
        ]
        config = config_of(app)
        assert config.layer.topics() == [room.topic("watch")] and config.presence.held() == 1
        for name in ("lobby", "a", "b", "c"):
            assert (await watcher.request("count", room=name))["data"] == 0


async def test_leave_handlers_broadcast_only_to_those_who_stay(backend: dict[str, Any]) -> None:
    room = Rooms()

    @room.on_event("leave")
    async def farewell(websocket: WebSocket, channel: str) -> None:
        await room.broadcast_to_channel(channel, {"left": channel})

    app = rooms_app(backend, room)
    async with ChannelCommunicator(app, "/ws/hall") as stayer:
        await stayer.request("subscribe", channel="kitchen")
        async with ChannelCommunicator(app, "/ws/lobby") as leaver:
            await leaver.request("subscribe", channel="kitchen")
            await leaver.request("subscribe", channel="hall")
        # Both the kitchen's and the hall's farewells reach the stayer, once each; none reached the leaver.
        frames = [await stayer.receive_json(), await stayer.receive_json()]
        assert frames == [wrapped("hall", {"left": "hall"}), wrapped("kitchen", {"left": "kitchen"})]
        await stayer.assert_nothing()


async def test_join_handler_refusal_leaves_no_membership_and_no_leave_handler(backend: dict[str, Any]) -> None:
    log: list[tuple[str, str]] = []

    async def refuse_locked(websocket: WebSocket, channel: str) -> None:
        if channel == "locked":
            raise PermissionDenied(error_msg="This room is locked.", close=False)

    room = Rooms(on_join=[refuse_locked, lambda websocket, channel: log.append(("join", channel))])
    room.add_event_handler("leave", lambda websocket, channel: log.append(("leave", channel)))
    app = rooms_app(backend, room)
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        answer = await error(client, "subscribe", channel="locked")
        assert answer["errors"] == "This room is locked."
        assert (await client.request("count", room="locked"))["data"] == 0
        assert (await client.request("where"))["data"] == ["lobby"]
    assert log == [("join", "lobby"), ("leave", "lobby")]


async def test_lifespan_enters_and_exits_once_per_joined_channel(backend: dict[str, Any]) -> None:
    log: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(websocket: WebSocket, channel: str) -> AsyncIterator[None]:
        log.append(f"enter {channel}")
        yield
        log.append(f"exit {channel}")

    app = rooms_app(backend, Rooms(lifespan=lifespan, on_leave=[lambda ws, channel: log.append(f"leave {channel}")]))
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        await client.request("subscribe", channel="a")
        await client.request("subscribe", channel="b")
        await client.request("unsubscribe", channel="a")
        assert log == ["enter lobby", "enter a", "enter b", "leave a", "exit a"]
    assert log[5:] == ["leave b", "exit b", "leave lobby", "exit lobby"]


async def test_lifespan_that_fails_on_exit_is_logged_and_the_leave_completes(
    backend: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    @contextlib.asynccontextmanager
    async def fragile(websocket: WebSocket, channel: str) -> AsyncIterator[None]:
        yield
        if channel == "fragile":
            raise RuntimeError("cannot clean up")

    app = rooms_app(backend, Rooms(lifespan=fragile))
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        await client.request("subscribe", channel="fragile")
        assert await client.request("unsubscribe", channel="fragile") == ok("unsubscribe", 2, {"channel": "fragile"})
        assert (await client.request("where"))["data"] == ["lobby"]
    assert "The lifespan of a connection to 'fragile' failed on exit" in caplog.text


async def test_join_handler_that_joins_another_channel_does_not_deadlock(backend: dict[str, Any]) -> None:
    room = Rooms()

    @room.on_event("join")
    async def typing_too(websocket: WebSocket, channel: str) -> None:
        if channel.startswith("room:") and not channel.endswith(":typing"):
            await room.join(websocket, f"{channel}:typing")

    async with ChannelCommunicator(rooms_app(backend, room), "/ws/lobby") as client:
        assert (await client.request("subscribe", channel="room:1"))["status"] == "ok"
        assert (await client.request("where"))["data"] == ["lobby", "room:1", "room:1:typing"]


async def test_leave_handler_that_joins_another_channel_does_not_hang(backend: dict[str, Any]) -> None:
    room = Rooms()

    @room.on_event("leave")
    async def back_to_the_side(websocket: WebSocket, channel: str) -> None:
        if channel == "game":
            await room.join(websocket, "side")
            await room.leave(websocket, "corner")

    async def leave_the_game() -> None:
        async with ChannelCommunicator(rooms_app(backend, room), "/ws/lobby", timeout=FRAME_TIMEOUT) as client:
            for name in ("corner", "game"):
                assert (await client.request("subscribe", channel=name))["status"] == "ok"
            assert await client.request("unsubscribe", channel="game") == ok("unsubscribe", 3, {"channel": "game"})
            assert (await client.request("where"))["data"] == ["lobby", "side"]

    await finishes(leave_the_game())


async def test_failed_join_whose_lifespan_exit_leaves_another_channel_does_not_hang(backend: dict[str, Any]) -> None:
    @contextlib.asynccontextmanager
    async def lifespan(websocket: WebSocket, channel: str) -> AsyncIterator[None]:
        yield
        if channel == "locked":
            await room.leave(websocket, "corner")

    room = Rooms(lifespan=lifespan)

    @room.on_event("join")
    async def refuse(websocket: WebSocket, channel: str) -> None:
        if channel == "locked":
            raise PermissionDenied(error_msg="This room is locked.", close=False)

    async def join_the_locked_room() -> None:
        async with ChannelCommunicator(rooms_app(backend, room), "/ws/lobby", timeout=FRAME_TIMEOUT) as client:
            assert (await client.request("subscribe", channel="corner"))["status"] == "ok"
            assert (await error(client, "subscribe", channel="locked"))["errors"] == "This room is locked."
            assert (await client.request("where"))["data"] == ["lobby"]

    await finishes(join_the_locked_room())


async def test_join_while_the_connection_closes_is_refused_and_leaves_nothing(backend: dict[str, Any]) -> None:
    room = Rooms()
    refusals: list[str] = []

    @room.action("close_then_join")
    async def close_then_join(websocket: WebSocket) -> None:
        await room.close(websocket)
        try:
            await room.join(websocket, "late")
        except WebSocketException as exc:
            refusals.append(exc.error_msg)

    app = rooms_app(backend, room)
    async with ChannelCommunicator(app, "/ws/watch") as watcher:
        async with ChannelCommunicator(app, "/ws/lobby") as client:
            await client.send_action("close_then_join")
            assert await client.receive_close() == (1000, "")
        assert refusals == ["The connection is not in its channel (it is closing): it joins no more channels."]
        assert (await watcher.request("count", room="late"))["data"] == 0
        assert config_of(app).layer.topics() == [room.topic("watch")] and config_of(app).presence.held() == 1


async def test_disconnect_during_a_join_leaves_no_presence_entry(backend: dict[str, Any]) -> None:
    log: list[tuple[str, str]] = []
    entered = asyncio.Event()
    room = Rooms(**recording(log))

    @room.on_event("join")
    async def stall(websocket: WebSocket, channel: str) -> None:
        if channel == "slow":
            entered.set()
            await asyncio.Event().wait()  # until the client goes away

    app = rooms_app(backend, room)
    async with ChannelCommunicator(app, "/ws/watch") as watcher:
        async with ChannelCommunicator(app, "/ws/lobby") as client:
            await client.send_action("subscribe", channel="slow")
            await asyncio.wait_for(entered.wait(), FRAME_TIMEOUT)
            assert (await watcher.request("count", room="slow"))["data"] == 1
        # Its join handlers had started: its leave handlers ran, once, and nothing is left of it.
        assert log.count(("leave", "slow")) == 1 and log.count(("leave", "lobby")) == 1
        assert (await watcher.request("count", room="slow"))["data"] == 0
        assert config_of(app).presence.held() == 1  # the watcher's own channel


async def test_redis_down_during_a_join_gets_an_error_frame_and_no_half_membership(own_redis: RedisServer) -> None:
    app = rooms_app({"url": own_redis.url, "namespace": f"test-{uuid.uuid4().hex}"}, Rooms())
    async with ChannelCommunicator(app, "/ws/lobby") as client:
        assert (await client.request("subscribe", channel="before"))["status"] == "ok"
        own_redis.stop()
        answer = await error(client, "subscribe", channel="during")
        assert (answer["code"], answer["errors"]) == (1013, "The channel cannot be joined right now. Try again later.")
        assert (await client.request("where"))["data"] == ["lobby", "before"]
        assert sorted(config_of(app).layer.topics()) == sorted(Rooms().topic(name) for name in ("lobby", "before"))
        with pytest.raises(BackendUnavailable, match="subscribe again later"):
            async with Rooms().listen("x.+"):
                pass


# -- channels with history ---------------------------------------------------------------------------------


class HistoryRooms(Rooms):
    history_size = 10


async def test_history_channel_joined_with_a_position_replays_then_resumes_unwrapped(backend: dict[str, Any]) -> None:
    app = rooms_app(backend, HistoryRooms())
    async with ChannelCommunicator(app, "/ws/lobby") as client, ChannelCommunicator(app, "/ws/news") as writer:
        start = await writer.receive_json()
        epoch = start["epoch"]
        for text in ("one", "two", "three"):
            await writer.send_action("say", text=text)
            await writer.receive_json()
        await client.receive_json()  # the lobby's own resume frame
        await client.send_json({"action": "subscribe", "channel": "news", "offset": 1, "epoch": epoch, "request_id": 3})
        assert await client.receive_json() == ok("subscribe", 3, {"channel": "news"})
        for offset, text in ((2, "two"), (3, "three")):
            assert await client.receive_json() == {
                "type": "publication",
                "channel": "news",
                "offset": offset,
                "epoch": epoch,
                "data": {"text": text},
            }
        resume = {"type": "resume", "channel": "news", "recovered": True, "offset": 3, "epoch": epoch}
        assert await client.receive_json() == resume
        await writer.send_action("say", text="four")
        live = await client.receive_json()
        assert (live["type"], live["channel"], live["offset"]) == ("publication", "news", 4)  # never wrapped
        # A resume frame naming the joined channel is answered from that channel's history.
        await client.send_json({"action": "resume", "channel": "news", "offset": 0, "epoch": epoch})
        assert (await client.receive_json())["offset"] == 1  # the one publication it was not sent
        # Where the connection stands: the last publication it was sent (4, live).
        assert await client.receive_json() == {**resume, "offset": 4}
        answer = await error(client, "resume", channel="elsewhere", offset=1, epoch=epoch)
        assert answer["errors"] == 'The "channel" to resume must be one with history the connection is in.'


async def test_history_channel_joined_from_server_code_with_since_replays(backend: dict[str, Any]) -> None:
    room = HistoryRooms()

    @room.action("catch_up")
    async def catch_up(websocket: WebSocket, data: dict[str, Any]) -> None:
        await room.join(websocket, data["room"], since=Position(data["offset"], data["epoch"]))

    app = rooms_app(backend, room)
    async with ChannelCommunicator(app, "/ws/news") as writer:
        epoch = (await writer.receive_json())["epoch"]
        await writer.send_action("say", text="missed")
        await writer.receive_json()
        async with ChannelCommunicator(app, "/ws/lobby") as client:
            await client.receive_json()
            await client.send_action("catch_up", room="news", offset=0, epoch=epoch)
            assert (await client.receive_json())["data"] == {"text": "missed"}
            assert (await client.receive_json())["recovered"] is True


async def test_objects_of_one_group_with_and_without_history_are_refused_at_first_use(backend: dict[str, Any]) -> None:
    plain = Rooms()
    kept = HistoryRooms(group=plain.group, channel="kept")
    app = FastAPI()
    add_channel(app, **backend)

    @app.websocket("/plain/{name}")
    async def plain_endpoint(websocket: WebSocket, name: str) -> None:
        await plain.connect(websocket, channel=name)

    @app.websocket("/kept/{name}")
    async def kept_endpoint(websocket: WebSocket, name: str) -> None:
        await kept.connect(websocket, channel=name)

    async with ChannelCommunicator(app, "/plain/news") as reader:
        assert (await reader.request("where"))["data"] == ["news"]
        # Its connections would miss the publications of one another: a history stream and a plain fan-out in one.
        with pytest.raises(
            ValueError, match=r"HistoryRooms\(channel='kept'\) and Rooms\(channel='default_channel'\) share"
        ):
            async with ChannelCommunicator(app, "/kept/news"):
                pass


async def test_on_receive_override_still_answers_the_built_in_frames(backend: dict[str, Any]) -> None:
    seen: list[str] = []

    class Logged(HistoryRooms):
        async def on_receive(self, websocket: WebSocket, channel: str, message: str) -> None:
            seen.append(json.loads(message)["action"])
            await super().on_receive(websocket, channel, message)

    async with ChannelCommunicator(rooms_app(backend, Logged()), "/ws/lobby") as client:
        epoch = (await client.receive_json())["epoch"]
        assert await client.request("subscribe", channel="news") == ok("subscribe", 1, {"channel": "news"})
        assert (await client.receive_json())["channel"] == "news"  # the resume frame of the channel joined
        await client.send_action("pong")  # answered by nothing: the next frame is the next request's reply
        assert await client.request("where") == ok("where", 2, ["lobby", "news"])
        await client.send_json({"action": "resume", "offset": 0, "epoch": epoch})
        assert await client.receive_json() == {
            "type": "resume",
            "channel": "lobby",
            "recovered": True,
            "offset": 0,
            "epoch": epoch,
        }
        assert await client.request("unsubscribe", channel="news") == ok("unsubscribe", 3, {"channel": "news"})
        assert (await error(client, "nothing"))["errors"] == "The action 'nothing' does not exist."
    assert seen == ["subscribe", "pong", "where", "resume", "unsubscribe", "nothing"]


@pytest.mark.parametrize("override", [False, True], ids=["dispatch", "on_receive"])
async def test_resume_frames_spend_the_channel_wide_rate_limit(backend: dict[str, Any], override: bool) -> None:
    class Limited(HistoryRooms):
        throttle_classes = [limiter(times=2, minutes=1)]

    class Overridden(Limited):
        async def on_receive(self, websocket: WebSocket, channel: str, message: str) -> None:
            await super().on_receive(websocket, channel, message)

    room = Overridden() if override else Limited()
    async with ChannelCommunicator(rooms_app(backend, room), "/ws/lobby") as client:
        epoch = (await client.receive_json())["epoch"]
        for _ in range(2):
            await client.send_json({"action": "resume", "offset": 0, "epoch": epoch})
            assert (await client.receive_json())["type"] == "resume"
        answer = await error(client, "resume", offset=0, epoch=epoch)
        assert answer["code"] == 1013 and answer["errors"].startswith("Too many requests.")


# -- topic patterns ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matching", "other"),
    [
        ("sensors.+.temp", ["sensors.kitchen.temp", "sensors..temp"], ["sensors.temp", "sensors.a.b.temp", "x"]),
        ("sensors.#", ["sensors", "sensors.a", "sensors.a.b"], ["sensor", "sensorsx", "x.sensors"]),
        ("#", ["a", "a.b"], []),
        ("+", ["a"], ["a.b"]),
        ("a*b.[x]", ["a*b.[x]"], ["aXb.x", "ab.[x]"]),
        ("room:1", ["room:1"], ["room:10", "room"]),
    ],
)
def test_topic_pattern_matches_as_in_mqtt(pattern: str, matching: list[str], other: list[str]) -> None:
    compiled = TopicPattern(pattern)
    assert [name for name in matching + other if compiled.matches(name)] == matching


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("sensors.#.temp", "'#' must be the whole last segment"),
        ("sensors#", "'#' must be the whole last segment"),
        ("a.b+", r"'\+' must be a whole segment"),
        ("", "non-empty string"),
        ("x" * 257, "at most 256 characters"),
    ],
)
def test_topic_pattern_with_a_misplaced_wildcard_raises_value_error_at_call_time(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rooms().listen(pattern)  # before the app runs, before entering the block


def test_topic_pattern_glob_matches_at_least_every_matching_name() -> None:
    assert TopicPattern("sensors.+.temp").glob("ns:3:grp:") == "ns:3:grp:sensors.*.temp"
    assert TopicPattern("sensors.#").glob("ns:") == "ns:sensors*"  # "sensors" itself too; exact match filters
    assert TopicPattern("a*[b]?").glob("p*:") == r"p\*:a\*\[b\]\?"


@pytest.mark.parametrize(
    ("glob", "matching", "other"),
    [
        ("ns:a*", ["ns:a", "ns:a.b.c"], ["ns:b", "xns:a"]),
        ("ns:?.x", ["ns:a.x"], ["ns:.x", "ns:ab.x"]),
        (r"ns:a\*b\?\[c\]", ["ns:a*b?[c]"], ["ns:aXbY[c]", "ns:ab[c]"]),
        ("ns\\", ["ns\\"], ["ns"]),
    ],
)
def test_memory_backend_glob_matches_as_redis_does(glob: str, matching: list[str], other: list[str]) -> None:
    matcher = glob_matcher(glob)
    assert [name for name in matching + other if matcher.fullmatch(name)] == matching


def test_listen_is_the_one_name_of_topic_pattern_listening() -> None:
    # A client's subscribe frame joins a channel; server code listens to patterns: one name each, no alias.
    assert callable(Rooms.listen)
    assert not hasattr(BaseChannel, "subscribe")


async def test_listen_with_glob_characters_in_names_matches_them_literally(backend: dict[str, Any]) -> None:
    room = Rooms()
    async with ChannelCommunicator(rooms_app(backend, room), "/ws/lobby"):
        async with room.listen("a*b.+") as messages:
            await room.broadcast_to_channel("aXb.1", "no")
            await room.broadcast_to_channel("a*b.2", "yes")
            assert await asyncio.wait_for(anext(messages), FRAME_TIMEOUT) == ("a*b.2", "yes")


async def test_listen_receives_the_channels_it_matches_only(backend: dict[str, Any]) -> None:
    sensors, other = Rooms(), Rooms(group="elsewhere")
    app = rooms_app(backend, sensors)
    async with ChannelCommunicator(app, "/ws/lobby") as client:  # runs the app
        async with sensors.listen("sensors.+.temp") as messages:
            await sensors.broadcast_to_channel("sensors.kitchen.humidity", {"v": 0})
            await sensors.broadcast_to_channel("sensors.kitchen.temp", {"v": 1})
            await other.broadcast_to_channel("sensors.hall.temp", {"v": 2})  # another object's group
            await sensors.broadcast_to_channel("sensors.hall.temp", "21.5 C")
            first = await asyncio.wait_for(anext(messages), FRAME_TIMEOUT)
            assert first == ("sensors.kitchen.temp", {"v": 1}) and first.channel == "sensors.kitchen.temp"
            assert await asyncio.wait_for(anext(messages), FRAME_TIMEOUT) == ("sensors.hall.temp", "21.5 C")
            assert messages.dropped == 0
        await client.assert_nothing()
        assert [name async for name, _ in messages] == []  # the block ended: so does the iteration


async def test_listen_hears_broadcasts_of_another_process_on_redis(redis_url: str) -> None:
    namespace = f"test-{uuid.uuid4().hex}"
    listening, sending = Rooms(), Rooms()
    listener_app = rooms_app({"url": redis_url, "namespace": namespace}, listening)
    sender_app = rooms_app({"url": redis_url, "namespace": namespace}, sending)
    listening.app = listener_app  # two apps run: say which one the topic subscription is of
    async with ChannelCommunicator(listener_app, "/ws/a"), ChannelCommunicator(sender_app, "/ws/b") as sender:
        async with listening.listen("sensors.#") as messages:
            await sender.send_action("say", to="sensors.kitchen.temp", text="warm")
            await sender.send_action("say", to="sensor.kitchen", text="not this")
            await sender.send_action("say", to="sensors", text="all")
            received = [await asyncio.wait_for(anext(messages), FRAME_TIMEOUT) for _ in range(2)]
            assert received == [("sensors.kitchen.temp", {"text": "warm"}), ("sensors", {"text": "all"})]
        with redis.Redis.from_url(redis_url) as client:
            assert client.pubsub_numpat() == 0  # the backend's pattern subscription went with the last reader


async def test_listen_hears_again_after_redis_restarts(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    room = Rooms()
    app = rooms_app({"url": own_redis.url, "namespace": f"test-{uuid.uuid4().hex}"}, room)
    async with ChannelCommunicator(app, "/ws/a"), room.listen("after.+") as messages:
        own_redis.stop()

        async def reader_noticed() -> bool:
            return any("pub/sub connection" in record.getMessage() for record in caplog.records)

        await eventually(reader_noticed, within=10)  # the backend's reader lost its connection, and retries
        own_redis.start()  # empty: the backend reconnects and subscribes to the pattern again
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        for index in itertools.count():
            with contextlib.suppress(BackendUnavailable):  # until the publishing side is back too
                await room.broadcast_to_channel(f"after.{index}", index)
            with contextlib.suppress(TimeoutError):
                received = await asyncio.wait_for(anext(messages), 0.2)
                break
            assert loop.time() < deadline, "the pattern subscription did not come back"
        assert received.channel == f"after.{received.message}"


async def test_listen_with_a_slow_reader_drops_the_oldest_and_counts(backend: dict[str, Any]) -> None:
    room = Rooms()
    async with ChannelCommunicator(rooms_app(backend, room), "/ws/lobby"):
        async with room.listen("feed.+", queue_size=3) as messages, room.listen("feed.#") as everything:
            for index in range(10):
                await room.broadcast_to_channel(f"feed.{index}", index)
            assert [(await asyncio.wait_for(anext(everything), FRAME_TIMEOUT)).message for _ in range(10)] == list(
                range(10)
            )
            # Delivered: the last three wait for the slow reader, the seven before them are gone.
            assert [(await anext(messages)).message for _ in range(3)] == [7, 8, 9]
            assert (messages.dropped, everything.dropped) == (7, 0)
        with pytest.raises(ValueError, match="queue_size must be a positive number"):
            room.listen("feed.+", queue_size=0)


async def test_listen_on_history_channels_yields_the_messages(backend: dict[str, Any]) -> None:
    room = HistoryRooms()
    async with ChannelCommunicator(rooms_app(backend, room), "/ws/lobby"):
        async with room.listen("log.+") as messages:
            await room.broadcast_to_channel("log.a", {"n": 1})
            await room.broadcast_to_channel("log.b", "text")
            assert [await asyncio.wait_for(anext(messages), FRAME_TIMEOUT) for _ in range(2)] == [
                ("log.a", {"n": 1}),
                ("log.b", "text"),
            ]


async def test_listen_ends_when_the_app_stops() -> None:
    room = Rooms()
    config = config_of(rooms_app({"url": "memory://"}, room))
    async with contextlib.AsyncExitStack() as stack:
        async with config.running():
            messages = await stack.enter_async_context(room.listen("x.#"))
            reading = asyncio.ensure_future(anext(messages))
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(reading, FRAME_TIMEOUT)


async def test_listen_without_a_pattern_backend_raises_runtime_error() -> None:
    room = Rooms()
    async with ChannelCommunicator(rooms_app({"backend": CountingMemoryBackend()}, room), "/ws/lobby"):
        with pytest.raises(RuntimeError, match="Topic subscriptions need a backend that subscribes to patterns"):
            room.listen("x.+")
    with pytest.raises(RuntimeError, match="No app with channels is running"):
        room.listen("x.+")


# -- real servers ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def server(url: str = "memory://", *, namespace: str | None = None, count: int = 1) -> Iterator[list[UvicornProcess]]:
    env = {"MULTICHANNEL_URL": url, "MULTICHANNEL_NAMESPACE": namespace or f"test-{uuid.uuid4().hex}"}
    servers = [UvicornProcess(APP, env=env) for _ in range(count)]
    try:
        for process in servers:
            process.wait_until_serving()
        yield servers
    finally:
        for process in servers:
            process.close()


async def open_client(process: UvicornProcess, path: str) -> ClientConnection:
    url = f"ws://127.0.0.1:{process.port}{path}"
    return await connect(url, ping_interval=None, open_timeout=FRAME_TIMEOUT, close_timeout=2, max_queue=None)


async def next_frame(websocket: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(websocket.recv(), FRAME_TIMEOUT))
    return frame


async def subscribe(websocket: ClientConnection, *channels: str) -> list[dict[str, Any]]:
    """Send a subscribe frame for each channel at once, then return the answers."""
    for index, channel in enumerate(channels):
        await websocket.send(json.dumps({"action": "subscribe", "channel": channel, "request_id": index}))
    return [await next_frame(websocket) for _ in channels]


def abort(websocket: ClientConnection) -> None:
    """Drop the TCP connection without a close frame, as a killed browser or a lost network does."""
    websocket.transport.abort()


async def test_abrupt_disconnect_runs_leave_handlers_once_per_channel() -> None:
    with server() as (process,):
        websocket = await open_client(process, "/rooms/lobby?who=ann")
        answers = await subscribe(websocket, "a", "b")
        assert [answer["status"] for answer in answers] == ["ok", "ok"]
        abort(websocket)

        async def left() -> bool:
            return len(await http("GET", process, "/records/ann")) == 6

        await eventually(left, within=FRAME_TIMEOUT)
        assert await http("GET", process, "/records/ann") == [
            ["join", "lobby"],
            ["join", "a"],
            ["join", "b"],
            ["leave", "b"],
            ["leave", "a"],
            ["leave", "lobby"],
        ]
        debug = await http("GET", process, "/debug")
        assert (debug["topics"], debug["connections"], debug["presence"]) == (0, 0, 0)


async def test_max_connection_of_a_joined_channel_holds_across_two_processes(redis_url: str) -> None:
    with server(redis_url, count=2) as (one, two):
        first = await open_client(one, "/small/first")
        second = await open_client(two, "/small/second")
        try:
            assert (await subscribe(first, "booth"))[0]["status"] == "ok"
            refused = (await subscribe(second, "booth"))[0]
            assert (refused["status"], refused["code"], refused["close"]) == ("bad", 1013, False)
            assert await http("GET", one, "/count/small/booth") == await http("GET", two, "/count/small/booth") == 1
            await first.send(json.dumps({"action": "unsubscribe", "channel": "booth"}))
            assert (await next_frame(first))["status"] == "ok"
            assert (await subscribe(second, "booth"))[0]["status"] == "ok"  # the socket stayed open
        finally:
            await first.close()
            await second.close()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_thousand_connections_joining_ten_channels_each_leave_nothing_behind(
    kind: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url") if kind == "redis" else "memory://"
    namespace = f"test-{uuid.uuid4().hex}"
    connections, extra, rooms = 1000, 10, 100
    with server(url, namespace=namespace) as (process,):
        before = await http("GET", process, "/debug")
        opening = asyncio.Semaphore(100)

        async def member(index: int) -> ClientConnection:
            async with opening:
                websocket = await open_client(process, f"/rooms/home-{index % 10}")
                channels = [f"room-{(index * 7 + offset) % rooms}" for offset in range(extra)]
                answers = await subscribe(websocket, *channels)
                assert [answer.get("data") for answer in answers] == [{"channel": name} for name in channels]
                return websocket

        clients = await asyncio.gather(*(member(index) for index in range(connections)))
        during = await http("GET", process, "/debug")
        assert (during["topics"], during["connections"]) == (10 + rooms, connections)
        assert during["presence"] == during["joins"] == connections * (1 + extra)
        # One broadcast to a room reaches its members, wrapped.
        await clients[0].send(json.dumps({"action": "say", "to": "room-0", "text": "hello"}))
        assert await next_frame(clients[0]) == wrapped("room-0", {"text": "hello"})
        for index, websocket in enumerate(clients):
            if index % 2:
                abort(websocket)  # half of them drop without a close frame
        await asyncio.gather(*(websocket.close() for index, websocket in enumerate(clients) if not index % 2))

        async def all_gone() -> bool:
            now = await http("GET", process, "/debug")
            return bool(now["leaves"] == connections * (1 + extra) and now["tasks"] <= before["tasks"])

        await eventually(all_gone, within=60)
        after = await http("GET", process, "/debug")
        assert (after["topics"], after["connections"], after["presence"], after["tasks"]) == (0, 0, 0, before["tasks"])
        if kind == "redis":
            with redis.Redis.from_url(url) as client:
                keys = {key.decode() for key in client.scan_iter(match=f"{namespace}:*")}
                assert keys == {f"{namespace}:presence:nodes"}  # the process's own lease, nothing of any channel
                assert [name.decode() for name in client.pubsub_channels(f"{namespace}*")] == [f"{namespace}.direct"]
