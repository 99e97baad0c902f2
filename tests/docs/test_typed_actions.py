"""The typed actions page: payloads validated from type hints, validation error frames, replies and metadata."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fastapi_channels.testing import receive_text
from tests.docs.samples import error_frame, load


def reply(action: str, request_id: Any, data: Any) -> dict[str, Any]:
    return {"type": "response", "status": "ok", "action": action, "request_id": request_id, "data": data}


def test_typed_actions_payloads_model_and_fields_by_name() -> None:
    sample = load("typed_actions/payloads.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/canvas") as ann, client.websocket_connect("/canvas") as bob:
            ann.send_json({"action": "draw", "request_id": 1, "x": 3, "y": "4"})
            assert ann.receive_json() == bob.receive_json() == {"action": "draw", "x": 3, "y": 4, "color": "black"}
            ann.send_json({"action": "zoom", "request_id": 2, "level": 3})
            assert ann.receive_json() == reply("zoom", 2, {"level": 3, "smooth": False})
            ann.send_json({"action": "zoom", "request_id": 3, "level": 30, "smooth": True})
            error = error_frame(ann)
            assert (error["code"], error["close"], error["request_id"]) == (1007, False, 3)
            too_far = "Input should be less than or equal to 10"
            assert error["detail"] == [{"loc": ["payload", "level"], "msg": too_far, "type": "less_than_equal"}]
            bob.send_json({"action": "clear"})
            assert ann.receive_json() == bob.receive_json() == {"action": "clear"}


def test_typed_actions_validation_error_frame_as_shown() -> None:
    sample = load("typed_actions/validation.py")
    with TestClient(sample.app) as client, client.websocket_connect("/shop") as websocket:
        websocket.send_text('{"action": "order", "request_id": 8, "quantity": 0, "colour": "red"}')
        assert receive_text(websocket) == (
            '{"type":"response","status":"bad","action":"order","request_id":8,'
            '"errors":"The payload is not valid: payload.item: Field required; payload.quantity: Input should be '
            'greater than 0; payload.colour: Extra inputs are not permitted","code":1007,"close":false,'
            '"detail":[{"loc":["payload","item"],"msg":"Field required","type":"missing"},'
            '{"loc":["payload","quantity"],"msg":"Input should be greater than 0","type":"greater_than"},'
            '{"loc":["payload","colour"],"msg":"Extra inputs are not permitted","type":"extra_forbidden"}]}'
        )
        websocket.send_text('{"action": "order", "request_id": 9, "item": "tea"}')
        assert receive_text(websocket) == (
            '{"type":"response","status":"ok","action":"order","request_id":9,"data":{"item":"tea","quantity":1}}'
        )


def test_typed_actions_replies_through_the_response_model() -> None:
    sample = load("typed_actions/replies.py")
    with TestClient(sample.app) as client, client.websocket_connect("/directory") as websocket:
        websocket.send_json({"action": "profile", "request_id": "p1", "name": "ada"})
        assert receive_text(websocket) == (
            '{"type":"response","status":"ok","action":"profile","request_id":"p1",'
            '"data":{"name":"ada","nickname":null}}'
        )
        websocket.send_json({"action": "profile", "name": "eve"})
        assert error_frame(websocket)["errors"] == "There is no user 'eve'."
        websocket.send_json({"action": "compact", "request_id": 2, "name": "ada"})
        assert websocket.receive_json() == reply("compact", 2, {"name": "ada"})
        websocket.send_json({"action": "compact", "request_id": 3, "name": "eve"})  # None: no reply
        websocket.send_json({"action": "names", "request_id": 4})
        assert websocket.receive_json() == reply("names", 4, ["ada", "bob"])


def test_typed_actions_metadata_on_the_spec_and_the_registry(capsys: Any) -> None:
    sample = load("typed_actions/metadata.py")
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["Move a piece ('game',) Move a piece and return the new position.", "['piece', 'to']"]
    assert sample.spec.description == "Moves one of your pieces; everyone sees it."
    resign = sample.blitz.get_action("resign").spec
    assert (resign.summary, resign.tags) == ("Give up", ("game", "end"))
    assert "resign" not in sample.chess.actions
    with TestClient(sample.app) as client, client.websocket_connect("/chess") as websocket:
        websocket.send_json({"action": "move", "request_id": 1, "piece": "knight", "to": "f3"})
        assert websocket.receive_json() == reply("move", 1, {"board": {"f3": "knight"}})
