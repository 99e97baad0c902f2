"""The wire format: parsing incoming frames, building error frames, and what a client sees for bad frames."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import ParseError, PermissionDenied, RateLimitExceeded, WebSocketException
from fastapi_channels.protocol import (
    INTERNAL_ERROR_MESSAGE,
    action_of,
    error_payload,
    internal_error_payload,
    parse_frame,
    render,
    request_id_of,
)
from fastapi_channels.testing import receive_json, receive_text
from tests.helpers import serve

ERROR_FIELDS = {"type", "status", "action", "request_id", "errors", "code", "close"}


def assert_open(ws: WebSocketTestSession) -> None:
    """Prove the socket still works: a valid action still gets its answer."""
    ws.send_json({"action": "echo", "probe": "still-open"})
    assert receive_json(ws) == {"action": "echo", "probe": "still-open"}


class EchoRoom(Channel):
    @action
    async def echo(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
        await self.broadcast_to_personal(websocket, data)


def make_app() -> FastAPI:
    return serve(EchoRoom())


# -- parse_frame, action_of, request_id_of --------------------------------------------------------------


def test_parse_frame_object_returns_dict() -> None:
    assert parse_frame('{"action": "echo", "n": [1, 2]}') == {"action": "echo", "n": [1, 2]}


@pytest.mark.parametrize("text", ["not json", "{", "{'action': 'x'}", "", '{"action": }'])
def test_parse_frame_invalid_json_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_frame(text)
    assert caught.value.code == 1007
    assert caught.value.close is False
    assert "JSON" in caught.value.error_msg


@pytest.mark.parametrize("text", ["[1, 2]", "[]", "3", "-1.5", '"echo"', "null", "true"])
def test_parse_frame_json_not_object_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_frame(text)
    assert "JSON object" in caught.value.error_msg
    assert caught.value.close is False


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000])
def test_parse_frame_deeply_nested_raises_parse_error_not_recursion_error(text: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_frame(text)
    assert caught.value.close is False


def test_action_of_string_returns_name() -> None:
    assert action_of({"action": "echo"}) == "echo"


@pytest.mark.parametrize("frame", [{}, {"action": None}, {"action": 1}, {"action": ["echo"]}, {"action": ""}])
def test_action_of_missing_or_not_string_raises_parse_error(frame: dict[str, Any]) -> None:
    with pytest.raises(ParseError) as caught:
        action_of(frame)
    assert '"action"' in caught.value.error_msg


@pytest.mark.parametrize(
    ("value", "expected"),
    [(7, 7), (0, 0), (1.5, 1.5), ("abc-1", "abc-1"), ("", ""), (True, None), ([1], None), ({"a": 1}, None)],
)
def test_request_id_of_numbers_and_strings_kept_others_dropped(value: Any, expected: Any) -> None:
    assert request_id_of({"request_id": value}) == expected


def test_request_id_of_missing_returns_none() -> None:
    assert request_id_of({"action": "echo"}) is None


# -- error_payload, internal_error_payload, render ------------------------------------------------------


def test_error_payload_every_field_set() -> None:
    exc = WebSocketException(
        4001,
        "short reason",
        close=False,
        status="warn",
        error_msg="Readable message.",
        data={"field": ["required"]},
        request_id="r-1",
        action="save",
        hint="try later",
    )
    assert error_payload(exc) == {
        "type": "response",
        "status": "warn",
        "action": "save",
        "request_id": "r-1",
        "errors": "Readable message.",
        "code": 4001,
        "close": False,
        "data": {"field": ["required"]},
        "hint": "try later",
    }


def test_error_payload_defaults_fill_required_fields() -> None:
    payload = error_payload(PermissionDenied())
    assert ERROR_FIELDS <= payload.keys()
    assert payload["type"] == "response"
    assert payload["status"] == "bad"
    assert payload["action"] is None
    assert payload["request_id"] is None
    assert "data" not in payload


def test_error_payload_arguments_used_when_exception_has_none() -> None:
    payload = error_payload(ParseError(), action="echo", request_id=9)
    assert payload["action"] == "echo"
    assert payload["request_id"] == 9


def test_error_payload_exception_action_and_request_id_win() -> None:
    payload = error_payload(ParseError(action="mine", request_id="own"), action="other", request_id=9)
    assert payload["action"] == "mine"
    assert payload["request_id"] == "own"


def test_error_payload_extra_fields_cannot_replace_core_fields() -> None:
    payload = error_payload(WebSocketException(errors="sneaky", code_hint=3, retry=True))
    assert payload["errors"] == WebSocketException.default_error_msg
    assert payload["code_hint"] == 3
    assert payload["retry"] is True


def test_error_payload_rate_limit_carries_retry_after() -> None:
    payload = error_payload(RateLimitExceeded(retry_after=2.5))
    assert payload["retry_after"] == 2.5
    assert payload["code"] == 1013
    assert payload["close"] is False


def test_internal_error_payload_reveals_nothing() -> None:
    assert internal_error_payload(action="boom", request_id=3) == {
        "type": "response",
        "status": "bad",
        "action": "boom",
        "request_id": 3,
        "errors": INTERNAL_ERROR_MESSAGE,
        "code": 1011,
        "close": True,
    }
    assert INTERNAL_ERROR_MESSAGE == "Internal server error."


def test_render_non_ascii_kept_readable() -> None:
    text = render({"message": "café 日本語 🙂"})
    assert "café 日本語 🙂" in text
    assert "\\u" not in text
    assert json.loads(text) == {"message": "café 日本語 🙂"}


def test_render_compact_json() -> None:
    assert render({"a": 1, "b": [1, 2]}) == '{"a":1,"b":[1,2]}'


def test_render_non_json_values_become_strings() -> None:
    moment = datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert json.loads(render({"at": moment})) == {"at": moment.isoformat()}


# -- end to end -----------------------------------------------------------------------------------------


def test_valid_frame_whole_object_reaches_action_as_data() -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as ws:
        frame = {"action": "echo", "request_id": 1, "nested": {"list": [1, "two"]}, "text": "héllo"}
        ws.send_json(frame)
        assert receive_json(ws) == frame


@pytest.mark.parametrize("text", ["not json", "{", "{'action': 'echo'}", "echo"])
def test_frame_not_json_error_frame_socket_stays_open(text: str) -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as ws:
        ws.send_text(text)
        frame = receive_json(ws)
        assert ERROR_FIELDS <= frame.keys()
        assert frame["type"] == "response"
        assert frame["status"] == "bad"
        assert frame["action"] is None
        assert frame["request_id"] is None
        assert frame["code"] == 1007
        assert frame["close"] is False
        assert "JSON" in frame["errors"]
        assert_open(ws)


@pytest.mark.parametrize("text", ["[]", '["echo"]', "42", '"echo"', "null", "true"])
def test_frame_json_not_object_error_frame_socket_stays_open(text: str) -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as ws:
        ws.send_text(text)
        frame = receive_json(ws)
        assert frame["status"] == "bad"
        assert "JSON object" in frame["errors"]
        assert frame["close"] is False
        assert_open(ws)


def test_frame_deeply_nested_error_frame_socket_stays_open() -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("[" * 100_000)
        frame = receive_json(ws)
        assert frame["status"] == "bad"
        assert frame["close"] is False
        assert_open(ws)


@pytest.mark.parametrize("request_id", [5, "req-5"])
def test_frame_missing_action_error_frame_echoes_request_id(request_id: int | str) -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"request_id": request_id, "message": "hi"})
        frame = receive_json(ws)
        assert frame["status"] == "bad"
        assert frame["request_id"] == request_id
        assert frame["action"] is None
        assert '"action"' in frame["errors"]
        assert frame["close"] is False
        assert_open(ws)


@pytest.mark.parametrize("name", [1, 1.5, ["echo"], {"name": "echo"}, "", True])
def test_frame_action_not_string_error_frame_socket_stays_open(name: Any) -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": name, "request_id": 2})
        frame = receive_json(ws)
        assert frame["status"] == "bad"
        assert frame["request_id"] == 2
        assert "string" in frame["errors"]
        assert frame["close"] is False
        assert_open(ws)


def test_frame_unknown_action_error_frame_socket_stays_open() -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "nope", "request_id": "r-9"})
        frame = receive_json(ws)
        assert frame["status"] == "bad"
        assert frame["action"] == "nope"
        assert frame["request_id"] == "r-9"
        assert "nope" in frame["errors"]
        assert frame["code"] == 1008
        assert frame["close"] is False
        assert_open(ws)


def test_frame_dunder_action_name_not_dispatched() -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as ws:
        for name in ("__init__", "connect", "broadcast_to_personal", "encode"):
            ws.send_json({"action": name})
            frame = receive_json(ws)
            assert frame["action"] == name
            assert frame["status"] == "bad"
        assert_open(ws)


def test_frame_binary_error_frame_socket_stays_open() -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as ws:
        ws.send_bytes(b'{"action": "echo"}')
        frame = receive_json(ws)
        assert frame["status"] == "bad"
        assert frame["code"] == 1003
        assert frame["close"] is False
        assert "Binary" in frame["errors"]
        assert_open(ws)


def test_error_frame_non_ascii_sent_readable() -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"action": "café"})
        text = receive_text(ws)
        assert "café" in text
        assert "\\u" not in text
        assert json.loads(text)["action"] == "café"


def test_frames_after_many_bad_ones_still_handled_in_order() -> None:
    with TestClient(make_app()) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("bad")
        ws.send_json({"action": "echo", "n": 1})
        ws.send_bytes(b"\x00")
        ws.send_json({"action": "echo", "n": 2})
        assert receive_json(ws)["status"] == "bad"
        assert receive_json(ws) == {"action": "echo", "n": 1}
        assert receive_json(ws)["code"] == 1003
        assert receive_json(ws) == {"action": "echo", "n": 2}
