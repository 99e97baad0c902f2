"""The exceptions page: raised exceptions become error frames; the page's tables match the classes."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import fastapi_channels
from fastapi_channels import exceptions
from fastapi_channels.channels import Channel
from tests.docs.samples import DOCS, close_code, error_frame, load


def test_exceptions_raised_in_actions_become_error_frames(caplog: pytest.LogCaptureFixture) -> None:
    sample = load("exceptions/raising.py")
    with TestClient(sample.app) as client, client.websocket_connect("/shop") as websocket:
        websocket.send_json({"action": "buy", "item": "tea", "request_id": 1})
        assert websocket.receive_json() == {"action": "buy", "item": "tea", "left": 2}
        websocket.send_json({"action": "buy", "item": "coffee", "request_id": 2})
        assert error_frame(websocket) == {
            "type": "response",
            "status": "bad",
            "action": "buy",
            "request_id": 2,
            "errors": "We do not sell 'coffee'.",
            "code": 1008,
            "close": False,
        }
        websocket.send_json({"action": "buy", "item": "cake", "request_id": 3})
        assert error_frame(websocket) == {
            "type": "response",
            "status": "bad",
            "action": "buy",
            "request_id": 3,
            "errors": "This item is sold out.",
            "code": 1008,
            "close": False,
            "data": {"item": "cake"},
            "restock_in_days": 2,
        }
        websocket.send_json({"action": "shoplift"})
        error = error_frame(websocket)
        assert (error["errors"], error["close"]) == ("You have been shown the door.", True)
        with pytest.raises(WebSocketDisconnect) as closed:
            websocket.receive_text()
        assert (closed.value.code, closed.value.reason) == (1008, "You have been shown the door.")
    with caplog.at_level(logging.ERROR, logger="fastapi_channels"), TestClient(sample.app) as client:
        with client.websocket_connect("/shop") as bystander, client.websocket_connect("/shop") as websocket:
            websocket.send_json({"action": "checkout", "request_id": "c"})
            assert error_frame(websocket) == {
                "type": "response",
                "status": "bad",
                "action": "checkout",
                "request_id": "c",
                "errors": "Internal server error.",
                "code": 1011,
                "close": True,
            }
            assert close_code(websocket) == 1011
            bystander.send_json({"action": "buy", "item": "tea"})
            assert bystander.receive_json()["left"] == 1
    crash = [record for record in caplog.records if record.exc_info]
    assert crash and "the till is broken" in str(crash[0].exc_info[1])


def test_exceptions_custom_handler_from_the_app_registry_replaces_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sample = load("exceptions/custom_handler.py")
    with caplog.at_level(logging.INFO, logger="myapp"), TestClient(sample.app) as client:
        with client.websocket_connect("/vault") as websocket:
            websocket.send_json({"action": "open", "request_id": 5})
            error = error_frame(websocket)
            assert (error["login_url"], error["request_id"]) == ("/login", 5)
            assert (error["code"], error["close"]) == (1008, False)
            websocket.send_json({"action": "lock"})
            assert "login_url" not in error_frame(websocket)  # ActionNotExist still uses the default handler
    assert "Denied open on /vault" in caplog.text


def test_exceptions_custom_handler_that_does_not_close_still_keeps_a_denied_client_out() -> None:
    app = FastAPI()
    fastapi_channels.add_channel(app)
    room = Channel(permission_classes=False)

    async def quiet(websocket: WebSocket, exc: exceptions.PermissionDenied) -> None:
        await websocket.send_text("denied, quietly")

    app.add_exception_handler(exceptions.PermissionDenied, quiet)

    @app.websocket("/room")
    async def room_endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    with TestClient(app) as client, client.websocket_connect("/room") as websocket:
        assert websocket.receive_text() == "denied, quietly"
        assert close_code(websocket) == 1000


@pytest.mark.parametrize("add_exception_handlers", [True, False])
def test_exceptions_without_registered_handler_channels_still_answer_frames(add_exception_handlers: bool) -> None:
    app = FastAPI()
    fastapi_channels.add_channel(app, add_exception_handlers=add_exception_handlers)
    room = Channel()

    @room.action()
    async def forbidden(websocket: WebSocket) -> None:
        raise exceptions.PermissionDenied(close=False)

    @app.websocket("/room")
    async def room_endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    @app.websocket("/outside")
    async def outside(websocket: WebSocket) -> None:
        await websocket.accept()
        raise exceptions.NotFound(error_msg="No such room.")

    assert (exceptions.WebSocketException in app.exception_handlers) is add_exception_handlers
    with TestClient(app) as client:
        with client.websocket_connect("/room") as websocket:
            websocket.send_json({"action": "forbidden"})
            assert error_frame(websocket)["close"] is False
        with client.websocket_connect("/outside") as websocket:
            if add_exception_handlers:
                assert error_frame(websocket)["errors"] == "No such room."
            assert close_code(websocket) == 1008


def close_code_table() -> dict[str, tuple[int, bool]]:
    """Read the exception table of the exceptions page: class name -> (close code, closes the socket)."""
    rows = re.findall(r"^\| `(\w+)` \| (\d{4}) \| (closes|stays open) \|", (DOCS / "exceptions.md").read_text(), re.M)
    return {name: (int(code), closes == "closes") for name, code, closes in rows}


def test_exceptions_page_table_matches_every_exception_class() -> None:
    table = close_code_table()
    classes = {name: getattr(exceptions, name) for name in exceptions.__all__}
    assert set(table) == set(classes)
    for name, klass in classes.items():
        assert table[name] == (klass.default_code, klass.default_close), name


def test_exceptions_page_close_code_table_lists_the_codes_in_use() -> None:
    text = (DOCS / "exceptions.md").read_text()
    for code in (1000, 1003, 1007, 1008, 1011, 1013):
        assert re.search(rf"^\| {code} \|", text, re.M), code
