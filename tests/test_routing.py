"""``ActionRouter``: actions declared in other modules, with shared options, included into classes or objects."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, WebSocket
from fastapi.testclient import TestClient
from fastapi_limiter.depends import WebSocketRateLimiter
from pyrate_limiter import Limiter, Rate

from fastapi_channels import (
    ActionRouter,
    Channel,
    DenyAll,
    IsAuthenticated,
    PermissionDenied,
    action,
    limiter,
)
from fastapi_channels.decorators import get_action_spec
from fastapi_channels.protocol import MAX_NAME_LENGTH
from fastapi_channels.testing import receive_json, send_action
from tests.apps import router_admin, router_chat
from tests.helpers import call, serve


def reply(name: str, request_id: Any, data: Any) -> dict[str, Any]:
    return {"type": "response", "status": "ok", "action": name, "request_id": request_id, "data": data}


def error(frame: dict[str, Any]) -> tuple[str, Any, int, bool]:
    assert frame["type"] == "response" and frame["status"] == "bad", frame
    return frame["action"], frame["request_id"], frame["code"], frame["close"]


def lobby_class() -> type[Channel]:
    """Return a new channel class with one action of its own and both test routers included."""

    class Lobby(Channel):
        @action()
        async def ping(self) -> str:
            return "pong"

    Lobby.include_router(router_chat.router)
    Lobby.include_router(router_admin.router)
    return Lobby


# -- routers across modules ------------------------------------------------------------------------------


def test_routers_across_modules_included_into_one_channel_all_answer() -> None:
    lobby = lobby_class()(channel="lobby")
    assert lobby.actions == ["ping", "chat.say", "chat.echo", "admin.kick", "admin.whoami"]
    with TestClient(serve(lobby, authenticated=True)) as client:
        with client.websocket_connect("/ws", headers={"x-user": "ann"}) as ann:
            assert call(ann, "ping", request_id=1) == reply("ping", 1, "pong")
            send_action(ann, "chat.say", request_id=2, text="hello")
            frames = [receive_json(ann), receive_json(ann)]
            assert reply("chat.say", 2, {"text": "hello", "length": 5}) in frames
            assert {"action": "chat.said", "text": "hello"} in frames
            assert call(ann, "chat.echo", text="hi") == {"echo": "hi", "action": "chat.echo", "room": "lobby"}
            assert call(ann, "admin.whoami", request_id=3) == reply("admin.whoami", 3, "ann")


def test_router_typed_payload_invalid_answers_validation_error_frame_socket_open() -> None:
    lobby = lobby_class()(channel="lobby")
    with TestClient(serve(lobby)) as client, client.websocket_connect("/ws") as ws:
        frame = call(ws, "chat.say", request_id="r", text="")
        assert error(frame) == ("chat.say", "r", 1007, False)
        assert frame["detail"][0]["loc"] == ["payload", "text"]
        assert call(ws, "ping", request_id=1) == reply("ping", 1, "pong")


# -- shared permission, limits, tags, dependencies, deprecation ------------------------------------------------


def test_router_permission_shared_and_own_both_must_allow() -> None:
    lobby = lobby_class()(channel="lobby")
    with TestClient(serve(lobby, authenticated=True)) as client:
        with client.websocket_connect("/ws") as anonymous:
            # The router's IsAuthenticated denies before the action's own permission is asked.
            assert error(call(anonymous, "admin.whoami", request_id=1)) == ("admin.whoami", 1, 1008, False)
            assert error(call(anonymous, "admin.kick", request_id=2, user="eve")) == ("admin.kick", 2, 1008, False)
            assert call(anonymous, "ping", request_id=3) == reply("ping", 3, "pong")  # still open
        with client.websocket_connect("/ws", headers={"x-user": "bob"}) as bob:
            assert call(bob, "admin.whoami", request_id=4) == reply("admin.whoami", 4, "bob")
            # Authenticated, but not a moderator: the action's own permission denies.
            assert error(call(bob, "admin.kick", request_id=5, user="eve")) == ("admin.kick", 5, 1008, False)
        with client.websocket_connect("/ws", headers={"x-user": "ann"}) as ann:
            send_action(ann, "admin.kick", request_id=6, user="eve")
            frames = [receive_json(ann), receive_json(ann)]
            assert reply("admin.kick", 6, {"kicked": "eve"}) in frames
            assert {"action": "admin.kicked", "user": "eve"} in frames


def test_router_permission_spec_checks_router_first_then_action() -> None:
    router = ActionRouter(permission=IsAuthenticated)

    @router.action(permission=DenyAll)
    async def both() -> None: ...

    @router.action()
    async def shared_only() -> None: ...

    assert router.get_spec("both").permission == (IsAuthenticated, DenyAll)
    assert router.get_spec("shared_only").permission is IsAuthenticated
    assert ActionRouter().action()(both) is both
    assert router.get_spec("both").name == "both"


def test_router_limits_each_action_spends_its_own_budget_then_rate_limit_frame() -> None:
    lobby = lobby_class()(channel="lobby")
    with TestClient(serve(lobby, authenticated=True)) as client:
        with client.websocket_connect("/ws", headers={"x-user": "bob"}) as bob:
            for request_id in (1, 2):
                assert call(bob, "admin.whoami", request_id=request_id) == reply("admin.whoami", request_id, "bob")
            frame = call(bob, "admin.whoami", request_id=3)
            assert error(frame) == ("admin.whoami", 3, 1013, False)
            assert frame["retry_after"] > 0
            # Another action of the router has a budget of its own; actions of other routers have no limit.
            assert error(call(bob, "admin.kick", request_id=4, user="eve")) == ("admin.kick", 4, 1008, False)
            for request_id in (5, 6, 7):
                assert call(bob, "ping", request_id=request_id) == reply("ping", request_id, "pong")


def test_router_limits_add_to_the_actions_own_limiter_in_either_order() -> None:
    router = ActionRouter(limits=[limiter(3, minutes=1)])

    @router.action()
    @limiter(1, seconds=30, identifier=lambda websocket: "everyone")
    async def below() -> str:
        return "below"

    @limiter(1, seconds=30, identifier=lambda websocket: "everyone")
    @router.action()
    async def above() -> str:
        return "above"

    @router.action()
    async def shared() -> str:
        return "shared"

    class Room(Channel):
        pass

    Room.include_router(router)
    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        for name in ("below", "above"):
            assert call(ws, name, request_id=1) == reply(name, 1, name)
            assert error(call(ws, name, request_id=2)) == (name, 2, 1013, False)  # its own 1 per 30 s
        for request_id in (1, 2, 3):
            assert call(ws, "shared", request_id=request_id) == reply("shared", request_id, "shared")
        assert error(call(ws, "shared", request_id=4)) == ("shared", 4, 1013, False)  # the router's 3 per minute


def test_router_limits_contradicting_the_actions_own_raise_at_include() -> None:
    router = ActionRouter(limits=[limiter(5, seconds=1)])

    @router.action()
    @limiter(100, seconds=1)
    async def busy() -> None: ...

    class Room(Channel):
        pass

    with pytest.raises(ValueError, match="contradict"):
        Room.include_router(router)
    assert Room().actions == []


def test_router_dependencies_run_before_each_of_its_actions_and_can_refuse() -> None:
    seen: list[str] = []

    def members_only(websocket: WebSocket) -> None:
        seen.append("checked")
        if websocket.query_params.get("member") != "yes":
            raise PermissionDenied(error_msg="Members only.")

    def current_user(websocket: WebSocket) -> str:
        return websocket.query_params.get("user", "nobody")

    router = ActionRouter(prefix="club.", dependencies=[Depends(members_only)])

    @router.action("hello")
    async def hello(user: str = Depends(current_user)) -> str:
        seen.append("ran")
        return f"hello {user}"

    class Club(Channel):
        pass

    club = Club()
    club.include_router(router)
    with TestClient(serve(club)) as client:
        with client.websocket_connect("/ws?member=yes&user=ann") as member:
            assert call(member, "club.hello", request_id=1) == reply("club.hello", 1, "hello ann")
        with client.websocket_connect("/ws?user=bob") as guest:
            send_action(guest, "club.hello", request_id=2)
            assert error(receive_json(guest)) == ("club.hello", 2, 1008, True)  # PermissionDenied closes by default
    assert seen == ["checked", "ran", "checked"]


def test_router_specs_carry_tags_metadata_and_dependencies_in_order() -> None:
    def shared_dependency() -> None: ...

    def own_dependency() -> None: ...

    shared, own = Depends(shared_dependency), Depends(own_dependency)
    router = ActionRouter(prefix="game.", tags=["game"], dependencies=[shared])

    @router.action("move", summary="Move a piece", tags=["board", "game"], dependencies=[own])
    async def move(piece: str) -> str:
        """Move one of your pieces."""
        return piece

    spec = router.get_spec("game.move")
    assert (spec.name, spec.summary, spec.doc) == ("game.move", "Move a piece", "Move one of your pieces.")
    assert spec.tags == ("game", "board")  # the router's first, each once
    assert spec.dependencies == (shared, own)
    outer = ActionRouter(prefix="v1.", tags=["v1"], dependencies=[own])
    outer.include_router(router)
    nested = outer.get_spec("v1.game.move")
    assert (nested.tags, nested.dependencies) == (("v1", "game", "board"), (own, shared, own))

    class Room(Channel):
        pass

    room = Room()
    room.include_router(outer)
    entry = room.get_action("v1.game.move")
    assert entry.spec == nested
    assert entry.payload is not None and entry.where == f"{__name__}.{move.__qualname__}"


def test_router_deprecated_answers_every_action_with_deprecated_frame() -> None:
    ran: list[str] = []
    router = ActionRouter(deprecated=True)

    @router.action()
    async def old() -> None:
        ran.append("old")

    room = Channel()
    room.include_router(router)
    with TestClient(serve(room)) as client, client.websocket_connect("/ws") as ws:
        frame = call(ws, "old", request_id=1)
        assert error(frame) == ("old", 1, 1008, False)
        assert frame["errors"] == "The action 'old' is deprecated."
    assert ran == []


# -- where routers are included ------------------------------------------------------------------------------


def test_router_included_into_class_reaches_every_object_and_subclasses() -> None:
    router = ActionRouter(prefix="x.")

    @router.action()
    async def where(room: Channel) -> str:
        return room.channel

    class Room(Channel):
        pass

    Room.include_router(router)

    class Special(Room):
        @action()
        async def own(self) -> str:
            return "own"

    first, second, special = Room(channel="first"), Room(channel="second"), Special(channel="special")
    assert special.actions == ["x.where", "own"]
    with TestClient(serve({"first": first, "second": second, "special": special})) as client:
        for name in ("first", "second", "special"):
            with client.websocket_connect(f"/{name}") as ws:
                assert call(ws, "x.where", request_id=name) == reply("x.where", name, name)
    assert Channel().actions == []


def test_router_included_into_object_reaches_that_object_only_even_while_serving() -> None:
    router = ActionRouter()

    @router.action()
    async def late(websocket: WebSocket, room: Channel) -> None:
        await room.broadcast_to_personal(websocket, {"late": room.channel})

    one, other = Channel(channel="one"), Channel(channel="other")
    with TestClient(serve({"one": one, "other": other})) as client, client.websocket_connect("/one") as ws:
        assert call(ws, "late", request_id=1)["errors"] == "The action 'late' does not exist."
        one.include_router(router, prefix="now.")  # the next frame sees it: prepared actions are rebuilt
        assert call(ws, "now.late") == {"late": "one"}
        with client.websocket_connect("/other") as elsewhere:
            assert call(elsewhere, "now.late")["errors"] == "The action 'now.late' does not exist."
    assert (one.actions, other.actions) == (["now.late"], [])


def test_router_included_into_two_channels_runs_in_each() -> None:
    class Chat(Channel):
        pass

    class Support(Channel):
        pass

    router = ActionRouter()

    @router.action()
    async def hello(room: Channel) -> str:
        return type(room).__name__

    Chat.include_router(router)
    Support.include_router(router, prefix="support.")
    with TestClient(serve({"chat": Chat(), "support": Support()})) as client:
        with client.websocket_connect("/chat") as chat, client.websocket_connect("/support") as support:
            assert call(chat, "hello", request_id=1) == reply("hello", 1, "Chat")
            assert call(support, "support.hello", request_id=2) == reply("support.hello", 2, "Support")


def test_router_nested_composes_prefix_permission_and_limits() -> None:
    inner = ActionRouter(prefix="inner.", permission=IsAuthenticated)

    @inner.action()
    async def deep(websocket: WebSocket) -> str:
        return str(websocket.scope["user"].username)

    outer = ActionRouter(prefix="outer.", limits=[limiter(1, minutes=1)])
    outer.include_router(inner, prefix="mid.")
    assert outer.actions == ["outer.mid.inner.deep"]
    room = Channel()
    room.include_router(outer)
    name = "outer.mid.inner.deep"
    with TestClient(serve(room, authenticated=True)) as client:
        with client.websocket_connect("/ws") as anonymous:
            assert error(call(anonymous, name, request_id=1)) == (name, 1, 1008, False)
        with client.websocket_connect("/ws", headers={"x-user": "ann"}) as ann:
            assert call(ann, name, request_id=2) == reply(name, 2, "ann")
            assert error(call(ann, name, request_id=3)) == (name, 3, 1013, False)


def test_router_action_runs_through_an_overridden_on_receive() -> None:
    router = ActionRouter(limits=[limiter(1, minutes=1)])

    @router.action()
    async def named(room: Channel) -> str:
        return room.channel

    class Logged(Channel):
        seen: list[str] = []

        async def on_receive(self, websocket: WebSocket, channel: str, message: str) -> None:
            self.seen.append(message)
            await super().on_receive(websocket, channel, message)

    Logged.include_router(router)
    room = Logged(channel="logged")
    with TestClient(serve(room)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "named", request_id=1) == reply("named", 1, "logged")
        assert error(call(ws, "named", request_id=2)) == ("named", 2, 1013, False)
    assert len(Logged.seen) == 2


class ScoredRoom(Channel):
    """A channel class a router's handler names in its annotation (so it lives at module level)."""

    score = 41


class OtherRoom(Channel):
    """A channel class some handler is not meant for."""


def test_router_handler_annotated_with_its_channel_subclass_gets_the_object() -> None:
    router = ActionRouter()

    @router.action()
    async def bump(room: ScoredRoom) -> int:
        room.score += 1
        return room.score

    class Fresh(ScoredRoom):  # a subclass of the annotated class is one too
        pass

    Fresh.include_router(router)
    with TestClient(serve(Fresh())) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "bump", request_id=1) == reply("bump", 1, 42)
        assert call(ws, "bump", request_id=2) == reply("bump", 2, 43)


# -- mistakes raise at definition time -----------------------------------------------------------------------


def test_router_clash_with_class_action_raises_naming_both() -> None:
    router = ActionRouter()

    @router.action("ping")
    async def other_ping() -> None: ...

    Lobby = lobby_class()
    with pytest.raises(ValueError) as info:
        Lobby.include_router(router)
    message = str(info.value)
    assert "'ping'" in message and "Lobby.ping" in message and "other_ping" in message and "prefix" in message
    assert Lobby().actions == ["ping", "chat.say", "chat.echo", "admin.kick", "admin.whoami"]  # nothing added


def test_router_clash_with_instance_action_raises_and_adds_nothing() -> None:
    room = Channel()

    @room.action("taken")
    async def taken() -> None: ...

    router = ActionRouter()

    @router.action()
    async def fine() -> None: ...

    @router.action("taken")
    async def clashing() -> None: ...

    with pytest.raises(ValueError, match="'taken'.*already has an action of that name"):
        room.include_router(router)
    assert room.actions == ["taken"]


def test_router_clash_between_two_routers_raises() -> None:
    first, second = ActionRouter(prefix="a."), ActionRouter()

    @first.action("x")
    async def from_first() -> None: ...

    @second.action("a.x")
    async def from_second() -> None: ...

    class Room(Channel):
        pass

    Room.include_router(first)
    with pytest.raises(ValueError) as info:
        Room.include_router(second)
    assert "from_first" in str(info.value) and "from_second" in str(info.value)
    outer = ActionRouter()
    outer.include_router(first)
    with pytest.raises(ValueError, match="from_first"):
        outer.include_router(second)


def test_router_included_twice_into_one_channel_raises() -> None:
    class Room(Channel):
        pass

    Room.include_router(router_chat.router)
    with pytest.raises(ValueError, match="include a router once"):
        Room.include_router(router_chat.router)
    room = Room()
    with pytest.raises(ValueError, match="include a router once"):
        room.include_router(router_chat.router)
    room.include_router(router_chat.router, prefix="again.")  # under another prefix, they are other names
    assert "again.chat.say" in room.actions


def test_router_duplicate_name_in_one_router_raises() -> None:
    router = ActionRouter(prefix="p.")

    @router.action("same")
    async def first() -> None: ...

    with pytest.raises(ValueError, match="'p.same'.*first"):

        @router.action("same")
        async def second() -> None: ...

    assert router.actions == ["p.same"]


def test_router_takes_no_actions_after_it_was_included() -> None:
    router = ActionRouter()

    @router.action()
    async def early() -> None: ...

    class Room(Channel):
        pass

    Room.include_router(router)
    with pytest.raises(RuntimeError, match="already included into Room.*before including it"):

        @router.action()
        async def late() -> None: ...

    with pytest.raises(RuntimeError, match="already included"):
        router.include_router(ActionRouter())
    assert Room().actions == router.actions == ["early"]


def test_router_included_into_class_with_subclasses_raises() -> None:
    class Base(Channel):
        pass

    class Child(Base):
        pass

    with pytest.raises(TypeError, match="Child.*before subclassing"):
        Base.include_router(ActionRouter())
    with pytest.raises(TypeError, match="before subclassing"):
        Channel.include_router(ActionRouter())


def test_router_handler_annotated_with_another_channel_class_raises_at_include() -> None:
    class Chat(Channel):
        pass

    router = ActionRouter()

    @router.action()
    async def needs_other(room: OtherRoom) -> None: ...

    with pytest.raises(TypeError, match="included into Chat: annotate it with Chat"):
        Chat.include_router(router)

    class Fine(OtherRoom):
        pass

    Fine.include_router(router)
    assert Fine().actions == ["needs_other"]


@pytest.mark.parametrize("parameter", ["channel", "websocket"])
def test_router_handler_keyword_annotated_with_channel_raises(parameter: str) -> None:
    namespace: dict[str, Any] = {"Channel": Channel}
    exec(f"async def handler({parameter}: Channel) -> None: ...", namespace)
    router = ActionRouter()
    router.action()(namespace["handler"])
    with pytest.raises(TypeError, match=f"'{parameter}'.*cannot receive the channel object"):
        Channel().include_router(router)


def test_router_handler_with_two_channel_parameters_raises() -> None:
    router = ActionRouter()

    @router.action()
    async def greedy(room: Channel, again: Channel) -> None: ...

    with pytest.raises(TypeError, match="'room' and 'again': keep one"):
        Channel().include_router(router)


def test_router_handler_with_unfillable_parameter_raises_at_include() -> None:
    router = ActionRouter()

    @router.action()
    async def broken(room: Channel, mystery) -> None:  # type: ignore[no-untyped-def]
        ...

    with pytest.raises(TypeError, match="'mystery', which no action call fills"):
        Channel().include_router(router)


def test_router_handler_with_unresolvable_annotation_raises_the_signature_error_at_include() -> None:
    router = ActionRouter()

    @router.action()
    async def unknown(room: Channel, item: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(TypeError, match="'NotDefinedAnywhere', which cannot be evaluated"):
        Channel().include_router(router)


def test_router_include_takes_only_routers() -> None:
    with pytest.raises(TypeError, match="takes an ActionRouter"):
        Channel().include_router("chat")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"prefix": 3}, "prefix must be a string"),
        ({"permission": 42}, "is not a permission"),
        ({"tags": "chat"}, "tags must be a list of strings"),
        ({"dependencies": Depends(lambda: None)}, "dependencies must be a list"),
        ({"limits": limiter(1, seconds=1)}, "limits must be a list"),
        ({"limits": [WebSocketRateLimiter(limiter=Limiter(Rate(1, 1000)))]}, "throttle_classes"),
        ({"deprecated": "yes"}, "deprecated must be True or False"),
    ],
)
def test_router_bad_options_raise_type_error(options: dict[str, Any], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        ActionRouter(**options)


def test_router_contradicting_limits_raise_value_error() -> None:
    with pytest.raises(ValueError, match="contradict"):
        ActionRouter(limits=[limiter(10, seconds=1), limiter(5, minutes=1)])


def test_router_action_name_too_long_with_prefix_raises() -> None:
    router = ActionRouter(prefix="p" * MAX_NAME_LENGTH)
    with pytest.raises(TypeError, match=f"at most {MAX_NAME_LENGTH}"):
        router.action("x")(lambda: None)
    short = ActionRouter()
    short.action("x" * MAX_NAME_LENGTH)(lambda: None)
    with pytest.raises(TypeError, match="shorter name or prefix"):
        Channel().include_router(short, prefix="p.")


def test_router_action_bad_name_or_target_raises() -> None:
    router = ActionRouter()
    with pytest.raises(TypeError, match=r"call it, as @room.action\(\)"):
        router.action(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="decorates functions"):
        router.action("x")("not a function")  # type: ignore[type-var]
    with pytest.raises(ValueError, match="cannot include itself"):
        router.include_router(router)
    with pytest.raises(TypeError, match="prefix must be a string"):
        router.include_router(ActionRouter(), prefix=None)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no action named 'missing'"):
        router.get_spec("missing")


# -- the keywords of @action, room.action and router.action ----------------------------------------------------


def test_action_options_unknown_keyword_raises_in_every_form() -> None:
    room, router = Channel(), ActionRouter()
    forms: list[Any] = [action, room.action, router.action]
    for form in forms:
        with pytest.raises(TypeError, match="unknown keyword 'permisson': use one of permission, deprecated"):
            form("x", permisson=DenyAll)
    assert room.actions == router.actions == []


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"summary": 1}, "summary must be a string"),
        ({"tags": [1]}, "tags must be a list of strings"),
        ({"dependencies": "x"}, "dependencies must be a list"),
        ({"response_model_exclude_none": "yes"}, "response_model_exclude_none must be True or False"),
        ({"permission": object()}, "is not a permission"),
    ],
)
def test_action_options_bad_values_raise_in_router_and_room_forms(options: dict[str, Any], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        ActionRouter().action("x", **options)
    with pytest.raises(TypeError, match=match):
        Channel().action("x", **options)


def test_action_tags_from_a_generator_are_kept() -> None:
    @action(tags=(tag for tag in ("a", "b")))
    async def tagged() -> None: ...

    spec = get_action_spec(tagged)
    assert spec is not None and spec.tags == ("a", "b")


def test_room_action_bare_raises_type_error_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"call it, as @room.action\(\)"):
        Channel().action(lambda: None)  # type: ignore[arg-type]
