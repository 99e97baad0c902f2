"""``@action`` and the action registry: names, deprecation, inheritance, instance actions and handler keywords."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import WebSocket
from fastapi.testclient import TestClient

from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action, get_action_spec
from fastapi_channels.permission import DenyAll
from fastapi_channels.testing import receive, receive_json
from tests.helpers import call, serve


class Replying(Channel):
    """A base whose actions answer the caller with ``reply``."""

    async def reply(self, websocket: WebSocket, **message: Any) -> None:
        await self.broadcast_to_personal(websocket, message)


# -- naming ---------------------------------------------------------------------------------------------


def test_action_returns_the_same_function_with_spec() -> None:
    def handler() -> str:
        return "called"

    decorated = action("named")(handler)
    assert decorated is handler
    assert handler() == "called"
    spec = get_action_spec(handler)
    assert spec is not None
    assert spec.name == "named"
    assert spec.deprecated is False
    assert spec.permission is None


def test_action_forms_names_reach_clients() -> None:
    class Room(Replying):
        @action("explicit-name")
        async def first(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, ran="first")

        @action(name="keyword-name")
        async def second(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, ran="second")

        @action()
        async def empty_parentheses(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, ran="empty_parentheses")

        @action
        async def bare(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, ran="bare")

        @action(None)
        async def none_name(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, ran="none_name")

    room = Room()
    assert room.actions == ["explicit-name", "keyword-name", "empty_parentheses", "bare", "none_name"]
    with TestClient(serve(room)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "explicit-name") == {"ran": "first"}
        assert call(ws, "keyword-name") == {"ran": "second"}
        assert call(ws, "empty_parentheses") == {"ran": "empty_parentheses"}
        assert call(ws, "bare") == {"ran": "bare"}
        assert call(ws, "none_name") == {"ran": "none_name"}
        # The Python name of a renamed action is not an action.
        frame = call(ws, "first")
        assert frame["status"] == "bad"
        assert frame["action"] == "first"


def test_action_docstring_kept_in_spec() -> None:
    @action
    def documented() -> None:
        """Say hello to the room."""

    spec = get_action_spec(documented)
    assert spec is not None
    assert spec.doc == "Say hello to the room."


@pytest.mark.parametrize("name", ["", 42, b"bytes", ["x"]])
def test_action_invalid_name_raises_type_error(name: Any) -> None:
    with pytest.raises(TypeError, match="action name"):
        action(name)


def test_action_on_non_callable_raises_type_error() -> None:
    with pytest.raises(TypeError, match="decorates functions"):
        action("x")("not a function")  # type: ignore[type-var]


def test_action_sync_handler_runs() -> None:
    calls: list[dict[str, Any]] = []

    class Room(Channel):
        @action
        def record(self, data: dict[str, Any]) -> None:
            calls.append(data)

        @action
        async def ping(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, "pong")

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "record", "n": 1})
        ws.send_json({"action": "ping"})
        assert receive(ws)["text"] == "pong"
    assert calls == [{"action": "record", "n": 1}]


# -- deprecated -----------------------------------------------------------------------------------------


def test_deprecated_action_error_frame_handler_not_run_socket_stays_open() -> None:
    ran: list[str] = []

    class Room(Replying):
        @action(deprecated=True)
        async def old(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
            ran.append("old")
            await self.reply(websocket, ran="old")
            await self.broadcast_to_channel(channel, {"ran": "old"})

        @action
        async def new(self, websocket: WebSocket, **kwargs: Any) -> None:
            ran.append("new")
            await self.reply(websocket, ran="new")

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        frame = call(ws, "old", request_id=4)
        assert frame["type"] == "response"
        assert frame["status"] == "bad"
        assert frame["action"] == "old"
        assert frame["request_id"] == 4
        assert "deprecated" in frame["errors"]
        assert frame["code"] == 1008
        assert frame["close"] is False
        # The very next frame answers the next request: the deprecated handler sent nothing.
        assert call(ws, "new") == {"ran": "new"}
    assert ran == ["new"]


def test_deprecated_action_still_listed() -> None:
    class Room(Channel):
        @action(deprecated=True)
        async def old(self, **kwargs: Any) -> None: ...

    assert Room().actions == ["old"]
    spec = get_action_spec(Room.old)
    assert spec is not None and spec.deprecated is True


def test_deprecated_action_checked_before_permission() -> None:
    class Room(Channel):
        @action(deprecated=True, permission=DenyAll)
        async def old(self, **kwargs: Any) -> None: ...

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        assert "deprecated" in call(ws, "old")["errors"]


# -- class registry -------------------------------------------------------------------------------------


def test_duplicate_action_name_in_class_raises_type_error_at_class_creation() -> None:
    with pytest.raises(TypeError, match="'say'"):

        class Room(Channel):
            @action("say")
            async def first(self, **kwargs: Any) -> None: ...

            @action("say")
            async def second(self, **kwargs: Any) -> None: ...


def test_duplicate_action_function_name_and_explicit_name_raises_type_error() -> None:
    with pytest.raises(TypeError, match="twice"):

        class Room(Channel):
            @action
            async def say(self, **kwargs: Any) -> None: ...

            @action("say")
            async def shout(self, **kwargs: Any) -> None: ...


def test_inherited_actions_work_in_subclass() -> None:
    class Parent(Replying):
        @action
        async def hello(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, said="hello", by=type(self).__name__)

    class Child(Parent):
        @action
        async def bye(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, said="bye")

    class GrandChild(Child):
        pass

    assert Child().actions == ["hello", "bye"]
    assert GrandChild().actions == ["hello", "bye"]
    assert Parent().actions == ["hello"]
    with TestClient(serve({"grandchild": GrandChild(), "parent": Parent()})) as client:
        with client.websocket_connect("/grandchild") as ws:
            assert call(ws, "hello") == {"said": "hello", "by": "GrandChild"}
            assert call(ws, "bye") == {"said": "bye"}
        with client.websocket_connect("/parent") as ws:
            assert call(ws, "bye")["status"] == "bad"


def test_overridden_action_in_subclass_runs_subclass_handler() -> None:
    class Parent(Replying):
        @action
        async def greet(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, by="parent")

    class Child(Parent):
        @action
        async def greet(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, by="child")

    assert Child().actions == ["greet"]
    with TestClient(serve({"child": Child(), "parent": Parent()})) as client:
        with client.websocket_connect("/child") as ws:
            assert call(ws, "greet") == {"by": "child"}
        with client.websocket_connect("/parent") as ws:
            assert call(ws, "greet") == {"by": "parent"}


def test_overridden_action_name_on_other_method_replaces_parent_action() -> None:
    class Parent(Replying):
        @action("greet")
        async def parent_greet(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, by="parent")

    class Child(Parent):
        @action("greet")
        async def child_greet(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, by="child")

    assert Child().actions == ["greet"]
    with TestClient(serve(Child())) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "greet") == {"by": "child"}


def test_overriding_method_calls_super_and_stays_an_action() -> None:
    class Parent(Replying):
        @action
        async def greet(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, by="parent")

    class Child(Parent):
        @action
        async def greet(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, by="child first")
            await super().greet(websocket)

    with TestClient(serve(Child())) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "greet") == {"by": "child first"}
        assert receive_json(ws) == {"by": "parent"}


def test_sibling_subclass_actions_do_not_leak() -> None:
    class Parent(Channel):
        @action
        async def shared(self, **kwargs: Any) -> None: ...

    class Left(Parent):
        @action
        async def left(self, **kwargs: Any) -> None: ...

    class Right(Parent):
        @action
        async def right(self, **kwargs: Any) -> None: ...

    assert Left().actions == ["shared", "left"]
    assert Right().actions == ["shared", "right"]
    assert Parent().actions == ["shared"]
    assert Channel().actions == []


def test_base_channel_subclass_with_action_raises_type_error() -> None:
    with pytest.raises(TypeError, match="subclass Channel"):

        class Relay(BaseChannel):
            @action
            async def say(self, **kwargs: Any) -> None: ...


def test_base_channel_actions_empty() -> None:
    class Relay(BaseChannel):
        pass

    assert Relay().actions == []


def test_undecorated_methods_not_dispatched() -> None:
    class Room(Replying):
        async def helper(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, ran="helper")

        @action
        async def ping(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, ran="ping")

    room = Room()
    assert room.actions == ["ping"]
    with TestClient(serve(room)) as client, client.websocket_connect("/ws") as ws:
        frame = call(ws, "helper")
        assert frame["status"] == "bad"
        assert "helper" in frame["errors"]
        assert call(ws, "reply")["status"] == "bad"
        assert call(ws, "ping") == {"ran": "ping"}


# -- instance actions -----------------------------------------------------------------------------------


def test_instance_action_registered_only_on_that_instance() -> None:
    class Room(Replying):
        @action
        async def ping(self, websocket: WebSocket, **kwargs: Any) -> None:
            await self.reply(websocket, ran="ping")

    first, second = Room(), Room()

    @first.action("wave")
    async def wave(websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        await first.broadcast_to_personal(websocket, {"waved": data.get("to")})

    assert first.actions == ["ping", "wave"]
    assert second.actions == ["ping"]
    assert Room().actions == ["ping"]
    with TestClient(serve({"first": first, "second": second, "fresh": Room()})) as client:
        with client.websocket_connect("/first") as ws:
            assert call(ws, "wave", to="all") == {"waved": "all"}
            assert call(ws, "ping") == {"ran": "ping"}
        for path in ("/second", "/fresh"):
            with client.websocket_connect(path) as ws:
                frame = call(ws, "wave")
                assert frame["status"] == "bad"
                assert frame["action"] == "wave"
                assert frame["close"] is False
                assert call(ws, "ping") == {"ran": "ping"}


def test_instance_action_default_name_is_function_name() -> None:
    room = Channel()

    @room.action()
    def shout(websocket: WebSocket) -> None: ...

    assert room.actions == ["shout"]


def test_instance_action_returns_same_function() -> None:
    room = Channel()

    def handler() -> str:
        return "direct"

    assert room.action("h")(handler) is handler
    assert handler() == "direct"


def test_instance_action_deprecated_and_permission_apply() -> None:
    room = Channel()
    ran: list[str] = []

    @room.action("old", deprecated=True)
    async def old() -> None:
        ran.append("old")

    @room.action("secret", permission=False)
    async def secret() -> None:
        ran.append("secret")

    @room.action("open")
    async def open_(websocket: WebSocket) -> None:
        ran.append("open")
        await room.broadcast_to_personal(websocket, "opened")

    with TestClient(serve(room)) as client, client.websocket_connect("/ws") as ws:
        assert "deprecated" in call(ws, "old")["errors"]
        assert call(ws, "secret")["errors"] == "You do not have permission to perform this action."
        ws.send_json({"action": "open"})
        assert receive(ws)["text"] == "opened"
    assert ran == ["open"]


def test_instance_action_duplicate_of_instance_action_raises_value_error() -> None:
    room = Channel()

    @room.action("say")
    def first() -> None: ...

    with pytest.raises(ValueError, match="'say'"):

        @room.action("say")
        def second() -> None: ...

    assert room.actions == ["say"]


def test_instance_action_duplicate_of_class_action_raises_value_error() -> None:
    class Room(Channel):
        @action
        async def say(self, **kwargs: Any) -> None: ...

    room = Room()
    with pytest.raises(ValueError, match="already has an action"):

        @room.action("say")
        def say() -> None: ...

    assert room.actions == ["say"]


def test_same_instance_action_name_on_two_instances_allowed() -> None:
    first, second = Channel(), Channel()

    @first.action("say")
    async def say_first(websocket: WebSocket) -> None:
        await first.broadcast_to_personal(websocket, "first")

    @second.action("say")
    async def say_second(websocket: WebSocket) -> None:
        await second.broadcast_to_personal(websocket, "second")

    with TestClient(serve({"first": first, "second": second})) as client:
        with client.websocket_connect("/first") as ws:
            ws.send_json({"action": "say"})
            assert receive(ws)["text"] == "first"
        with client.websocket_connect("/second") as ws:
            ws.send_json({"action": "say"})
            assert receive(ws)["text"] == "second"


# -- handler keywords -----------------------------------------------------------------------------------


def test_handler_gets_only_declared_keywords() -> None:
    received: dict[str, Any] = {}

    class Room(Channel):
        @action
        async def only_data(self, data: dict[str, Any]) -> None:
            received["only_data"] = data

        @action
        async def only_websocket(self, websocket: WebSocket) -> None:
            received["only_websocket"] = type(websocket).__name__

        @action
        async def only_channel(self, channel: str) -> None:
            received["only_channel"] = channel

        @action
        async def nothing(self) -> None:
            received["nothing"] = True

        @action
        async def meta(self, action: str, request_id: Any) -> None:
            received["meta"] = (action, request_id)

        @action
        async def done(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, "done")

    with TestClient(serve(Room(channel="kw-room"))) as client, client.websocket_connect("/ws") as ws:
        for name in ("only_data", "only_websocket", "only_channel", "nothing"):
            ws.send_json({"action": name, "x": 1})
        ws.send_json({"action": "meta", "request_id": "m-1"})
        ws.send_json({"action": "done"})
        assert receive(ws)["text"] == "done"
    assert received == {
        "only_data": {"action": "only_data", "x": 1},
        "only_websocket": "WebSocket",
        "only_channel": "kw-room",
        "nothing": True,
        "meta": ("meta", "m-1"),
    }


def test_handler_with_var_keywords_gets_websocket_channel_data() -> None:
    received: dict[str, Any] = {}

    class Room(Channel):
        @action
        async def everything(self, **kwargs: Any) -> None:
            received.update(kwargs)
            await self.broadcast_to_personal(kwargs["websocket"], "done")

    with TestClient(serve(Room(channel="kw-room"))) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "everything", "request_id": 1})
        assert receive(ws)["text"] == "done"
    assert sorted(received) == ["channel", "data", "websocket"]
    assert received["channel"] == "kw-room"
    assert received["data"] == {"action": "everything", "request_id": 1}


def test_function_action_gets_only_declared_keywords() -> None:
    room = Channel()
    received: list[Any] = []

    @room.action("just_data")
    def just_data(data: dict[str, Any]) -> None:
        received.append(data)

    @room.action("done")
    async def done(websocket: WebSocket) -> None:
        await room.broadcast_to_personal(websocket, "done")

    with TestClient(serve(room)) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "just_data", "v": "é"})
        ws.send_json({"action": "done"})
        assert receive(ws)["text"] == "done"
    assert received == [{"action": "just_data", "v": "é"}]


def test_method_with_a_parameter_no_call_fills_fails_when_the_class_is_created() -> None:
    with pytest.raises(TypeError) as info:

        class Room(Channel):
            @action
            async def message(self, ws, channel: str) -> None: ...  # type: ignore[no-untyped-def]

    message = str(info.value)
    assert "Room.message" in message and "'ws'" in message
    for keyword in ("websocket", "channel", "data", "action", "request_id"):
        assert keyword in message
    assert "annotate it with a type" in message and "pydantic model, TypedDict or dataclass" in message


def test_function_with_a_parameter_no_call_fills_fails_when_registered() -> None:
    room = Channel()

    def shout(socket) -> None: ...  # type: ignore[no-untyped-def]

    with pytest.raises(TypeError, match="'socket'"):
        room.action("shout")(shout)
    assert "shout" not in room.actions


def test_handler_unannotated_parameters_with_defaults_or_star_args_are_accepted_and_left_alone() -> None:
    received: list[Any] = []

    class Room(Channel):
        @action
        async def tolerant(self, websocket: WebSocket, *args: Any, volume=3) -> None:  # type: ignore[no-untyped-def]
            received.append((args, volume))
            await self.broadcast_to_personal(websocket, "done")

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "tolerant", "volume": 11})
        assert receive(ws)["text"] == "done"
    assert received == [((), 3)]


def test_positional_only_parameter_fails_at_definition() -> None:
    with pytest.raises(TypeError, match="'websocket'"):

        class Room(Channel):
            @action
            async def odd(self, websocket: WebSocket, /) -> None: ...


# -- request ids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("request_id", [0, 7, -3, 2.5, "abc-1", "", "日本"])
def test_error_frame_echoes_request_id_as_sent(request_id: int | float | str) -> None:
    class Room(Channel):
        @action(deprecated=True)
        async def old(self, **kwargs: Any) -> None: ...

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "missing", request_id=request_id)["request_id"] == request_id
        assert call(ws, "old", request_id=request_id)["request_id"] == request_id


def test_error_frame_without_request_id_has_null_request_id() -> None:
    with TestClient(serve(Channel())) as client, client.websocket_connect("/ws") as ws:
        frame = call(ws, "missing")
        assert "request_id" in frame
        assert frame["request_id"] is None


def test_error_frame_request_id_not_number_or_string_is_null() -> None:
    with TestClient(serve(Channel())) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "missing", request_id={"nested": 1})["request_id"] is None
        assert call(ws, "missing", request_id=True)["request_id"] is None


def test_request_id_not_carried_to_next_frame() -> None:
    with TestClient(serve(Channel())) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "missing", request_id=1)["request_id"] == 1
        assert call(ws, "missing")["request_id"] is None
