"""``fastapi_channels.testing``: reading frames and closes with a timeout, and sending actions."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from fastapi_channels.testing import receive, receive_close, receive_json, receive_text, send_action

SHORT = 0.1


def scripted_app() -> FastAPI:
    """An app whose socket at /ws obeys ``say <text>``, ``bytes <text>`` and ``close <code> <reason>``.

    Any other text is sent back unchanged.
    """
    app = FastAPI()

    @app.websocket("/ws")
    async def script(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            command, _, rest = text.partition(" ")
            if command == "say":
                await websocket.send_text(rest)
            elif command == "bytes":
                await websocket.send_bytes(rest.encode())
            elif command == "close":
                code, _, reason = rest.partition(" ")
                await websocket.close(int(code), reason)
                return
            else:
                await websocket.send_text(text)

    return app


@pytest.fixture
def ws() -> Iterator[WebSocketTestSession]:
    with TestClient(scripted_app()) as client, client.websocket_connect("/ws") as session:
        yield session


def test_receive_frame_sent_returns_its_message(ws: WebSocketTestSession) -> None:
    ws.send_text("say hello")
    assert receive(ws) == {"type": "websocket.send", "text": "hello"}


def test_receive_text_and_json_frame_sent_return_text_and_decoded_value(ws: WebSocketTestSession) -> None:
    ws.send_text("say plain words")
    assert receive_text(ws) == "plain words"
    ws.send_text('say {"n": [1, 2], "ok": true}')
    assert receive_json(ws) == {"n": [1, 2], "ok": True}


def test_receive_nothing_sent_raises_assertion_error_after_timeout(ws: WebSocketTestSession) -> None:
    with pytest.raises(AssertionError, match=r"The server sent nothing within 0\.1 s\."):
        receive(ws, SHORT)
    # The wait that timed out is taken over, not lost: the frame sent later still arrives.
    ws.send_text("say late")
    assert receive_text(ws) == "late"


def test_receive_several_timeouts_then_frames_none_lost_and_in_order(ws: WebSocketTestSession) -> None:
    with pytest.raises(AssertionError):
        receive_text(ws, SHORT)
    with pytest.raises(AssertionError):
        receive_json(ws, SHORT)
    ws.send_text("say first")
    ws.send_text("say second")
    ws.send_text("say third")
    assert receive_text(ws) == "first"
    assert receive_text(ws) == "second"
    assert receive(ws) == {"type": "websocket.send", "text": "third"}


def test_receive_close_server_closes_returns_code_and_reason(ws: WebSocketTestSession) -> None:
    ws.send_text("close 4001 come back later")
    assert receive_close(ws) == (4001, "come back later")


def test_receive_close_without_reason_returns_empty_reason(ws: WebSocketTestSession) -> None:
    ws.send_text("close 1000")
    assert receive_close(ws) == (1000, "")


@pytest.mark.parametrize(
    ("command", "read", "expected", "named"),
    [
        ("say not a close", receive_close, "Expected the server to close the socket", ["not a close"]),
        ("close 1008 go away", receive_text, "Expected a text frame", ["websocket.close", "1008"]),
        ("bytes raw", receive_text, "Expected a text frame", ["bytes"]),
    ],
    ids=["close-got-text", "text-got-close", "text-got-bytes"],
)
def test_receive_other_kind_of_message_fails_naming_what_arrived(
    ws: WebSocketTestSession,
    command: str,
    read: Callable[[WebSocketTestSession], object],
    expected: str,
    named: list[str],
) -> None:
    ws.send_text(command)
    with pytest.raises(AssertionError, match=expected) as caught:
        read(ws)
    for part in named:
        assert part in str(caught.value)


def test_send_action_sends_one_json_object_with_action_and_fields(ws: WebSocketTestSession) -> None:
    send_action(ws, "chat", request_id=7, message="café", tags=["a", "b"], extra=None)
    assert json.loads(receive_text(ws)) == {
        "action": "chat",
        "request_id": 7,
        "message": "café",
        "tags": ["a", "b"],
        "extra": None,
    }


def test_send_action_without_fields_sends_only_the_action(ws: WebSocketTestSession) -> None:
    send_action(ws, "ping")
    assert receive_json(ws) == {"action": "ping"}
