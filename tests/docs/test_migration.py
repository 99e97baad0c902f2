"""The migration page: rooms written for the old API work unchanged."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.docs.samples import close_code, error_frame, load


def test_migration_legacy_rooms_work_unchanged() -> None:
    sample = load("migration/legacy_rooms.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/room") as websocket:
            websocket.send_json({"action": "count", "request_id": 7})
            reply = {"action": "count", "message": 1, "status": "ok", "request_id": 7}
            assert websocket.receive_json() == reply  # JSON once: not a JSON string inside a JSON string
            websocket.send_json({"action": "count", "request_id": 8})
            websocket.receive_json()
            websocket.send_json({"action": "count", "request_id": 9})
            assert error_frame(websocket)["code"] == 1013  # two per minute
            websocket.send_json({"action": "message", "request_id": "m"})
            assert websocket.receive_json() == {"action": "message", "message": None, "status": "ok", "request_id": "m"}
            websocket.send_json({"action": "permission_denied"})
            assert error_frame(websocket)["close"] is False
            websocket.send_json({"action": "error"})
            assert error_frame(websocket)["close"] is False
            websocket.send_json({"action": "close"})
            assert close_code(websocket) == 1000
        with client.websocket_connect("/group") as websocket:
            assert websocket.receive_text() == "Join successfully"
    assert sample.group.max_connection == 200
