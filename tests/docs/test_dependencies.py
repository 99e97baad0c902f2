"""The dependencies page: Depends in actions, yield cleanup, action and channel dependencies, errors."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fastapi_channels.testing import receive_close, receive_json
from tests.docs.samples import error_frame, load


def reply(action: str, request_id: Any, data: Any) -> dict[str, Any]:
    return {"type": "response", "status": "ok", "action": action, "request_id": request_id, "data": data}


def test_dependencies_basics_fill_parameters_from_the_socket_and_sub_dependencies() -> None:
    sample = load("dependencies/basics.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/notes?token=t-ann") as ann, client.websocket_connect("/notes") as anonymous:
            ann.send_json({"action": "whoami", "request_id": 1})
            assert receive_json(ann) == reply("whoami", 1, "ann")
            ann.send_json({"action": "write", "text": "hi"})
            assert receive_json(ann) == receive_json(anonymous) == {"action": "write", "by": "ann", "text": "hi"}
            ann.send_json({"action": "page", "request_id": 2, "page": 3})
            assert receive_json(ann) == reply("page", 2, {"user": "ann", "page": 3, "size": 20})
            anonymous.send_json({"action": "whoami", "request_id": 3})
            error = error_frame(anonymous)
            assert (error["errors"], error["request_id"], error["code"], error["close"]) == (
                "Unknown token.",
                3,
                1008,
                False,
            )


def test_dependencies_cleanup_commits_after_success_and_rolls_back_after_a_failure() -> None:
    sample = load("dependencies/cleanup.py")
    with TestClient(sample.app) as client, client.websocket_connect("/bank") as websocket:
        websocket.send_json({"action": "deposit", "request_id": 1, "amount": 5})
        assert receive_json(websocket) == reply("deposit", 1, ["deposit 5"])
        assert sample.LEDGER == ["deposit 5"]  # committed before the reply was sent
        websocket.send_json({"action": "deposit", "request_id": 2, "amount": -1})
        error = error_frame(websocket)
        assert (error["errors"], error["request_id"], error["close"]) == ("Deposit a positive amount.", 2, False)
    assert sample.LEDGER == ["deposit 5"]
    assert sample.EVENTS == [
        "start deposit",
        "end deposit",
        "start deposit",
        "rolled back after WebSocketException",
        "end deposit",
    ]


def test_dependencies_guards_run_for_the_action_or_the_whole_channel() -> None:
    sample = load("dependencies/guards.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/admin") as websocket:
            websocket.send_json({"action": "status", "request_id": 1})
            assert receive_json(websocket) == reply("status", 1, "ok")
            websocket.send_json({"action": "restart", "request_id": 2})
            error = error_frame(websocket)
            assert (error["errors"], error["action"], error["request_id"]) == (
                "A valid X-API-Key header is required.",
                "restart",
                2,
            )
        with client.websocket_connect("/admin", headers={"X-API-Key": "secret"}) as websocket:
            websocket.send_json({"action": "restart", "request_id": 3})
            assert receive_json(websocket) == reply("restart", 3, "restarting")
        with client.websocket_connect("/locked") as websocket:
            websocket.send_json({"action": "status", "request_id": 4})
            assert error_frame(websocket)["request_id"] == 4
    assert sample.AUDIT == ["status #1", "restart #2", "restart #3", "status #4"]


def test_dependencies_errors_http_exception_is_a_frame_and_websocket_exception_closes() -> None:
    sample = load("dependencies/errors.py")
    with TestClient(sample.app) as client:
        assert client.get("/me").status_code == 401
        assert client.get("/me", headers={"Authorization": "Bearer letmein"}).json() == {"user": "ann"}
        with client.websocket_connect("/inbox") as websocket:
            websocket.send_json({"action": "whoami", "request_id": 1})
            assert receive_json(websocket) == {
                "type": "response",
                "status": "bad",
                "action": "whoami",
                "request_id": 1,
                "errors": "Not authenticated",
                "code": 1008,
                "close": False,
                "status_code": 401,
            }
            websocket.send_json({"action": "post", "request_id": 2, "text": "still open"})
            assert receive_json(websocket) == reply("post", 2, "still open")
        with client.websocket_connect("/inbox", headers={"Authorization": "Bearer letmein"}) as websocket:
            websocket.send_json({"action": "whoami", "request_id": 3})
            assert receive_json(websocket) == reply("whoami", 3, "ann")
        with client.websocket_connect("/inbox", headers={"User-Agent": "crawler-bot"}) as websocket:
            websocket.send_json({"action": "post", "request_id": 4, "text": "spam"})
            error = error_frame(websocket)
            assert (error["errors"], error["code"], error["close"]) == ("No bots.", 1008, True)
            assert receive_close(websocket) == (1008, "No bots.")
