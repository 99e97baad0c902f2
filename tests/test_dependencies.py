"""FastAPI's Depends in actions: sub-dependencies, per-frame caching, yield cleanup, action and channel-wide
dependencies, exceptions from dependencies, definition-time errors, and the FastAPI attributes relied on."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, get_args, get_origin

import fastapi
import pytest
import starlette.exceptions
import websockets
from fastapi import Depends, HTTPException, Query, Request, Security, WebSocket, params
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from fastapi_channels import Channel, PermissionDenied, action
from fastapi_channels.dependencies import DependencyPlan, websocket_exception_of
from fastapi_channels.exceptions import NotFound, RateLimitExceeded, WebSocketException
from fastapi_channels.permission import BasePermission
from fastapi_channels.testing import receive_close, receive_json, receive_text, send_action
from tests.conftest import run_uvicorn
from tests.helpers import serve


def reply(action: str, request_id: Any, data: Any) -> dict[str, Any]:
    return {"type": "response", "status": "ok", "action": action, "request_id": request_id, "data": data}


def call(ws: Any, name: str, **fields: Any) -> Any:
    send_action(ws, name, **fields)
    return receive_json(ws)


# -- dependencies shared by several tests (module level, as users write them) ---------------------------------


def token_of(websocket: WebSocket) -> str:
    return websocket.query_params.get("token", "")


async def user_of(token: Annotated[str, Depends(token_of)]) -> str:
    return f"user:{token}" if token else "anonymous"


class Point(BaseModel):
    x: int
    y: int


class Pager:
    def __init__(self, websocket: WebSocket, size: int = 10) -> None:
        self.page = int(websocket.query_params.get("page", "1"))
        self.size = size


# -- filling parameters -------------------------------------------------------------------------------------


def test_dependency_with_sub_dependency_and_the_socket_fills_the_parameter_in_both_forms() -> None:
    class Room(Channel):
        @action
        async def whoami(self, user: Annotated[str, Depends(user_of)], token: str = Depends(token_of)) -> list[str]:
            return [user, token]

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws?token=abc") as ws:
        assert call(ws, "whoami", request_id=1) == reply("whoami", 1, ["user:abc", "abc"])


def test_dependency_receives_the_keywords_it_names_and_the_socket_by_annotation() -> None:
    def frame(websocket: WebSocket, channel: str, data: dict[str, Any], action: str, request_id: Any) -> str:
        return json.dumps([type(websocket).__name__, channel, data, action, request_id])

    def connection(conn: HTTPConnection, ws: WebSocket) -> bool:
        return conn is ws

    class Room(Channel):
        @action
        async def seen(self, got: str = Depends(frame), same: bool = Depends(connection)) -> list[Any]:
            return [json.loads(got), same]

    with TestClient(serve(Room(channel="hall"))) as client, client.websocket_connect("/ws") as ws:
        sent = {"action": "seen", "request_id": "r", "x": 1}
        ws.send_json(sent)
        assert receive_json(ws) == reply("seen", "r", [["WebSocket", "hall", sent, "seen", "r"], True])


def test_bare_depends_calls_the_annotated_class_with_what_its_init_takes() -> None:
    class Room(Channel):
        @action
        async def page(self, a: Annotated[Pager, Depends()], b: Pager = Depends()) -> list[Any]:  # noqa: B008
            return [a.page, a.size, a is b]

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws?page=3") as ws:
        assert call(ws, "page", request_id=1)["data"] == [3, 10, True]  # one instance: cached for the frame


def test_sync_async_partial_and_callable_object_dependencies_are_each_called_as_they_must_be() -> None:
    class Scaled:
        def __init__(self, factor: int) -> None:
            self.factor = factor

        async def __call__(self, data: dict[str, Any]) -> int:
            return int(data["n"]) * self.factor

    def offset(data: dict[str, Any], by: int) -> int:
        return int(data["n"]) + by

    class Room(Channel):
        @action
        async def numbers(
            self,
            n: int,
            doubled: int = Depends(Scaled(2)),
            shifted: int = Depends(functools.partial(offset, by=100)),
        ) -> list[int]:
            return [n, doubled, shifted]

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "numbers", request_id=1, n=4)["data"] == [4, 8, 104]


def test_dependencies_and_a_typed_payload_fill_one_handler_together() -> None:
    class Board(Channel):
        @action
        async def move(self, point: Point, user: Annotated[str, Depends(user_of)]) -> dict[str, Any]:
            return {"by": user, **point.model_dump()}

        @action
        async def add(self, a: int, user: Annotated[str, Depends(user_of)], b: int = 10) -> list[Any]:
            return [user, a + b]

    with TestClient(serve(Board())) as client, client.websocket_connect("/ws?token=t") as ws:
        assert call(ws, "move", request_id=1, x=1, y=2) == reply("move", 1, {"by": "user:t", "x": 1, "y": 2})
        assert call(ws, "add", request_id=2, a=1) == reply("add", 2, ["user:t", 11])
        error = call(ws, "move", request_id=3, x=1)
        assert (error["code"], error["request_id"], error["detail"][0]["loc"]) == (1007, 3, ["payload", "y"])
    payload = Board().get_action("move").payload
    assert payload is not None and "user" not in payload.adapter.json_schema()["properties"]


# -- per-frame caching --------------------------------------------------------------------------------------


def test_shared_dependency_runs_once_per_frame_and_again_on_the_next_frame() -> None:
    calls: list[str] = []

    def counted(request_id: Any) -> str:
        calls.append(f"counted {request_id}")
        return f"value {request_id}"

    def wrapper(value: str = Depends(counted)) -> str:
        return value

    def check(value: str = Depends(counted)) -> None:
        calls.append("check")

    class Room(Channel):
        dependencies = [Depends(counted)]

        @action(dependencies=[Depends(check)])
        async def twice(
            self, a: str = Depends(counted), b: str = Depends(wrapper), c: str = Depends(counted)
        ) -> list[str]:
            return [a, b, c]

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "twice", request_id=1)["data"] == ["value 1"] * 3
        assert call(ws, "twice", request_id=2)["data"] == ["value 2"] * 3
    assert calls == ["counted 1", "check", "counted 2", "check"]


def test_use_cache_false_runs_the_dependency_for_each_use_and_the_cached_uses_share_the_first_value() -> None:
    count = 0

    def counter() -> int:
        nonlocal count
        count += 1
        return count

    class Room(Channel):
        @action
        async def counts(
            self,
            fresh: int = Depends(counter, use_cache=False),
            again: int = Depends(counter, use_cache=False),
            cached: int = Depends(counter),
        ) -> list[int]:
            return [fresh, again, cached]

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        # As in FastAPI: a value computed without the cache still fills it for the cached uses that follow.
        assert call(ws, "counts", request_id=1)["data"] == [1, 2, 1]
        assert call(ws, "counts", request_id=2)["data"] == [3, 4, 3]


def test_plan_is_laid_out_once_at_registration_with_one_step_per_distinct_cached_dependency() -> None:
    def counted() -> int:
        return 1

    def wrapper(value: int = Depends(counted)) -> int:
        return value

    class Room(Channel):
        @action
        async def go(self, a: int = Depends(counted), b: int = Depends(wrapper)) -> None: ...

        @action
        async def plain(self, n: int) -> None: ...

    room = Room()
    plan = room.get_action("go").dependencies
    assert isinstance(plan, DependencyPlan) and len(plan.steps) == 2 and plan.exits is False
    assert room.get_action("plain").dependencies is None
    assert room.get_action("go").dependencies is plan  # read when the class was created, never per frame


# -- yield dependencies -------------------------------------------------------------------------------------


def test_yield_dependency_cleans_up_after_the_handler_and_before_the_reply() -> None:
    async def resource(websocket: WebSocket) -> AsyncIterator[str]:
        await room.broadcast_to_personal(websocket, "opened")
        yield "resource"
        await room.broadcast_to_personal(websocket, "closed")

    class Room(Channel):
        @action
        async def use(self, websocket: WebSocket, r: str = Depends(resource)) -> str:
            await self.broadcast_to_personal(websocket, f"using {r}")
            return "done"

    room = Room()
    with TestClient(serve(room)) as client, client.websocket_connect("/ws") as ws:
        send_action(ws, "use", request_id=1)
        assert [receive_text(ws) for _ in range(3)] == ["opened", "using resource", "closed"]
        assert receive_json(ws) == reply("use", 1, "done")


def test_sync_and_async_yield_dependencies_see_the_handlers_exception_and_the_error_frame_still_goes() -> None:
    seen: list[str] = []

    def sync_resource() -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            seen.append(f"sync saw {exc}")
            raise
        finally:
            seen.append("sync closed")

    async def async_resource() -> AsyncIterator[None]:
        try:
            yield
        except Exception as exc:
            seen.append(f"async saw {exc}")
            raise
        finally:
            await asyncio.sleep(0)  # a cleanup that waits
            seen.append("async closed")

    class Room(Channel):
        @action(dependencies=[Depends(async_resource), Depends(sync_resource)])
        async def fail(self) -> None:
            raise NotFound(error_msg="no such thing", close=False)

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        error = call(ws, "fail", request_id=7)
        assert (error["errors"], error["action"], error["request_id"], error["close"]) == (
            "no such thing",
            "fail",
            7,
            False,
        )
        assert call(ws, "fail", request_id=8)["request_id"] == 8  # the socket stayed open
    # Cleaned up in the reverse order of entry, each seeing the exception where it yielded.
    assert seen[:4] == ["sync saw no such thing", "sync closed", "async saw no such thing", "async closed"]


def test_yield_dependency_that_swallows_the_exception_does_not_hide_the_failure() -> None:
    def swallow() -> Iterator[None]:
        try:
            yield
        except Exception:
            pass

    class Room(Channel):
        @action(dependencies=[Depends(swallow)])
        async def fail(self) -> str:
            raise PermissionDenied(close=False)

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        error = call(ws, "fail", request_id=1)
        assert (error["code"], error["request_id"]) == (1008, 1)


def test_yield_dependency_may_turn_the_exception_into_an_error_frame() -> None:
    async def translate() -> AsyncIterator[None]:
        try:
            yield
        except KeyError as exc:
            raise NotFound(error_msg=f"missing {exc}", close=False) from exc

    class Room(Channel):
        @action(dependencies=[Depends(translate)])
        async def lookup(self, key: str) -> str:
            return {"a": "1"}[key]

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "lookup", request_id=1, key="a") == reply("lookup", 1, "1")
        error = call(ws, "lookup", request_id=2, key="b")
        assert (error["errors"], error["request_id"], error["close"]) == ("missing 'b'", 2, False)


def test_failing_dependency_unwinds_the_yield_dependencies_entered_before_it() -> None:
    seen: list[str] = []

    async def first() -> AsyncIterator[None]:
        try:
            yield
        except WebSocketException as exc:
            seen.append(f"first saw {type(exc).__name__}")
            raise

    def second() -> None:
        raise PermissionDenied(error_msg="second says no", close=False)

    class Room(Channel):
        @action(dependencies=[Depends(first), Depends(second)])
        async def go(self) -> str:
            seen.append("handler")
            return "never"

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "go", request_id=1)["errors"] == "second says no"
    assert seen == ["first saw PermissionDenied"]


def test_cleanup_failure_after_success_answers_instead_of_the_reply() -> None:
    def commit() -> Iterator[None]:
        yield
        raise WebSocketException(error_msg="could not commit", close=False)

    class Room(Channel):
        @action(dependencies=[Depends(commit)])
        async def save(self) -> str:
            return "saved"

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        error = call(ws, "save", request_id=1)
        assert (error["status"], error["errors"], error["request_id"]) == ("bad", "could not commit", 1)


def test_http_exception_raised_after_yield_is_an_error_frame_too() -> None:
    async def commit() -> AsyncIterator[None]:
        yield
        await asyncio.sleep(0)
        raise HTTPException(409, "Someone else saved first.")

    class Room(Channel):
        @action(dependencies=[Depends(commit)])
        async def save(self) -> str:
            return "saved"

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        error = call(ws, "save", request_id=1)
        assert (error["errors"], error["status_code"], error["code"], error["close"]) == (
            "Someone else saved first.",
            409,
            1008,
            False,
        )


async def test_cleanup_that_waits_runs_to_its_end_even_when_the_action_is_cancelled_twice() -> None:
    cleanup_started, release = asyncio.Event(), asyncio.Event()
    log: list[str] = []

    async def resource() -> AsyncIterator[str]:
        try:
            yield "r"
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        finally:
            cleanup_started.set()
            await release.wait()
            log.append("cleanup finished")

    class Room(Channel):
        @action
        async def hold(self, r: str = Depends(resource)) -> None: ...

    plan = Room().get_action("hold").dependencies
    assert plan is not None
    handler_started = asyncio.Event()

    async def handler(arguments: dict[str, Any]) -> None:
        handler_started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(plan.run((None,) * 5, handler))
    try:
        await asyncio.wait_for(handler_started.wait(), 5)
        task.cancel()  # the client went away
        await asyncio.wait_for(cleanup_started.wait(), 5)
        task.cancel()  # and the server is stopping: the cleanup that waits is not cut short
    finally:
        release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert log == ["cancelled", "cleanup finished"]


async def test_yield_dependency_cleanup_runs_to_its_end_when_the_client_disconnects_mid_action() -> None:
    with run_uvicorn("tests.apps.dependencies_app:app") as base_url:
        url = f"{base_url.replace('http://', 'ws://')}/ws/watched"
        async with websockets.connect(url, ping_interval=None) as observer:
            assert await asyncio.wait_for(observer.recv(), 5) == "joined"
            client = await websockets.connect(url, ping_interval=None)
            assert await asyncio.wait_for(client.recv(), 5) == "joined"
            await client.send(json.dumps({"action": "slow", "request_id": 1}))
            assert await asyncio.wait_for(client.recv(), 5) == "started"
            client.transport.abort()  # a TCP reset mid-action, like a phone losing its network
            notes = json.loads(await asyncio.wait_for(observer.recv(), 5))
    assert notes == [
        "handler cancelled",
        "sync cleanup saw CancelledError",
        "async cleanup saw CancelledError",
        "cleanup finished",
    ]


# -- dependencies=[...] on actions and channels -------------------------------------------------------------


def test_action_dependencies_run_in_order_before_the_handler_their_values_unused() -> None:
    order: list[str] = []

    def first() -> str:
        order.append("first")
        return "ignored"

    async def second(action: str) -> None:
        order.append(f"second {action}")

    class Room(Channel):
        @action(dependencies=[Depends(first), Depends(second)])
        async def go(self) -> str:
            order.append("handler")
            return "ok"

    room = Room()

    @room.action("extra", dependencies=[Depends(second)])
    async def extra() -> str:
        order.append("extra handler")
        return "ok"

    with TestClient(serve(room)) as client, client.websocket_connect("/ws") as ws:
        assert call(ws, "go", request_id=1) == reply("go", 1, "ok")
        assert call(ws, "extra", request_id=2) == reply("extra", 2, "ok")
    assert order == ["first", "second go", "handler", "second extra", "extra handler"]
    assert room.get_action("go").spec.dependencies == (Depends(first), Depends(second))


def test_channel_dependencies_run_before_every_action_after_the_permission_check() -> None:
    order: list[str] = []

    def audit(action: str) -> None:
        order.append(f"audit {action}")

    def keyword_audit(action: str) -> None:
        order.append(f"keyword audit {action}")

    class Closed(BasePermission):
        async def has_permission(self, websocket: WebSocket, action: str | None, **kwargs: Any) -> bool:
            return action != "secret"

    class Room(Channel):
        dependencies = [Depends(audit)]
        permission_classes = Closed

        @action
        async def one(self) -> int:
            order.append("one")
            return 1

        @action
        async def secret(self) -> int:
            return 2

    by_class, by_keyword = Room(), Room(dependencies=[Depends(keyword_audit)])
    app = serve({"class": by_class, "keyword": by_keyword})
    with TestClient(app) as client:
        with client.websocket_connect("/class") as ws:
            assert call(ws, "one", request_id=1)["data"] == 1
            assert call(ws, "secret", request_id=2)["code"] == 1008  # refused: the dependencies never ran
        with client.websocket_connect("/keyword") as ws:
            assert call(ws, "one", request_id=3)["data"] == 1
    assert order == ["audit one", "one", "keyword audit one", "one"]
    assert by_keyword.dependencies == [Depends(keyword_audit)]


def test_dependencies_run_when_on_receive_is_overridden() -> None:
    order: list[str] = []

    def audit(action: str) -> None:
        order.append(f"audit {action}")

    class Logged(Channel):
        dependencies = [Depends(audit)]

        async def on_receive(self, websocket: WebSocket, channel: str, message: str) -> None:
            order.append("on_receive")
            await super().on_receive(websocket, channel, message)

        @action
        async def who(self, user: Annotated[str, Depends(user_of)]) -> str:
            return user

    with TestClient(serve(Logged())) as client, client.websocket_connect("/ws?token=z") as ws:
        assert call(ws, "who", request_id=1) == reply("who", 1, "user:z")
    assert order == ["on_receive", "audit who"]


async def test_registered_action_call_runs_the_actions_own_dependencies() -> None:
    def named(action: str) -> str:
        return f"<{action}>"

    class Room(Channel):
        @action
        async def label(self, n: int, name: str = Depends(named)) -> str:
            return f"{name}{n}"

    room = Room()
    entry = room.get_action("label")
    assert await entry.call(room, data={"n": 3}, action="label") == "<label>3"


# -- exceptions from dependencies ---------------------------------------------------------------------------


def test_websocket_exception_from_a_dependency_is_an_error_frame_with_action_and_request_id() -> None:
    def members_only(websocket: WebSocket) -> None:
        if websocket.query_params.get("member") != "yes":
            raise PermissionDenied(error_msg="Members only.", close=False)

    def banned() -> None:
        raise PermissionDenied(error_msg="Banned.")  # closes, as PermissionDenied does by default

    class Room(Channel):
        @action(dependencies=[Depends(members_only)])
        async def post(self) -> str:
            return "posted"

        @action(dependencies=[Depends(banned)])
        async def shout(self) -> str:
            return "never"

    with TestClient(serve(Room())) as client:
        with client.websocket_connect("/ws") as ws:
            error = call(ws, "post", request_id="p1")
            assert (error["errors"], error["action"], error["request_id"], error["code"], error["close"]) == (
                "Members only.",
                "post",
                "p1",
                1008,
                False,
            )
            assert call(ws, "shout", request_id=2)["close"] is True
            assert receive_close(ws)[0] == 1008
        with client.websocket_connect("/ws?member=yes") as ws:
            assert call(ws, "post", request_id=3) == reply("post", 3, "posted")


def test_fastapis_websocket_exception_from_a_dependency_closes_with_its_code_and_reason() -> None:
    def origin_check() -> None:
        raise fastapi.WebSocketException(code=1008, reason="Wrong origin.")

    class Room(Channel):
        @action(dependencies=[Depends(origin_check)])
        async def go(self) -> None: ...

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        error = call(ws, "go", request_id=1)
        assert (error["errors"], error["request_id"], error["code"], error["close"]) == ("Wrong origin.", 1, 1008, True)
        assert receive_close(ws) == (1008, "Wrong origin.")


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"}), (1008, "Not authenticated")),
        (HTTPException(403), (1008, "Forbidden")),
        (HTTPException(404, "No such room"), (1008, "No such room")),
        (HTTPException(429, headers={"retry-after": "3"}), (1013, "Too Many Requests")),
        (HTTPException(418, {"why": "teapot"}), (1008, "I'm a Teapot")),
        (HTTPException(503, "Down for maintenance"), (1011, "Down for maintenance")),
    ],
)
def test_http_exception_from_a_dependency_is_an_error_frame_and_the_socket_stays_open(
    raised: HTTPException, expected: tuple[int, str]
) -> None:
    def http_dependency() -> None:
        raise raised

    class Room(Channel):
        @action(dependencies=[Depends(http_dependency)])
        async def go(self) -> None: ...

        @action
        async def ping(self) -> str:
            return "pong"

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        error = call(ws, "go", request_id=5)
        assert (error["code"], error["errors"], error["close"]) == (*expected, False)
        assert (error["status_code"], error["request_id"], error["action"]) == (raised.status_code, 5, "go")
        assert call(ws, "ping", request_id=6) == reply("ping", 6, "pong")
    if raised.status_code == 429:
        assert error["retry_after"] == 3.0
    if raised.status_code == 418:
        assert error["data"] == {"why": "teapot"}


def test_http_exceptions_become_the_matching_websocket_exceptions() -> None:
    assert isinstance(websocket_exception_of(HTTPException(401)), PermissionDenied)
    assert isinstance(websocket_exception_of(HTTPException(404)), NotFound)
    limited = websocket_exception_of(HTTPException(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert isinstance(limited, RateLimitExceeded) and limited.retry_after is None
    assert websocket_exception_of(HTTPException(429, headers={"Retry-After": "nan"})).extra.get("retry_after") is None
    unusual = websocket_exception_of(HTTPException(299, "fine"))
    assert (unusual.code, unusual.error_msg, unusual.close) == (1008, "fine", False)
    ours = PermissionDenied()
    assert websocket_exception_of(ours) is ours


def test_other_exception_from_a_dependency_is_logged_and_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("the database is gone")

    class Room(Channel):
        @action(dependencies=[Depends(broken)])
        async def go(self) -> None: ...

    with caplog.at_level(logging.ERROR), TestClient(serve(Room())) as client, client.websocket_connect("/ws") as ws:
        error = call(ws, "go", request_id=1)
        assert (error["code"], error["errors"], error["request_id"]) == (1011, "Internal server error.", 1)
        assert receive_close(ws)[0] == 1011
    assert "the database is gone" in caplog.text


def test_security_works_like_depends_with_its_scopes_ignored() -> None:
    class Room(Channel):
        @action
        async def me(self, user: Annotated[str, Security(user_of, scopes=["admin"])]) -> str:
            return user

    with TestClient(serve(Room())) as client, client.websocket_connect("/ws?token=s") as ws:
        assert call(ws, "me", request_id=1) == reply("me", 1, "user:s")


# -- definition-time errors ---------------------------------------------------------------------------------


def needs_token(token: str) -> str:
    return token


def needs_request(request: Request) -> None: ...


def needs_query(limit: int = Query(10)) -> int:
    return limit


def needs_positional(value: str, /) -> str:
    return value


def depends_on_itself() -> Any:
    def outer(inner: Any = None) -> Any:
        return inner

    outer.__defaults__ = (Depends(outer),)  # outer depends on outer
    return outer


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (
            lambda: Depends(needs_token),
            "The dependency needs_token of the action handler Room.go has the parameter 'token', which nothing "
            "fills: name it websocket, channel, data, action, request_id, annotate it WebSocket",
        ),
        (lambda: Depends(needs_request), "takes a Request in 'request', which an action does not have"),
        (lambda: Depends(needs_query), "reads 'limit' with Query, Header, Cookie, Path, Body or Field"),
        (lambda: Depends(needs_positional), "has the positional-only parameter 'value'"),
        (lambda: Depends(depends_on_itself()), "depends on itself through its parameter 'inner'"),
        (lambda: Depends(42), "is not callable"),
        (lambda: Depends(dict), "has no signature to read"),
    ],
)
def test_dependency_with_a_parameter_nothing_fills_fails_at_definition_naming_the_fix(
    declare: Any, message: str
) -> None:
    marker = declare()
    with pytest.raises(TypeError) as raised:

        class Room(Channel):
            @action
            async def go(self, value: Any = marker) -> None: ...

    assert message in str(raised.value)


def test_depends_misuse_fails_at_definition() -> None:
    with pytest.raises(TypeError, match="both in Annotated\\[...\\] and as its default: keep one"):

        class Both(Channel):
            @action
            async def go(self, user: Annotated[str, Depends(user_of)] = Depends(user_of)) -> None: ...

    with pytest.raises(TypeError, match="bare Depends\\(\\) for the parameter 'user'"):

        class Bare(Channel):
            @action
            async def go(self, user=Depends()) -> None: ...  # noqa: B008

    with pytest.raises(TypeError, match="max_concurrency=...\\), which actions do not support"):

        class Limited(Channel):
            @action
            async def go(self, user: Annotated[str, Depends(user_of, max_concurrency=2)]) -> None: ...


@pytest.mark.parametrize(
    ("dependencies", "message"),
    [
        (Depends(user_of), "action dependencies must be a list of Depends(...)"),
        ("user_of", "action dependencies must be a list of Depends(...)"),
        ([user_of], "lists <function user_of"),
        ([Depends()], "lists a bare Depends(), which has nothing to call"),
    ],
)
def test_action_dependencies_that_are_not_a_list_of_depends_fail_at_decoration(dependencies: Any, message: str) -> None:
    with pytest.raises(TypeError) as raised:
        action(dependencies=dependencies)
    assert message in str(raised.value)


def test_channel_dependencies_are_read_when_the_object_is_created() -> None:
    class Room(Channel):
        dependencies = [Depends(needs_token)]

    with pytest.raises(TypeError, match="The dependency needs_token of Room.dependencies has the parameter 'token'"):
        Room()
    with pytest.raises(TypeError, match="Room.dependencies lists 'audit', which is not a Depends"):
        Room(dependencies=["audit"])
    assert Room(dependencies=[Depends(user_of)]).actions == []


def test_dependency_with_string_annotations_resolves_them_in_its_own_module() -> None:
    # This module uses `from __future__ import annotations`: token_of's annotation is the string "WebSocket".
    assert isinstance(token_of.__annotations__["websocket"], str)

    def broken(socket: NotDefinedAnywhere) -> None: ...  # noqa: F821

    message = "broken of the action handler Room.go annotates the parameter 'socket' with 'NotDefinedAnywhere'"
    with pytest.raises(TypeError, match=message):

        class Room(Channel):
            @action(dependencies=[Depends(broken)])
            async def go(self) -> None: ...


# -- what fastapi-channels relies on in FastAPI -------------------------------------------------------------


def test_fastapi_attributes_the_dependencies_rely_on() -> None:
    # Only public names: `fastapi.Depends` / `Security` return `fastapi.params.Depends` objects whose
    # `dependency` and `use_cache` say what to call and whether to cache it. If an upgrade changes any of this,
    # this test fails, not a user's app.
    marker = Depends(user_of, use_cache=False)
    assert isinstance(marker, params.Depends)
    assert (marker.dependency, marker.use_cache) == (user_of, False)
    assert (Depends().dependency, Depends().use_cache) == (None, True)
    secured = Security(user_of, scopes=["admin"])
    assert issubclass(params.Security, params.Depends) and isinstance(secured, params.Depends)
    assert (secured.dependency, secured.use_cache) == (user_of, True)
    alias = Annotated[str, Depends(user_of)]
    assert get_origin(alias) is Annotated and isinstance(get_args(alias)[1], params.Depends)
    assert get_args(Annotated[str, Query(), Depends(user_of)])[2].dependency is user_of
    assert issubclass(HTTPException, starlette.exceptions.HTTPException)
    assert issubclass(fastapi.WebSocketException, starlette.exceptions.WebSocketException)
    assert issubclass(WebSocket, HTTPConnection)
