"""Rate limits: ``@limiter`` on actions, channel-wide and default limits, per-client budgets and Redis buckets."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from fastapi_limiter.depends import WebSocketRateLimiter
from pyrate_limiter import Duration, InMemoryStateStore, Limiter, Rate
from redis.asyncio import Redis
from starlette.authentication import BaseUser, SimpleUser
from starlette.testclient import WebSocketTestSession
from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_channels import throttling
from fastapi_channels.api import FastAPIChannel
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import RateLimitExceeded
from fastapi_channels.testing import receive, receive_json
from fastapi_channels.throttling import KeyedBucketFactory, default_identifier, limiter
from tests.helpers import call, serve

# How long a test waits for a bucket to refill before it fails.
REFILL_DEADLINE = 10.0


def is_rate_limited(frame: Any) -> bool:
    return isinstance(frame, dict) and frame.get("status") == "bad" and frame.get("code") == 1013


def assert_rate_limited(frame: Any, name: str, request_id: Any = None, *, max_retry_after: float = 3600) -> None:
    """A ``RateLimitExceeded`` error frame that keeps the socket open and says when to retry."""
    assert frame["type"] == "response"
    assert frame["status"] == "bad"
    assert frame["action"] == name
    assert frame["request_id"] == request_id
    assert frame["code"] == 1013
    assert frame["close"] is False
    assert frame["errors"].startswith("Too many requests")
    assert 0 < frame["retry_after"] <= max_retry_after


def wait_until_allowed(ws: WebSocketTestSession, name: str, expected: Any) -> int:
    """Call ``name`` until it answers ``expected`` instead of a rate-limit frame; return the refusals seen."""
    deadline = time.monotonic() + REFILL_DEADLINE
    refusals = 0
    while True:
        frame = call(ws, name)
        if frame == expected:
            return refusals
        assert is_rate_limited(frame), frame
        refusals += 1
        assert time.monotonic() < deadline, f"{name!r} was still rate limited after {REFILL_DEADLINE} s"
        # Waiting is what the client is told to do: the frame says how long.
        time.sleep(max(float(frame["retry_after"]), 0.005))


class Counted(Channel):
    """Counts the runs of every action and answers ``ping`` without any limit."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs: list[str] = []

    @action
    async def ping(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"pong": True})


def config_of(app: FastAPI) -> FastAPIChannel:
    config = app.state.fastapi_channels
    assert isinstance(config, FastAPIChannel)
    return config


class PeerFromHeader:
    """Take the peer address from ``x-test-peer``, as uvicorn's proxy-headers middleware does behind a proxy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = dict(scope.get("headers", [])).get(b"x-test-peer")
        if scope["type"] == "websocket" and peer:
            scope = {**scope, "client": (peer.decode(), 40000)}
        await self.app(scope, receive, send)


def limited_room(position: str, **limit: Any) -> type[Counted]:
    """A room whose ``hit`` action has ``limiter(**limit)`` above or below ``@action``."""
    spec = limiter(**limit)
    if position == "above":

        class Above(Counted):
            @spec
            @action
            async def hit(self, websocket: WebSocket) -> None:
                self.runs.append("hit")
                await self.broadcast_to_personal(websocket, {"hit": True})

        return Above
    assert position == "below"

    class Below(Counted):
        @action
        @spec
        async def hit(self, websocket: WebSocket) -> None:
            self.runs.append("hit")
            await self.broadcast_to_personal(websocket, {"hit": True})

    return Below


# -- @limiter on methods and function actions -----------------------------------------------------------


@pytest.mark.parametrize("position", ["above", "below"])
def test_limiter_on_method_over_limit_error_frame_socket_stays_open(
    position: str, backend: dict[str, Any], channel_name: str
) -> None:
    room = limited_room(position, times=2, minutes=1)(channel=channel_name)
    with TestClient(serve(room, **backend)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "hit") == {"hit": True}
        assert call(ws, "hit") == {"hit": True}
        assert_rate_limited(call(ws, "hit", request_id="third"), "hit", "third", max_retry_after=60)
        assert call(ws, "ping") == {"pong": True}
        assert_rate_limited(call(ws, "hit", request_id=4), "hit", 4, max_retry_after=60)
    assert room.runs == ["hit", "hit"]


@pytest.mark.parametrize("position", ["above", "below"])
def test_limiter_period_passed_action_allowed_again(position: str, backend: dict[str, Any], channel_name: str) -> None:
    room = limited_room(position, times=1, milliseconds=600)(channel=channel_name)
    with TestClient(serve(room, **backend)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "hit") == {"hit": True}
        assert_rate_limited(call(ws, "hit"), "hit", max_retry_after=0.6)
        wait_until_allowed(ws, "hit", {"hit": True})
        assert_rate_limited(call(ws, "hit"), "hit", max_retry_after=0.6)
    assert room.runs == ["hit", "hit"]


@pytest.mark.parametrize("position", ["above", "below"])
def test_limiter_on_instance_function_action(position: str, backend: dict[str, Any], channel_name: str) -> None:
    room = Counted(channel=channel_name)
    runs: list[str] = []

    async def wave(websocket: WebSocket) -> None:
        runs.append("wave")
        await room.broadcast_to_personal(websocket, {"waved": True})

    if position == "above":
        limiter(times=1, minutes=1)(room.action("wave")(wave))
    else:
        room.action("wave")(limiter(times=1, minutes=1)(wave))

    with TestClient(serve(room, **backend)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "wave") == {"waved": True}
        assert_rate_limited(call(ws, "wave", request_id=2), "wave", 2, max_retry_after=60)
        assert call(ws, "ping") == {"pong": True}
    assert runs == ["wave"]


def test_limiter_stacked_above_instance_action_decorator(backend: dict[str, Any], channel_name: str) -> None:
    room = Counted(channel=channel_name)

    @limiter(times=2, minutes=1)
    @room.action("clap")
    async def clap(websocket: WebSocket) -> None:
        await room.broadcast_to_personal(websocket, {"clapped": True})

    with TestClient(serve(room, **backend)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "clap") == {"clapped": True}
        assert call(ws, "clap") == {"clapped": True}
        assert_rate_limited(call(ws, "clap"), "clap")


def test_limiter_per_action_budgets_independent(backend: dict[str, Any], channel_name: str) -> None:
    class Room(Counted):
        @limiter(times=1, minutes=1)
        @action
        async def first(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"first": True})

        @limiter(times=1, minutes=1)
        @action
        async def second(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"second": True})

    with TestClient(serve(Room(channel=channel_name), **backend)) as client:
        with client.websocket_connect("/ws") as ws:
            assert call(ws, "first") == {"first": True}
            assert_rate_limited(call(ws, "first"), "first")
            assert call(ws, "second") == {"second": True}


def test_limiter_stacked_tighter_limit_applies(backend: dict[str, Any], channel_name: str) -> None:
    class Room(Counted):
        @limiter(times=1, minutes=1)
        @limiter(times=10, hours=1)
        @action
        async def hit(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"hit": True})

    with TestClient(serve(Room(channel=channel_name), **backend)) as client:
        with client.websocket_connect("/ws") as ws:
            assert call(ws, "hit") == {"hit": True}
            assert_rate_limited(call(ws, "hit"), "hit")


# -- whose budget ---------------------------------------------------------------------------------------


def who_from_query(websocket: WebSocket) -> str:
    return websocket.query_params["who"]


async def async_who_from_query(websocket: WebSocket) -> str:
    return websocket.query_params["who"]


@pytest.mark.parametrize("identifier", [who_from_query, async_who_from_query], ids=["sync", "async"])
def test_limiter_custom_identifier_clients_do_not_share_budget(
    identifier: Callable[[WebSocket], Any], backend: dict[str, Any], channel_name: str
) -> None:
    class Room(Counted):
        @limiter(times=1, minutes=1, identifier=identifier)
        @action
        async def hit(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"hit": True})

    with TestClient(serve(Room(channel=channel_name), **backend)) as client:
        with client.websocket_connect("/ws?who=alice") as alice, client.websocket_connect("/ws?who=bob") as bob:
            assert call(alice, "hit") == {"hit": True}
            assert_rate_limited(call(alice, "hit"), "hit")
            # fastapi-limiter issue #80: one client's spending must not limit another.
            assert call(bob, "hit") == {"hit": True}
            assert_rate_limited(call(bob, "hit"), "hit")
            assert_rate_limited(call(alice, "hit"), "hit")
        with client.websocket_connect("/ws?who=alice") as alice_again:
            assert_rate_limited(call(alice_again, "hit"), "hit")


def test_limiter_default_identifier_peers_do_not_share_budget(backend: dict[str, Any], channel_name: str) -> None:
    room = limited_room("above", times=1, minutes=1)(channel=channel_name)
    app = serve(room, **backend)
    app.add_middleware(PeerFromHeader)
    with TestClient(app) as client:
        with client.websocket_connect("/ws", headers={"x-test-peer": "10.0.0.1"}) as first:
            assert call(first, "hit") == {"hit": True}
            assert_rate_limited(call(first, "hit"), "hit")
        with client.websocket_connect("/ws", headers={"x-test-peer": "10.0.0.2"}) as second:
            assert call(second, "hit") == {"hit": True}
        with client.websocket_connect("/ws", headers={"x-test-peer": "10.0.0.1"}) as first_again:
            assert_rate_limited(call(first_again, "hit"), "hit")


def test_limiter_default_identifier_ignores_x_forwarded_for(backend: dict[str, Any], channel_name: str) -> None:
    room = limited_room("above", times=1, minutes=1)(channel=channel_name)
    with TestClient(serve(room, **backend)) as client:
        with client.websocket_connect("/ws", headers={"x-forwarded-for": "1.1.1.1"}) as first:
            assert call(first, "hit") == {"hit": True}
        # Same peer, another forged address: still the same budget.
        with client.websocket_connect("/ws", headers={"x-forwarded-for": "2.2.2.2, 3.3.3.3"}) as second:
            assert_rate_limited(call(second, "hit"), "hit")


def test_limiter_default_identifier_authenticated_user_has_own_budget(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = limited_room("above", times=1, minutes=1)(channel=channel_name)
    app = serve(room, authenticated=True, **backend)
    with TestClient(app) as client:
        with client.websocket_connect("/ws", headers={"x-user": "alice"}) as alice:
            assert call(alice, "hit") == {"hit": True}
            assert_rate_limited(call(alice, "hit"), "hit")
        # Same peer address, another user: another budget.
        with client.websocket_connect("/ws", headers={"x-user": "bob"}) as bob:
            assert call(bob, "hit") == {"hit": True}
        # Anonymous clients fall back to their peer address, which no user has spent.
        with client.websocket_connect("/ws") as anonymous:
            assert call(anonymous, "hit") == {"hit": True}
        # The same user on a new connection spends the same budget.
        with client.websocket_connect("/ws", headers={"x-user": "alice"}) as alice_again:
            assert_rate_limited(call(alice_again, "hit"), "hit")


def test_limiter_authenticated_user_keeps_budget_across_peers(backend: dict[str, Any], channel_name: str) -> None:
    room = limited_room("above", times=1, minutes=1)(channel=channel_name)
    app = serve(room, authenticated=True, **backend)
    app.add_middleware(PeerFromHeader)
    with TestClient(app) as client:
        with client.websocket_connect("/ws", headers={"x-user": "alice", "x-test-peer": "10.0.0.1"}) as home:
            assert call(home, "hit") == {"hit": True}
        with client.websocket_connect("/ws", headers={"x-user": "alice", "x-test-peer": "10.0.0.2"}) as office:
            assert_rate_limited(call(office, "hit"), "hit")


async def _no_receive() -> dict[str, Any]:
    raise AssertionError("default_identifier must not read from the socket")


async def _no_send(message: dict[str, Any]) -> None:
    raise AssertionError("default_identifier must not write to the socket")


def websocket_for(**scope: Any) -> WebSocket:
    return WebSocket({"type": "websocket", "path": "/ws", "headers": [], **scope}, _no_receive, _no_send)


def test_default_identifier_peer_address_not_forwarded_header() -> None:
    websocket = websocket_for(client=("192.0.2.7", 5000), headers=[(b"x-forwarded-for", b"203.0.113.9")])
    assert default_identifier(websocket) == "ip:192.0.2.7"


def test_default_identifier_without_peer_is_unknown() -> None:
    assert default_identifier(websocket_for(client=None)) == "ip:unknown"


def test_default_identifier_authenticated_user_wins_over_peer() -> None:
    websocket = websocket_for(client=("192.0.2.7", 5000), user=SimpleUser("alice"))
    assert default_identifier(websocket) == "user:alice"


def test_default_identifier_unauthenticated_user_uses_peer() -> None:
    from starlette.authentication import UnauthenticatedUser

    websocket = websocket_for(client=("192.0.2.7", 5000), user=UnauthenticatedUser())
    assert default_identifier(websocket) == "ip:192.0.2.7"


# -- ws_callback ----------------------------------------------------------------------------------------


def test_limiter_ws_callback_called_with_retry_after_action_not_run(backend: dict[str, Any], channel_name: str) -> None:
    calls: list[tuple[str, Any]] = []
    room = Counted(channel=channel_name)

    async def too_fast(websocket: WebSocket, retry_after_ms: int) -> None:
        calls.append((type(websocket).__name__, retry_after_ms))
        await room.broadcast_to_personal(websocket, {"slow_down_ms": retry_after_ms})

    @limiter(times=1, minutes=1, ws_callback=too_fast)
    @room.action("hit")
    async def hit(websocket: WebSocket) -> None:
        room.runs.append("hit")
        await room.broadcast_to_personal(websocket, {"hit": True})

    with TestClient(serve(room, **backend)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "hit") == {"hit": True}
        frame = call(ws, "hit")
        assert list(frame) == ["slow_down_ms"]
        assert 0 < frame["slow_down_ms"] <= 60_000
        # Nothing else was sent for the refused request: the next frame answers the next one.
        assert call(ws, "ping") == {"pong": True}
    assert room.runs == ["hit"]
    assert len(calls) == 1
    assert calls[0][0] == "WebSocket"
    assert isinstance(calls[0][1], int)
    assert calls[0][1] == frame["slow_down_ms"]


def test_limiter_sync_ws_callback_that_sends_nothing_request_dropped(
    backend: dict[str, Any], channel_name: str
) -> None:
    calls: list[int] = []
    room = Counted(channel=channel_name)

    @room.action("hit")
    @limiter(times=1, minutes=1, ws_callback=lambda websocket, retry_after_ms: calls.append(retry_after_ms))
    async def hit(websocket: WebSocket) -> None:
        room.runs.append("hit")
        await room.broadcast_to_personal(websocket, {"hit": True})

    with TestClient(serve(room, **backend)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "hit") == {"hit": True}
        ws.send_json({"action": "hit"})
        assert call(ws, "ping") == {"pong": True}
    assert room.runs == ["hit"]
    assert len(calls) == 1
    assert calls[0] > 0


def test_limiter_ws_callback_raising_custom_exception_frame_sent(backend: dict[str, Any], channel_name: str) -> None:
    def custom(websocket: WebSocket, retry_after_ms: int) -> None:
        raise RateLimitExceeded(error_msg="Easy there.", retry_after=retry_after_ms / 1000, level="warning")

    class Room(Counted):
        @limiter(times=1, minutes=1, ws_callback=custom)
        @action
        async def hit(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"hit": True})

    with TestClient(serve(Room(channel=channel_name), **backend)) as client:
        with client.websocket_connect("/ws") as ws:
            assert call(ws, "hit") == {"hit": True}
            frame = call(ws, "hit", request_id=9)
            assert frame["errors"] == "Easy there."
            assert frame["level"] == "warning"
            assert frame["request_id"] == 9
            assert frame["retry_after"] > 0
            assert call(ws, "ping") == {"pong": True}


# -- channel-wide and default limits --------------------------------------------------------------------


class TwoActions(Counted):
    @action
    async def left(self, websocket: WebSocket) -> None:
        self.runs.append("left")
        await self.broadcast_to_personal(websocket, {"left": True})

    @action
    async def right(self, websocket: WebSocket) -> None:
        self.runs.append("right")
        await self.broadcast_to_personal(websocket, {"right": True})


def test_channel_throttle_classes_attribute_shared_by_all_actions(backend: dict[str, Any], channel_name: str) -> None:
    class Limited(TwoActions):
        throttle_classes = [limiter(times=2, minutes=1)]

    room = Limited(channel=channel_name)
    with TestClient(serve(room, **backend)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "left") == {"left": True}
        assert call(ws, "right") == {"right": True}
        assert_rate_limited(call(ws, "left", request_id=3), "left", 3)
        assert_rate_limited(call(ws, "right"), "right")
    assert room.runs == ["left", "right"]


def test_channel_throttle_classes_keyword_per_client(backend: dict[str, Any], channel_name: str) -> None:
    room = TwoActions(channel=channel_name, throttle_classes=[limiter(times=1, minutes=1, identifier=who_from_query)])
    with TestClient(serve(room, **backend)) as client:
        with client.websocket_connect("/ws?who=a") as a, client.websocket_connect("/ws?who=b") as b:
            assert call(a, "left") == {"left": True}
            assert_rate_limited(call(a, "right"), "right")
            assert call(b, "right") == {"right": True}


def test_channel_throttle_and_action_limit_both_apply(backend: dict[str, Any], channel_name: str) -> None:
    class Limited(TwoActions):
        throttle_classes = [limiter(times=3, minutes=1)]

        @limiter(times=1, minutes=1)
        @action
        async def once(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"once": True})

    with TestClient(serve(Limited(channel=channel_name), **backend)) as client:
        with client.websocket_connect("/ws") as ws:
            assert call(ws, "once") == {"once": True}
            assert_rate_limited(call(ws, "once"), "once")
            # The refused "once" still spent the channel budget: 2 of 3 are gone.
            assert call(ws, "left") == {"left": True}
            assert_rate_limited(call(ws, "right"), "right")


def test_relay_channel_throttle_classes_refuses_extra_text(backend: dict[str, Any], channel_name: str) -> None:
    class Relay(BaseChannel):
        throttle_classes = [limiter(times=2, minutes=1)]

    app = serve(Relay(channel=channel_name), **backend)
    app.add_middleware(PeerFromHeader)
    with TestClient(app) as client:
        with (
            client.websocket_connect("/ws", headers={"x-test-peer": "10.0.0.1"}) as talker,
            client.websocket_connect("/ws", headers={"x-test-peer": "10.0.0.2"}) as listener,
        ):
            for text in ("one", "two"):
                talker.send_text(text)
                assert receive(talker)["text"] == text
                assert receive(listener)["text"] == text
            talker.send_text("three")
            frame = receive_json(talker)
            assert frame["code"] == 1013
            assert frame["close"] is False
            assert frame["retry_after"] > 0
            # The listener, with its own budget, is heard; it never heard "three".
            listener.send_text("from listener")
            assert receive(listener)["text"] == "from listener"
            assert receive(talker)["text"] == "from listener"


def test_channel_throttle_fastapi_limiter_websocket_rate_limiter_frame(
    backend: dict[str, Any], channel_name: str
) -> None:
    class Limited(TwoActions):
        throttle_classes = [WebSocketRateLimiter(limiter=Limiter(Rate(2, Duration.MINUTE)))]

    room = Limited(channel=channel_name)
    with TestClient(serve(room, **backend)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "left") == {"left": True}
        assert call(ws, "right") == {"right": True}
        # Its default callback raises HTTP 429, which becomes a RateLimitExceeded error frame.
        frame = call(ws, "left", request_id="x")
        assert frame["type"] == "response"
        assert frame["status"] == "bad"
        assert frame["action"] == "left"
        assert frame["request_id"] == "x"
        assert frame["errors"] == RateLimitExceeded.default_error_msg
        assert frame["code"] == 1013
        assert frame["close"] is False
        assert call(ws, "ping")["status"] == "bad"
    assert room.runs == ["left", "right"]


def test_add_channel_throttle_default_reaches_already_defined_channel(
    backend: dict[str, Any], channel_name: str
) -> None:
    class Own(TwoActions):
        throttle_classes: list[Any] = []

    # Classes and objects exist before any app is configured.
    plain, own = TwoActions(channel=channel_name), Own(channel=channel_name)
    app = serve({"plain": plain, "own": own}, throttle_classes=[limiter(times=2, minutes=1)], **backend)
    with TestClient(app) as client:
        with client.websocket_connect("/plain") as ws:
            assert call(ws, "left") == {"left": True}
            assert call(ws, "ping") == {"pong": True}
            assert_rate_limited(call(ws, "right"), "right")
        with client.websocket_connect("/own") as ws:
            for _ in range(5):
                assert call(ws, "left") == {"left": True}


# -- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("times", [0, -1, 1.5, "2", None])
def test_limiter_times_not_positive_integer_raises_value_error(times: Any) -> None:
    with pytest.raises(ValueError, match="times"):
        limiter(times=times, seconds=1)


@pytest.mark.parametrize("period", [{}, {"seconds": 0}, {"milliseconds": -5}, {"minutes": 0, "hours": 0}])
def test_limiter_without_period_raises_value_error(period: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="period"):
        limiter(times=3, **period)


def test_limiter_period_units_added_together() -> None:
    spec = limiter(times=2, milliseconds=5, seconds=1, minutes=1, hours=1)
    assert spec.milliseconds == 5 + 1000 + 60_000 + 3_600_000


@pytest.mark.parametrize(
    ("outer", "inner"),
    [
        ({"times": 10, "seconds": 1}, {"times": 5, "seconds": 10}),
        ({"times": 1, "seconds": 1}, {"times": 2, "seconds": 1}),
        ({"times": 5, "minutes": 1}, {"times": 5, "hours": 1}),
    ],
    ids=["longer-period-fewer", "same-period", "same-times"],
)
def test_limiter_contradictory_stacked_limits_raise_value_error(outer: dict[str, int], inner: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="contradict"):

        class Room(Channel):
            @limiter(**outer)
            @limiter(**inner)
            @action
            async def hit(self) -> None: ...


def test_limiter_stacked_limits_for_different_identifiers_not_compared() -> None:
    def everyone(websocket: WebSocket) -> str:
        return "everyone"

    class Room(Channel):
        @limiter(times=10, seconds=1)
        @limiter(times=5, seconds=10, identifier=everyone)
        @action
        async def hit(self) -> None: ...

    assert Room().actions == ["hit"]


def test_limiter_on_non_callable_raises_type_error() -> None:
    with pytest.raises(TypeError, match="decorates functions"):
        limiter(times=1, seconds=1)("not a function")  # type: ignore[type-var]


# -- built once, kept in Redis --------------------------------------------------------------------------


def test_limiter_built_once_per_action(backend: dict[str, Any], channel_name: str) -> None:
    class Room(TwoActions):
        throttle_classes = [limiter(times=1000, minutes=1)]

        @limiter(times=1000, minutes=1)
        @action
        async def hit(self, websocket: WebSocket) -> None:
            await self.broadcast_to_personal(websocket, {"hit": True})

    app = serve(Room(channel=channel_name), **backend)
    app.add_middleware(PeerFromHeader)
    cache = config_of(app).limiters.built
    with TestClient(app) as client:
        with client.websocket_connect("/ws", headers={"x-test-peer": "10.0.0.1"}) as ws:
            assert call(ws, "hit") == {"hit": True}
            built = dict(cache)
            # One limiter for the channel-wide limit, one for the action's own.
            assert len(built) == 2
            for _ in range(20):
                assert call(ws, "hit") == {"hit": True}
                assert call(ws, "left") == {"left": True}
        for peer in ("10.0.0.2", "10.0.0.3"):
            with client.websocket_connect("/ws", headers={"x-test-peer": peer}) as ws:
                assert call(ws, "hit") == {"hit": True}
        assert cache.keys() == built.keys()
        assert all(cache[key] is built[key] for key in built)


def test_limiter_keys_in_redis_expire(backend: dict[str, Any], channel_name: str, redis_url: str) -> None:
    room = limited_room("above", times=2, seconds=30)(channel=channel_name)
    prefix = backend["limiter_prefix"]
    with TestClient(serve(room, **backend)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "hit") == {"hit": True}
        inspector = redis.Redis.from_url(redis_url)
        try:
            keys = inspector.keys(f"{prefix}:limit:*")
            if backend["limiter_url"] is None:
                # In-memory limits never touch Redis.
                assert keys == []
                return
            assert len(keys) == 1
            key = keys[0].decode()
            assert channel_name in key
            assert "hit" in key
            ttl = inspector.pttl(key)
            assert 0 < ttl <= 2 * 30_000
        finally:
            inspector.close()


def test_limiter_separate_apps_share_budget_only_in_redis(backend: dict[str, Any], channel_name: str) -> None:
    def make() -> FastAPI:
        return serve(limited_room("above", times=1, minutes=1)(channel=channel_name), **backend)

    first_app, second_app = make(), make()
    with TestClient(first_app) as first, TestClient(second_app) as second:
        with first.websocket_connect("/ws") as ws:
            assert call(ws, "hit") == {"hit": True}
        with second.websocket_connect("/ws") as ws:
            frame = call(ws, "hit")
            if backend["limiter_url"] is not None:
                # Same Redis, same limiter_prefix: one budget for both processes.
                assert_rate_limited(frame, "hit")
            else:
                assert frame == {"hit": True}


def test_limiter_redis_scripts_flushed_limits_still_enforced(redis_url: str, channel_name: str) -> None:
    # A restarted Redis has no scripts loaded; pyrate-limiter's RedisBucket then failed with NoScriptError.
    room = limited_room("above", times=2, minutes=1)(channel=channel_name)
    app = serve(room, url="memory://", limiter_url=redis_url, limiter_prefix=f"test-{channel_name}")
    inspector = redis.Redis.from_url(redis_url)
    try:
        with TestClient(app) as client, client.websocket_connect("/ws") as ws:
            assert call(ws, "hit") == {"hit": True}
            inspector.script_flush()
            assert call(ws, "hit") == {"hit": True}
            assert_rate_limited(call(ws, "hit"), "hit", max_retry_after=60)
    finally:
        inspector.close()
    assert room.runs == ["hit", "hit"]


def test_limiter_redis_restarted_limits_work_again(own_redis: Any, channel_name: str) -> None:
    # State lives in Redis; after a restart (nothing persisted here) the budget starts afresh, without errors.
    room = limited_room("above", times=1, minutes=1)(channel=channel_name)
    app = serve(room, url="memory://", limiter_url=own_redis.url, limiter_prefix=f"test-{channel_name}")
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "hit") == {"hit": True}
        assert_rate_limited(call(ws, "hit"), "hit", max_retry_after=60)
        own_redis.stop()
        own_redis.start()
        assert call(ws, "hit") == {"hit": True}
        assert_rate_limited(call(ws, "hit"), "hit", max_retry_after=60)
    assert room.runs == ["hit", "hit"]


def test_default_identifier_base_user_without_identity_uses_display_name() -> None:
    class NamedUser(BaseUser):
        @property
        def is_authenticated(self) -> bool:
            return True

        @property
        def display_name(self) -> str:
            return "ada"

    assert default_identifier(websocket_for(user=NamedUser(), client=("10.0.0.1", 1))) == "user:ada"


def test_default_identifier_base_user_with_identity_uses_identity() -> None:
    class IdentifiedUser(SimpleUser):
        @property
        def identity(self) -> str:
            return "42"

    assert default_identifier(websocket_for(user=IdentifiedUser("ada"), client=("10.0.0.1", 1))) == "user:42"


# -- which buckets are kept -----------------------------------------------------------------------------


def spend(factory: KeyedBucketFactory, key: str) -> bool:
    """Check one request of ``key`` against an in-memory factory, as ``ChannelRateLimiter`` does."""
    with factory.using(key):
        allowed = factory.bucket_for(key).put(factory.wrap_item(key))
    assert isinstance(allowed, bool)
    return allowed


def test_limiter_more_keys_than_cached_buckets_each_key_allowed_exactly_times(
    monkeypatch: pytest.MonkeyPatch, backend: dict[str, Any], channel_name: str
) -> None:
    # A new key's bucket used to be evicted before its first request was recorded: every request ran.
    monkeypatch.setattr(throttling, "MAX_CACHED_BUCKETS", 10)

    class Room(Counted):
        @limiter(times=5, hours=1, identifier=who_from_query)
        @action
        async def hit(self, websocket: WebSocket) -> None:
            self.runs.append("hit")
            await self.broadcast_to_personal(websocket, {"hit": True})

    room = Room(channel=channel_name)
    app = serve(room, **backend)
    clients = [f"client-{n}" for n in range(30)]
    with TestClient(app) as client:
        for who in clients:
            with client.websocket_connect(f"/ws?who={who}") as ws:
                for _ in range(5):
                    assert call(ws, "hit") == {"hit": True}
                assert_rate_limited(call(ws, "hit"), "hit")
        # 29 other keys came and went since client-0 spent its budget for the hour.
        with client.websocket_connect("/ws?who=client-0") as ws:
            assert_rate_limited(call(ws, "hit"), "hit")
        (built,) = config_of(app).limiters.built.values()
        cached = len(built.buckets.buckets)
    assert len(room.runs) == 5 * len(clients)
    if backend["limiter_url"] is None:
        # Nothing refills within the hour, so every key keeps its bucket whatever the cache limit.
        assert cached == len(clients)
    else:
        # Redis holds the state: only handles are cached, and the limit holds for them.
        assert cached == 10


def test_bucket_for_new_key_work_does_not_grow_with_cached_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = 0

    class CountingStore(InMemoryStateStore):
        def read(self, algorithm: Any, rates: Any) -> Any:
            nonlocal reads
            reads += 1
            return super().read(algorithm, rates)

    monkeypatch.setattr(throttling, "InMemoryStateStore", CountingStore)
    reads_for_new_key = {}
    for cached in (100, 2000):
        monkeypatch.setattr(throttling, "MAX_CACHED_BUCKETS", cached)
        factory = KeyedBucketFactory([Rate(5, Duration.HOUR)])
        for n in range(cached):
            assert spend(factory, f"busy-{n}")
        assert len(factory.buckets) == cached
        reads = 0
        assert spend(factory, "newcomer")
        reads_for_new_key[cached] = reads
    # Only the oldest bucket is looked at (and kept: it has not refilled), never all of them.
    assert reads_for_new_key == {100: 1, 2000: 1}


def test_bucket_for_keys_idle_past_their_period_evicted_down_to_cache_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttling, "MAX_CACHED_BUCKETS", 10)
    factory = KeyedBucketFactory([Rate(1, 50)])
    keys = [f"idle-{n}" for n in range(40)]
    for key in keys:
        assert spend(factory, key)
    # One request per 50 ms: every bucket has refilled 50 ms after the last request, on the limiter's own clock.
    refilled_at = factory.clock.now() + 50
    deadline = time.monotonic() + REFILL_DEADLINE
    while (left_ms := refilled_at - factory.clock.now()) > 0:
        assert time.monotonic() < deadline, "the limiter's clock did not advance"
        time.sleep(left_ms / 1000)
    assert spend(factory, "newcomer")
    assert list(factory.buckets) == [*keys[-9:], "newcomer"]


def test_bucket_for_cache_limit_zero_bucket_in_use_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttling, "MAX_CACHED_BUCKETS", 0)
    factory = KeyedBucketFactory([Rate(1, Duration.HOUR)])
    assert spend(factory, "first")
    assert not spend(factory, "first")
    assert spend(factory, "second")
    assert not spend(factory, "second")
    assert list(factory.buckets) == ["first", "second"]


async def test_bucket_for_redis_handle_in_use_not_evicted(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setattr(throttling, "MAX_CACHED_BUCKETS", 2)
    client = Redis.from_url(redis_url)
    try:
        factory = KeyedBucketFactory([Rate(1, Duration.HOUR)], redis=client, prefix=f"test-{uuid.uuid4().hex}")
        with factory.using("held"):
            held = factory.bucket_for("held")
            for n in range(5):
                factory.bucket_for(f"other-{n}")
            assert factory.buckets.get("held") is held
        # Once the check is over, handles are evicted again from the least recently used end.
        factory.bucket_for("later")
        assert list(factory.buckets) == ["other-4", "later"]
    finally:
        await client.aclose()
