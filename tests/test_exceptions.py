"""Exceptions: their defaults, the error frames and closes they cause, handler overrides and internal errors."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.exceptions import WebSocketException as StarletteWebSocketException
from starlette.testclient import WebSocketTestSession

from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import (
    ActionIsDeprecated,
    ActionNotExist,
    ConnectionLimitExceeded,
    MethodNotAllowed,
    NotFound,
    ParseError,
    PermissionDenied,
    RateLimitExceeded,
    WebSocketException,
)
from fastapi_channels.protocol import error_payload
from fastapi_channels.testing import receive_close, receive_json, receive_text
from tests.helpers import serve

MAX_REASON_BYTES = 123


def assert_open(ws: WebSocketTestSession) -> None:
    """Prove the socket still works: a valid action still gets its answer."""
    ws.send_json({"action": "ping", "request_id": "probe"})
    assert receive_json(ws) == {"pong": "probe"}


# -- constructors ---------------------------------------------------------------------------------------

DEFAULTS = [
    (WebSocketException, 1008, True, "The request could not be handled."),
    (PermissionDenied, 1008, True, "You do not have permission to perform this action."),
    (RateLimitExceeded, 1013, False, "Too many requests."),
    (ActionNotExist, 1008, False, "This action does not exist."),
    (ActionIsDeprecated, 1008, False, "This action is deprecated."),
    (ParseError, 1007, False, "The message could not be parsed."),
    (NotFound, 1008, True, "Not found."),
    (MethodNotAllowed, 1008, True, "Method not allowed."),
    (ConnectionLimitExceeded, 1013, True, "This channel is full. Try again later."),
]
EXCEPTION_CLASSES = [row[0] for row in DEFAULTS]


@pytest.mark.parametrize(("cls", "code", "close", "message"), DEFAULTS, ids=[row[0].__name__ for row in DEFAULTS])
def test_exception_no_arguments_class_defaults(
    cls: type[WebSocketException], code: int, close: bool, message: str
) -> None:
    exc = cls()
    assert isinstance(exc, StarletteWebSocketException)
    assert exc.code == code
    assert exc.close is close
    assert exc.error_msg == message
    assert str(exc) == message
    assert exc.reason == message
    assert exc.status == "bad"
    assert exc.data is None
    assert exc.request_id is None
    assert exc.action is None
    assert exc.extra == {}
    assert error_payload(exc) == {
        "type": "response",
        "status": "bad",
        "action": None,
        "request_id": None,
        "errors": message,
        "code": code,
        "close": close,
    }


@pytest.mark.parametrize("cls", EXCEPTION_CLASSES, ids=lambda cls: cls.__name__)
def test_exception_every_argument_overrides_default(cls: type[WebSocketException]) -> None:
    default_close = cls().close
    exc = cls(
        4321,
        "custom reason",
        close=not default_close,
        status="error",
        error_msg="Custom message.",
        data={"detail": [1, 2]},
        request_id="abc",
        action="act",
        hint="look here",
        count=3,
    )
    assert exc.code == 4321
    assert exc.reason == "custom reason"
    assert exc.close is (not default_close)
    assert exc.status == "error"
    assert exc.error_msg == "Custom message."
    assert exc.data == {"detail": [1, 2]}
    assert exc.request_id == "abc"
    assert exc.action == "act"
    assert error_payload(exc) == {
        "type": "response",
        "status": "error",
        "action": "act",
        "request_id": "abc",
        "errors": "Custom message.",
        "code": 4321,
        "close": not default_close,
        "data": {"detail": [1, 2]},
        "hint": "look here",
        "count": 3,
    }


def test_exception_reason_only_becomes_message() -> None:
    exc = PermissionDenied(reason="Admins only.")
    assert exc.error_msg == "Admins only."
    assert exc.reason == "Admins only."


def test_exception_error_msg_only_becomes_reason() -> None:
    exc = NotFound(error_msg="No such room.")
    assert exc.reason == "No such room."


def test_exception_request_id_number_kept() -> None:
    assert ParseError(request_id=12).request_id == 12


@pytest.mark.parametrize(
    "arguments",
    [
        {"error_msg": "x" * 500},
        {"error_msg": "é" * 100},
        {"error_msg": "日本語" * 50},
        {"error_msg": "🙂" * 40},
        {"reason": "y" * 300},
        {"reason": "ü" * 200},
    ],
    ids=["ascii-message", "two-byte-message", "three-byte-message", "four-byte-message", "ascii-reason", "utf8-reason"],
)
def test_exception_long_reason_truncated_to_123_bytes(arguments: dict[str, str]) -> None:
    exc = WebSocketException(**arguments)
    encoded = exc.reason.encode("utf-8")
    assert 0 < len(encoded) <= MAX_REASON_BYTES
    source = arguments.get("reason") or arguments["error_msg"]
    assert source.startswith(exc.reason.removesuffix("..."))
    assert len(exc.reason) > 20
    # Only the close reason is cut: the error frame keeps the whole message.
    assert error_payload(exc)["errors"] == source


def test_exception_short_reason_kept_whole() -> None:
    assert WebSocketException(reason="é" * 61).reason == "é" * 61


def test_rate_limit_exceeded_retry_after_in_frame_and_message() -> None:
    exc = RateLimitExceeded(retry_after=2.5)
    assert exc.retry_after == 2.5
    assert "2.5" in exc.error_msg
    payload = error_payload(exc)
    assert payload["retry_after"] == 2.5
    assert payload["close"] is False
    assert payload["code"] == 1013


def test_rate_limit_exceeded_retry_after_rounded_to_milliseconds() -> None:
    assert error_payload(RateLimitExceeded(retry_after=1.23456))["retry_after"] == 1.235


def test_rate_limit_exceeded_without_retry_after_omits_field() -> None:
    exc = RateLimitExceeded()
    assert exc.retry_after is None
    assert "retry_after" not in error_payload(exc)


def test_rate_limit_exceeded_explicit_message_kept() -> None:
    assert RateLimitExceeded(retry_after=3, error_msg="Slow down.").error_msg == "Slow down."


# -- raised in an action --------------------------------------------------------------------------------


def make_app(
    raising: BaseException | None = None, *, channel: str = "room", **add_channel_options: Any
) -> tuple[FastAPI, list[str]]:
    """An app whose ``raise`` action raises ``raising``; also returns the list of actions run."""
    ran: list[str] = []

    class Room(Channel):
        @action
        async def ping(self, websocket: WebSocket, data: dict[str, Any]) -> None:
            ran.append("ping")
            await self.broadcast_to_personal(websocket, {"pong": data.get("request_id")})

        @action("raise")
        async def raise_(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
            ran.append("raise")
            assert raising is not None
            raise raising

        @action
        async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
            await self.broadcast_to_channel(channel, {"said": data["text"]})

    return serve(Room(channel=channel), **add_channel_options), ran


CLOSING = [
    WebSocketException(),
    WebSocketException(4000, close=True),
    PermissionDenied(),
    NotFound(),
    MethodNotAllowed(),
    ActionNotExist(close=True),
    ParseError(close=True),
    RateLimitExceeded(close=True, retry_after=1),
    ConnectionLimitExceeded(),
]


@pytest.mark.parametrize("exc", CLOSING, ids=repr)
def test_action_raises_closing_exception_error_frame_then_close_with_code(exc: WebSocketException) -> None:
    app, _ = make_app(exc)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise", "request_id": 17})
        frame = receive_json(ws)
        assert frame["type"] == "response"
        assert frame["status"] == "bad"
        assert frame["action"] == "raise"
        assert frame["request_id"] == 17
        assert frame["errors"] == exc.error_msg
        assert frame["code"] == exc.code
        assert frame["close"] is True
        code, reason = receive_close(ws)
        assert code == exc.code
        assert reason == exc.reason


OPEN = [
    WebSocketException(close=False),
    PermissionDenied(close=False),
    NotFound(close=False),
    ActionNotExist(),
    ActionIsDeprecated(),
    ParseError(),
    RateLimitExceeded(retry_after=0.5),
]


@pytest.mark.parametrize("exc", OPEN, ids=repr)
def test_action_raises_non_closing_exception_error_frame_socket_stays_open(exc: WebSocketException) -> None:
    app, ran = make_app(exc)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise", "request_id": "a-1"})
        frame = receive_json(ws)
        assert frame["action"] == "raise"
        assert frame["request_id"] == "a-1"
        assert frame["errors"] == exc.error_msg
        assert frame["code"] == exc.code
        assert frame["close"] is False
        assert_open(ws)
        assert ran == ["raise", "ping"]


def test_action_raises_exception_with_extras_all_fields_in_frame() -> None:
    exc = WebSocketException(
        close=False, status="invalid", error_msg="Bad input.", data={"name": "required"}, request_id=99, field="name"
    )
    app, _ = make_app(exc)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise", "request_id": 1})
        assert receive_json(ws) == {
            "type": "response",
            "status": "invalid",
            "action": "raise",
            "request_id": 99,
            "errors": "Bad input.",
            "code": 1008,
            "close": False,
            "data": {"name": "required"},
            "field": "name",
        }
        assert_open(ws)


def test_action_raises_rate_limit_exceeded_retry_after_in_frame() -> None:
    app, _ = make_app(RateLimitExceeded(retry_after=4))
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise"})
        frame = receive_json(ws)
        assert frame["retry_after"] == 4
        assert frame["code"] == 1013
        assert_open(ws)


def test_action_raises_long_utf8_message_close_reason_fits() -> None:
    message = "é" * 200
    app, _ = make_app(PermissionDenied(error_msg=message))
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise"})
        assert receive_json(ws)["errors"] == message
        code, reason = receive_close(ws)
        assert code == 1008
        assert 0 < len(reason.encode()) <= MAX_REASON_BYTES


# -- raised in a join handler ---------------------------------------------------------------------------


def make_join_app(raising: BaseException) -> FastAPI:
    class Room(Channel):
        @action
        async def ping(self, websocket: WebSocket, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"pong": data.get("request_id")})

    room = Room()

    @room.on_event("join")
    async def refuse(websocket: WebSocket, channel: str) -> None:
        raise raising

    return serve(room)


@pytest.mark.parametrize("exc", [PermissionDenied(), WebSocketException(4003, close=True), NotFound()], ids=repr)
def test_join_handler_raises_closing_exception_error_frame_then_close(exc: WebSocketException) -> None:
    with TestClient(make_join_app(exc)) as client, client.websocket_connect("/ws") as ws:
        frame = receive_json(ws)
        assert frame["status"] == "bad"
        assert frame["errors"] == exc.error_msg
        assert frame["code"] == exc.code
        assert frame["close"] is True
        assert receive_close(ws)[0] == exc.code


@pytest.mark.parametrize(
    "exc", [PermissionDenied(close=False), ParseError(), WebSocketException(close=False)], ids=repr
)
def test_join_handler_raises_non_closing_exception_error_frame_socket_stays_open(exc: WebSocketException) -> None:
    with TestClient(make_join_app(exc)) as client, client.websocket_connect("/ws") as ws:
        frame = receive_json(ws)
        assert frame["errors"] == exc.error_msg
        assert frame["close"] is False
        assert_open(ws)


def test_join_handler_raises_plain_exception_internal_error_then_close_1011(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    with TestClient(make_join_app(RuntimeError("join secret 1234"))) as client, client.websocket_connect("/ws") as ws:
        text = receive_text(ws)
        assert "join secret 1234" not in text
        assert json.loads(text)["errors"] == "Internal server error."
        assert receive_close(ws)[0] == 1011
    assert any(record.exc_info and "join secret 1234" in str(record.exc_info[1]) for record in caplog.records)


# -- exception handlers ---------------------------------------------------------------------------------


def test_custom_handler_for_permission_denied_overrides_builtin() -> None:
    app, _ = make_app(PermissionDenied(close=False, error_msg="No."))
    seen: list[WebSocketException] = []

    async def custom(websocket: WebSocket, exc: PermissionDenied) -> None:
        seen.append(exc)
        await websocket.send_json({"custom": True, "message": exc.error_msg, "action": exc.action})

    app.add_exception_handler(PermissionDenied, custom)  # type: ignore[arg-type]
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise", "request_id": 5})
        assert receive_json(ws) == {"custom": True, "message": "No.", "action": "raise"}
        assert_open(ws)
    assert len(seen) == 1
    assert seen[0].request_id == 5


def test_custom_handler_for_permission_denied_leaves_other_exceptions_builtin() -> None:
    app, _ = make_app(NotFound(close=False))

    async def custom(websocket: WebSocket, exc: PermissionDenied) -> None:
        await websocket.send_json({"custom": True})

    app.add_exception_handler(PermissionDenied, custom)  # type: ignore[arg-type]
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise"})
        frame = receive_json(ws)
        assert frame["errors"] == "Not found."
        assert "custom" not in frame


def test_custom_handler_for_base_class_catches_subclasses() -> None:
    app, _ = make_app()
    caught: list[str] = []

    def custom(websocket: WebSocket, exc: WebSocketException) -> None:
        # A sync handler: it only records; the client gets nothing for the failed frame.
        caught.append(type(exc).__name__)

    app.add_exception_handler(WebSocketException, custom)  # type: ignore[arg-type]
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "missing"})
        ws.send_text("not json")
        assert_open(ws)
    assert caught == ["ActionNotExist", "ParseError"]


def test_custom_handler_that_closes_socket_close_code_seen() -> None:
    app, _ = make_app(PermissionDenied(close=False))

    async def custom(websocket: WebSocket, exc: PermissionDenied) -> None:
        await websocket.send_json({"bye": exc.error_msg})
        await websocket.close(4403)

    app.add_exception_handler(PermissionDenied, custom)  # type: ignore[arg-type]
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise"})
        assert receive_json(ws) == {"bye": PermissionDenied.default_error_msg}
        assert receive_close(ws)[0] == 4403


def test_custom_handler_that_fails_internal_error_then_close_1011(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    app, _ = make_app(PermissionDenied(close=False))

    async def broken(websocket: WebSocket, exc: PermissionDenied) -> None:
        raise KeyError("handler secret")

    app.add_exception_handler(PermissionDenied, broken)  # type: ignore[arg-type]
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise", "request_id": 8})
        text = receive_text(ws)
        assert "handler secret" not in text
        frame = json.loads(text)
        assert frame["errors"] == "Internal server error."
        assert frame["request_id"] == 8
        assert receive_close(ws)[0] == 1011
    assert any(record.exc_info and isinstance(record.exc_info[1], KeyError) for record in caplog.records)


def test_add_channel_without_exception_handlers_builtin_frame_still_sent() -> None:
    app, _ = make_app(PermissionDenied(close=False), add_exception_handlers=False)
    assert WebSocketException not in app.exception_handlers
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise", "request_id": 3})
        frame = receive_json(ws)
        assert frame["errors"] == PermissionDenied.default_error_msg
        assert frame["request_id"] == 3
        assert frame["code"] == 1008
        assert_open(ws)


def test_add_channel_without_exception_handlers_closing_exception_still_closes() -> None:
    app, _ = make_app(NotFound(), add_exception_handlers=False)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise"})
        assert receive_json(ws)["errors"] == "Not found."
        assert receive_close(ws)[0] == 1008


def test_add_channel_installs_handler_in_fastapi_registry() -> None:
    app, _ = make_app()
    assert WebSocketException in app.exception_handlers


# -- plain Python exceptions ----------------------------------------------------------------------------


def test_action_raises_plain_exception_logged_generic_frame_close_1011(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    app, _ = make_app(ValueError("database password is hunter2"))
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "raise", "request_id": "r-42"})
        text = receive_text(ws)
        assert "hunter2" not in text
        assert "ValueError" not in text
        assert "Traceback" not in text
        assert json.loads(text) == {
            "type": "response",
            "status": "bad",
            "action": "raise",
            "request_id": "r-42",
            "errors": "Internal server error.",
            "code": 1011,
            "close": True,
        }
        code, reason = receive_close(ws)
        assert code == 1011
        assert "hunter2" not in reason
    logged = [record for record in caplog.records if record.exc_info and isinstance(record.exc_info[1], ValueError)]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert "hunter2" in caplog.text
    assert "Traceback" in caplog.text
    assert "raise_" in caplog.text


def test_action_raises_plain_exception_other_client_unaffected(
    backend: dict[str, Any], channel_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    app, _ = make_app(ZeroDivisionError("boom"), channel=channel_name, **backend)
    with TestClient(app) as client:
        with client.websocket_connect("/ws") as healthy, client.websocket_connect("/ws") as crashing:
            # Both are in the channel: a message from either reaches both.
            healthy.send_json({"action": "say", "text": "before"})
            assert receive_json(healthy) == {"said": "before"}
            assert receive_json(crashing) == {"said": "before"}

            crashing.send_json({"action": "raise"})
            assert receive_json(crashing)["errors"] == "Internal server error."
            assert receive_close(crashing)[0] == 1011

            healthy.send_json({"action": "say", "text": "after"})
            assert receive_json(healthy) == {"said": "after"}
            assert_open(healthy)
            with client.websocket_connect("/ws") as newcomer:
                newcomer.send_json({"action": "say", "text": "newcomer"})
                assert receive_json(newcomer) == {"said": "newcomer"}
                assert receive_json(healthy) == {"said": "newcomer"}
