"""The protocol page: encode_json shapes replies; bad frames answer parse errors and keep the socket."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.docs.samples import error_frame, load


def test_protocol_encode_json_shapes_messages_and_runs_once_per_broadcast() -> None:
    sample = load("protocol/encode_json.py")
    calls: list[Any] = []
    original = sample.Calculator.encode_json

    async def counting(data: Any) -> str:
        calls.append(data)
        return await original(data)

    sample.Calculator.encode_json = staticmethod(counting)
    with TestClient(sample.app) as client:
        with client.websocket_connect("/calculator") as ann, client.websocket_connect("/calculator") as bob:
            ann.send_json({"action": "add", "numbers": [1, 2, 3], "request_id": "r1"})
            assert ann.receive_text() == '{"action":"add","status":"ok","result":6,"request_id":"r1"}'
            ann.send_json({"action": "total_for_everyone", "numbers": [2, 2]})
            expected = {"action": "total", "status": "ok", "result": 4, "request_id": None}
            assert ann.receive_json() == bob.receive_json() == expected
            assert len(calls) == 2  # one reply, one broadcast: never once per recipient
            ann.send_json({"action": "motd"})
            assert ann.receive_text() == "Numbers in, sums out."
            ann.send_json({"action": "divide"})
            assert error_frame(ann)["code"] == 1008  # error frames keep their own shape
            assert len(calls) == 2


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("not json", "The message is not valid JSON."),
        ("[1, 2]", 'The message must be a JSON object such as {"action": "..."}.'),
        ('{"request_id": 3}', 'The message has no "action" field.'),
        ('{"action": 42, "request_id": 3}', 'The "action" field must be a non-empty string.'),
        ("[" * 100_000, "The message is nested too deeply."),
    ],
)
def test_protocol_bad_frames_answer_parse_errors_and_stay_open(frame: str, message: str) -> None:
    sample = load("first_channel/app.py")
    with TestClient(sample.app) as client, client.websocket_connect("/ws") as websocket:
        websocket.send_text(frame)
        error = error_frame(websocket)
        assert (error["errors"], error["code"], error["close"]) == (message, 1007, False)
        if frame.startswith("{"):
            assert error["request_id"] == 3
        websocket.send_json({"action": "ping", "request_id": 1})
        assert websocket.receive_json() == {"action": "pong", "request_id": 1}


def test_protocol_binary_frame_answers_unsupported_data_and_stays_open() -> None:
    sample = load("first_channel/app.py")
    with TestClient(sample.app) as client, client.websocket_connect("/ws") as websocket:
        websocket.send_bytes(b'{"action": "ping"}')
        error = error_frame(websocket)
        assert (error["errors"], error["code"], error["close"]) == (
            "Binary frames are not supported: send JSON text.",
            1003,
            False,
        )
        websocket.send_json({"action": "ping", "request_id": 2.5})
        assert websocket.receive_json() == {"action": "pong", "request_id": 2.5}
