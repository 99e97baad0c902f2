"""Permissions: every permission form, their composition, and what a denied client sees at connect and per action."""

from __future__ import annotations

import functools
import types
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from fastapi_channels import add_channel
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import PermissionDenied
from fastapi_channels.permission import AllowAny, BasePermission, DenyAll, IsAuthenticated
from fastapi_channels.testing import receive, receive_close, receive_json
from tests.helpers import call, serve

DENIED_MESSAGE = "You do not have permission to perform this action."


def assert_connect_denied(ws: WebSocketTestSession, message: str = DENIED_MESSAGE) -> None:
    """The only things a denied client gets: one error frame, then a 1008 close."""
    frame = receive_json(ws)
    assert frame == {
        "type": "response",
        "status": "bad",
        "action": None,
        "request_id": None,
        "errors": message,
        "code": 1008,
        "close": True,
    }
    assert receive_close(ws)[0] == 1008


def assert_action_denied(frame: dict[str, Any], name: str, request_id: Any = None) -> None:
    assert frame == {
        "type": "response",
        "status": "bad",
        "action": name,
        "request_id": request_id,
        "errors": DENIED_MESSAGE,
        "code": 1008,
        "close": False,
    }


class Room(Channel):
    """Answers ``ping`` and ``probe`` to the caller and relays ``say`` to the channel."""

    @action
    async def ping(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"pong": True})

    @action
    async def say(self, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"said": data["text"]})

    @action
    async def count(self, websocket: WebSocket, channel: str) -> None:
        await self.broadcast_to_personal(websocket, {"count": await self.get_connection_count(channel)})


# -- every permission form ------------------------------------------------------------------------------


class Allow(BasePermission):
    def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return True


class AsyncAllow(BasePermission):
    async def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return True


class AsyncDeny(BasePermission):
    async def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return False


class Forgetful(BasePermission):
    """Forgot to override has_permission."""


class Returns(BasePermission):
    def __init__(self, value: Any) -> None:
        self.value = value

    def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> Any:
        return self.value


class AsyncReturns(Returns):
    async def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> Any:  # type: ignore[override]
        return self.value


def sync_true(websocket: WebSocket, action: str | None, **context: Any) -> bool:
    return True


def sync_false(websocket: WebSocket, action: str | None, **context: Any) -> bool:
    return False


async def async_true(websocket: WebSocket, action: str | None, **context: Any) -> bool:
    return True


async def async_false(websocket: WebSocket, action: str | None, **context: Any) -> bool:
    return False


def returning(value: Any) -> Any:
    def check(websocket: WebSocket, action: str | None, **context: Any) -> Any:
        return value

    return check


def async_returning(value: Any) -> Any:
    async def check(websocket: WebSocket, action: str | None, **context: Any) -> Any:
        return value

    return check


class CallableObject:
    def __init__(self, value: bool) -> None:
        self.value = value

    def __call__(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return self.value


def _partial_target(value: bool, websocket: WebSocket, action: str | None, **context: Any) -> bool:
    return value


FORMS: list[Any] = [
    # Classes and instances.
    pytest.param(Allow, True, id="subclass-allows"),
    pytest.param(Allow(), True, id="subclass-instance-allows"),
    pytest.param(BasePermission, False, id="base-class-denies"),
    pytest.param(BasePermission(), False, id="base-instance-denies"),
    pytest.param(Forgetful, False, id="subclass-not-overriding-denies"),
    pytest.param(AllowAny, True, id="allow-any"),
    pytest.param(AllowAny(), True, id="allow-any-instance"),
    pytest.param(DenyAll, False, id="deny-all"),
    pytest.param(DenyAll(), False, id="deny-all-instance"),
    pytest.param(AsyncAllow, True, id="async-subclass-allows"),
    pytest.param(AsyncDeny(), False, id="async-subclass-denies"),
    # Compositions of classes.
    pytest.param(AllowAny & DenyAll, False, id="class-and-denies"),
    pytest.param(AllowAny & Allow, True, id="class-and-allows"),
    pytest.param(DenyAll | AllowAny, True, id="class-or-allows"),
    pytest.param(DenyAll | DenyAll, False, id="class-or-denies"),
    pytest.param(~DenyAll, True, id="class-not-deny"),
    pytest.param(~AllowAny, False, id="class-not-allow"),
    # Compositions of instances.
    pytest.param(AllowAny() & DenyAll(), False, id="instance-and-denies"),
    pytest.param(Allow() & AllowAny(), True, id="instance-and-allows"),
    pytest.param(DenyAll() | AllowAny(), True, id="instance-or-allows"),
    pytest.param(~DenyAll(), True, id="instance-not-deny"),
    pytest.param(~AllowAny(), False, id="instance-not-allow"),
    pytest.param(AllowAny() & DenyAll, False, id="instance-and-class"),
    pytest.param(DenyAll | Allow(), True, id="class-or-instance"),
    # Nested, mixing sync and async has_permission.
    pytest.param(~(AllowAny & DenyAll), True, id="not-of-and"),
    pytest.param((AsyncAllow & Allow) | DenyAll, True, id="async-and-sync-or"),
    pytest.param(AsyncDeny | ~AsyncAllow, False, id="async-or-not-async"),
    pytest.param(AsyncAllow() & ~AsyncDeny(), True, id="async-instances-and-not"),
    pytest.param(~~AsyncDeny, False, id="double-not"),
    pytest.param((Allow | DenyAll) & (AsyncDeny | AsyncAllow) & ~Forgetful, True, id="deep-nesting-allows"),
    # Mixed with callables, bools and None.
    pytest.param(AllowAny & sync_false, False, id="class-and-callable"),
    pytest.param(sync_true | DenyAll, True, id="callable-or-class"),
    pytest.param(async_false | AsyncDeny(), False, id="async-callable-or-instance"),
    pytest.param(~DenyAll & async_true, True, id="not-and-async-callable"),
    pytest.param(True & DenyAll, False, id="bool-and-class"),
    pytest.param(False | AllowAny, True, id="bool-or-class"),
    pytest.param(AllowAny & None, True, id="class-and-none"),
    pytest.param(None | DenyAll(), True, id="none-allows-in-or"),
    pytest.param(None & DenyAll, False, id="none-and-class"),
    pytest.param(AllowAny & [Allow, True], True, id="class-and-list"),
    # Callables.
    pytest.param(sync_true, True, id="sync-callable-true"),
    pytest.param(sync_false, False, id="sync-callable-false"),
    pytest.param(async_true, True, id="async-callable-true"),
    pytest.param(async_false, False, id="async-callable-false"),
    pytest.param(lambda websocket, action, **context: True, True, id="lambda-true"),
    pytest.param(CallableObject(True), True, id="callable-object-true"),
    pytest.param(CallableObject(False), False, id="callable-object-false"),
    pytest.param(functools.partial(_partial_target, True), True, id="partial-true"),
    pytest.param(functools.partial(_partial_target, False), False, id="partial-false"),
    # Bools and None.
    pytest.param(True, True, id="true"),
    pytest.param(False, False, id="false"),
    pytest.param(None, True, id="none"),
    # Lists and tuples: all must allow.
    pytest.param([AllowAny, True], True, id="list-all-allow"),
    pytest.param([AllowAny, DenyAll], False, id="list-one-denies"),
    pytest.param((AllowAny(), async_true, Allow), True, id="tuple-all-allow"),
    pytest.param((async_true, async_false), False, id="tuple-async-denies"),
    pytest.param([], True, id="empty-list"),
    pytest.param([[AllowAny], (True, None)], True, id="nested-lists-allow"),
    pytest.param([[AllowAny], (True, False)], False, id="nested-lists-deny"),
    # Results that are not truthy deny; truthy ones allow.
    pytest.param(returning(0), False, id="callable-returns-0"),
    pytest.param(returning(""), False, id="callable-returns-empty-string"),
    pytest.param(returning(None), False, id="callable-returns-none"),
    pytest.param(returning([]), False, id="callable-returns-empty-list"),
    pytest.param(async_returning(0), False, id="async-callable-returns-0"),
    pytest.param(async_returning(None), False, id="async-callable-returns-none"),
    pytest.param(Returns(None), False, id="permission-returns-none"),
    pytest.param(Returns(0), False, id="permission-returns-0"),
    pytest.param(AsyncReturns(""), False, id="async-permission-returns-empty-string"),
    pytest.param(returning(1), True, id="callable-returns-1"),
    pytest.param(async_returning("yes"), True, id="async-callable-returns-string"),
    pytest.param(Returns({"ok": 1}), True, id="permission-returns-dict"),
]


@pytest.mark.parametrize(("permission", "allowed"), FORMS)
def test_action_permission_form_allows_or_denies(permission: Any, allowed: bool) -> None:
    ran: list[str] = []

    class Guarded(Room):
        @action(permission=permission)
        async def probe(self, websocket: WebSocket) -> None:
            ran.append("probe")
            await self.broadcast_to_personal(websocket, {"probed": True})

    app = serve(Guarded())
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        frame = call(ws, "probe", request_id=1)
        if allowed:
            assert frame == {"probed": True}
            assert ran == ["probe"]
        else:
            assert_action_denied(frame, "probe", 1)
            assert ran == []
        assert call(ws, "ping") == {"pong": True}


@pytest.mark.parametrize(("permission", "allowed"), FORMS)
def test_channel_permission_form_admits_or_refuses_connection(permission: Any, allowed: bool) -> None:
    app = serve(Room(permission_classes=permission))
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        if allowed:
            assert call(ws, "ping") == {"pong": True}
        else:
            assert_connect_denied(ws)


def test_instance_action_permission_denies() -> None:
    room = Room()

    @room.action("guarded", permission=AsyncDeny | sync_false)
    async def guarded(websocket: WebSocket) -> None:
        await room.broadcast_to_personal(websocket, {"ran": True})

    @room.action("open", permission=~AsyncDeny)
    async def open_(websocket: WebSocket) -> None:
        await room.broadcast_to_personal(websocket, {"open": True})

    with TestClient(serve(room)) as client, client.websocket_connect("/ws") as ws:
        assert_action_denied(call(ws, "guarded"), "guarded")
        assert call(ws, "open") == {"open": True}


def test_permission_callable_receives_websocket_action_and_channel() -> None:
    seen: list[tuple[str, str | None, dict[str, Any]]] = []

    def record(websocket: WebSocket, action: str | None, **context: Any) -> bool:
        seen.append((type(websocket).__name__, action, context))
        return True

    class Recorded(Room):
        @action(permission=record)
        async def probe(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"probed": True})

    app = serve(Recorded(channel="lobby", permission_classes=record))
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "probe") == {"probed": True}
    assert seen == [
        ("WebSocket", None, {"channel": "lobby"}),
        ("WebSocket", "probe", {"channel": "lobby"}),
        ("WebSocket", "probe", {"channel": "lobby"}),
    ]


def test_composition_short_circuits() -> None:
    checked: list[str] = []

    class Named(BasePermission):
        def __init__(self, name: str, result: bool) -> None:
            self.name, self.result = name, result

        async def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
            checked.append(self.name)
            return self.result

    class Guarded(Room):
        @action(permission=Named("and-first", False) & Named("and-second", True))
        async def both(self, websocket: WebSocket) -> None: ...

        @action(permission=Named("or-first", True) | Named("or-second", False))
        async def either(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"either": True})

    with TestClient(serve(Guarded())) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "both")["errors"] == DENIED_MESSAGE
        assert call(ws, "either") == {"either": True}
    assert checked == ["and-first", "or-first"]


def test_permission_raising_permission_denied_custom_message_in_frame() -> None:
    def members_only(websocket: WebSocket, action: str | None, **context: Any) -> bool:
        raise PermissionDenied(error_msg="Members only.", close=False)

    class Guarded(Room):
        @action(permission=members_only)
        async def probe(self, websocket: WebSocket) -> None: ...

    with TestClient(serve(Guarded())) as client, client.websocket_connect("/ws") as ws:
        frame = call(ws, "probe", request_id="p")
        assert frame["errors"] == "Members only."
        assert frame["action"] == "probe"
        assert frame["request_id"] == "p"
        assert frame["close"] is False
        assert call(ws, "ping") == {"pong": True}


def test_connect_permission_raising_non_closing_denial_still_closes_1008() -> None:
    async def members_only(websocket: WebSocket, action: str | None, **context: Any) -> bool:
        raise PermissionDenied(error_msg="Members only.", close=False)

    with TestClient(serve(Room(permission_classes=members_only))) as client:
        with client.websocket_connect("/ws") as ws:
            assert_connect_denied(ws, "Members only.")


# -- invalid permissions --------------------------------------------------------------------------------

INVALID = [42, 0, 1.5, "admin", b"admin", object(), {"a": 1}, {AllowAny}, [AllowAny, 42], (True, "x"), [[None, 3]]]


@pytest.mark.parametrize("permission", INVALID, ids=repr)
def test_action_invalid_permission_raises_type_error_at_definition(permission: Any) -> None:
    with pytest.raises(TypeError, match="not a permission"):

        class Guarded(Channel):
            @action(permission=permission)
            async def probe(self) -> None: ...


@pytest.mark.parametrize("permission", INVALID, ids=repr)
def test_instance_action_invalid_permission_raises_type_error(permission: Any) -> None:
    room = Channel()
    with pytest.raises(TypeError, match="not a permission"):

        @room.action("probe", permission=permission)
        async def probe() -> None: ...

    assert room.actions == []


@pytest.mark.parametrize("permission", INVALID, ids=repr)
def test_channel_invalid_permission_classes_raises_type_error(permission: Any) -> None:
    with pytest.raises(TypeError, match="not a permission"):
        Room(permission_classes=permission)

    class Configured(Room):
        permission_classes = permission

    with pytest.raises(TypeError, match="not a permission"):
        Configured()
    with pytest.raises(TypeError, match="not a permission"):
        add_channel(FastAPI(), permission_classes=permission)


@pytest.mark.parametrize(
    "compose",
    [
        lambda: AllowAny & 42,
        lambda: 42 & AllowAny,
        lambda: "admin" | AllowAny(),
        lambda: AllowAny() | object(),
        lambda: DenyAll & [AllowAny, 1.5],
    ],
    ids=["class-and-int", "int-and-class", "str-or-instance", "instance-or-object", "class-and-bad-list"],
)
def test_composition_with_invalid_operand_raises_type_error(compose: Any) -> None:
    with pytest.raises(TypeError, match="not a permission"):
        compose()


# -- IsAuthenticated with Starlette's authentication -----------------------------------------------------


class WhoAmI(Room):
    @action
    async def whoami(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"user": websocket.user.display_name})


def test_is_authenticated_channel_user_connects() -> None:
    app = serve(WhoAmI(permission_classes=IsAuthenticated), authenticated=True)
    with TestClient(app) as client, client.websocket_connect("/ws", headers={"x-user": "alice"}) as ws:
        assert call(ws, "whoami") == {"user": "alice"}


def test_is_authenticated_channel_anonymous_refused_1008() -> None:
    app = serve(WhoAmI(permission_classes=IsAuthenticated), authenticated=True)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        assert_connect_denied(ws)


def test_is_authenticated_action_anonymous_denied_socket_stays_open() -> None:
    class Mixed(WhoAmI):
        @action(permission=IsAuthenticated)
        async def secret(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"secret": 42})

        @action(permission=~IsAuthenticated)
        async def sign_up(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"signed_up": True})

    app = serve(Mixed(), authenticated=True)
    with TestClient(app) as client:
        with client.websocket_connect("/ws") as anonymous:
            assert_action_denied(call(anonymous, "secret", request_id=2), "secret", 2)
            assert call(anonymous, "sign_up") == {"signed_up": True}
            assert call(anonymous, "ping") == {"pong": True}
        with client.websocket_connect("/ws", headers={"x-user": "bob"}) as bob:
            assert call(bob, "secret") == {"secret": 42}
            assert_action_denied(call(bob, "sign_up"), "sign_up")


def test_is_authenticated_composed_with_callable_on_user_name() -> None:
    def is_admin(websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return websocket.user.display_name == "admin"

    class Admin(WhoAmI):
        @action(permission=IsAuthenticated & is_admin)
        async def shutdown(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"shutdown": True})

    app = serve(Admin(permission_classes=IsAuthenticated), authenticated=True)
    with TestClient(app) as client:
        with client.websocket_connect("/ws", headers={"x-user": "admin"}) as admin:
            assert call(admin, "shutdown") == {"shutdown": True}
        with client.websocket_connect("/ws", headers={"x-user": "carol"}) as carol:
            assert_action_denied(call(carol, "shutdown"), "shutdown")
            assert call(carol, "whoami") == {"user": "carol"}


def test_is_authenticated_without_authentication_middleware_refused() -> None:
    app = serve(Room(permission_classes=IsAuthenticated))
    with TestClient(app) as client, client.websocket_connect("/ws", headers={"x-user": "alice"}) as ws:
        assert_connect_denied(ws)


# -- channel-level permission_classes, end to end on every backend ---------------------------------------


def test_channel_permission_class_attribute_refuses_connection(backend: dict[str, Any], channel_name: str) -> None:
    class Closed(Room):
        permission_classes = DenyAll

    app = serve(Closed(channel=channel_name), **backend)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        assert_connect_denied(ws)


def test_channel_permission_constructor_keyword_wins_over_class_attribute(
    backend: dict[str, Any], channel_name: str
) -> None:
    class Closed(Room):
        permission_classes = DenyAll

    class Open(Room):
        permission_classes = AllowAny

    app = serve(
        {
            "opened": Closed(channel=channel_name, permission_classes=AllowAny),
            "closed": Open(channel=channel_name, permission_classes=DenyAll),
            "default": Closed(channel=channel_name),
        },
        **backend,
    )
    with TestClient(app) as client:
        with client.websocket_connect("/opened") as ws:
            assert call(ws, "ping") == {"pong": True}
        with client.websocket_connect("/closed") as ws:
            assert_connect_denied(ws)
        with client.websocket_connect("/default") as ws:
            assert_connect_denied(ws)


def test_add_channel_permission_default_reaches_already_defined_channel(
    backend: dict[str, Any], channel_name: str
) -> None:
    class Plain(Room):
        pass

    class OwnPermission(Room):
        permission_classes = AllowAny

    # Class and objects exist before any app is configured.
    plain, own = Plain(channel=channel_name), OwnPermission(channel=channel_name)
    strict = serve({"plain": plain, "own": own}, permission_classes=DenyAll, **backend)
    lenient = serve({"plain": plain}, **backend)
    with TestClient(strict) as client:
        with client.websocket_connect("/plain") as ws:
            assert_connect_denied(ws)
        with client.websocket_connect("/own") as ws:
            assert call(ws, "ping") == {"pong": True}
    # The default belongs to one app: the same channel object admits everyone in another app.
    with TestClient(lenient) as client, client.websocket_connect("/plain") as ws:
        assert call(ws, "ping") == {"pong": True}


def test_add_channel_permission_default_checked_for_every_action(backend: dict[str, Any], channel_name: str) -> None:
    def no_say(websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return action != "say"

    app = serve(Room(channel=channel_name), permission_classes=no_say, **backend)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        assert_action_denied(call(ws, "say", text="hi", request_id=3), "say", 3)
        assert call(ws, "ping") == {"pong": True}


def test_channel_permission_checked_for_every_action(backend: dict[str, Any], channel_name: str) -> None:
    async def read_only(websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return action in (None, "ping", "count")

    app = serve(Room(channel=channel_name, permission_classes=read_only), **backend)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        assert_action_denied(call(ws, "say", text="hi"), "say")
        assert call(ws, "ping") == {"pong": True}


def test_connect_denied_client_never_receives_channel_messages(backend: dict[str, Any], channel_name: str) -> None:
    app = serve(
        {"member": Room(channel=channel_name), "denied": Room(channel=channel_name, permission_classes=DenyAll)},
        **backend,
    )
    with TestClient(app) as client:
        with client.websocket_connect("/member") as member, client.websocket_connect("/denied") as denied:
            assert call(member, "say", text="while you knock") == {"said": "while you knock"}
            # The denied client was never in the channel: it gets its error frame and close, nothing else.
            assert_connect_denied(denied)
            assert call(member, "count") == {"count": 1}
            assert call(member, "say", text="after") == {"said": "after"}


def test_connect_denied_client_cannot_send_to_channel(backend: dict[str, Any], channel_name: str) -> None:
    class Relay(BaseChannel):
        pass

    app = serve(
        {"member": Relay(channel=channel_name), "denied": Relay(channel=channel_name, permission_classes=DenyAll)},
        **backend,
    )
    with TestClient(app) as client:
        with client.websocket_connect("/member") as member:
            with client.websocket_connect("/denied") as denied:
                denied.send_text("intruder message")
                assert_connect_denied(denied)
            member.send_text("member message")
            message = receive(member)
            assert message == {"type": "websocket.send", "text": "member message"}


def test_action_denied_error_frame_socket_stays_open_handler_not_run(
    backend: dict[str, Any], channel_name: str
) -> None:
    ran: list[str] = []

    class Guarded(Room):
        @action(permission=False)
        async def announce(self, channel: str) -> None:
            ran.append("announce")
            await self.broadcast_to_channel(channel, {"announced": True})

    app = serve(Guarded(channel=channel_name), **backend)
    with TestClient(app) as client:
        with client.websocket_connect("/ws") as caller, client.websocket_connect("/ws") as other:
            assert_action_denied(call(caller, "announce", request_id="a"), "announce", "a")
            assert call(caller, "ping") == {"pong": True}
            # Nobody in the channel heard the denied action: the next message is the allowed one.
            assert call(caller, "say", text="allowed") == {"said": "allowed"}
            assert receive_json(other) == {"said": "allowed"}
    assert ran == []


def test_action_permission_and_channel_permission_both_required(backend: dict[str, Any], channel_name: str) -> None:
    def not_bob(websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return websocket.query_params.get("name") != "bob"

    class Guarded(Room):
        @action(permission=lambda websocket, action, **context: websocket.query_params.get("name") != "carol")
        async def probe(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"probed": True})

    app = serve(Guarded(channel=channel_name, permission_classes=not_bob), **backend)
    with TestClient(app) as client:
        with client.websocket_connect("/ws?name=alice") as alice:
            assert call(alice, "probe") == {"probed": True}
        with client.websocket_connect("/ws?name=carol") as carol:
            assert_action_denied(call(carol, "probe"), "probe")
        with client.websocket_connect("/ws?name=bob") as bob:
            assert_connect_denied(bob)


def test_permission_class_or_none_at_runtime_is_a_type_union() -> None:
    # FastAPI and pydantic evaluate annotations such as ``IsAdmin | None`` at runtime.
    union = AllowAny | None
    assert isinstance(AllowAny(), union)
    assert isinstance(None, union)
    assert isinstance(None | AllowAny, types.UnionType)
    assert isinstance(AllowAny | int, types.UnionType)
