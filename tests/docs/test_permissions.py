"""The permissions page: channel and action permissions, compositions, authentication, app defaults."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.docs.samples import close_code, error_frame, load


def test_permissions_channel_level_denial_closes_the_connection() -> None:
    sample = load("permissions/classes.py")
    with TestClient(sample.app) as client, client.websocket_connect("/boards/cooking") as websocket:
        error = error_frame(websocket)
        assert error["errors"] == "You do not have permission to perform this action."
        assert (error["action"], error["code"], error["close"]) == (None, 1008, True)
        assert close_code(websocket) == 1008


def test_permissions_action_level_denial_keeps_the_connection() -> None:
    sample = load("permissions/classes.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/boards/python") as ann:
            ann.send_json({"action": "post", "text": "hello"})
            assert ann.receive_json() == {"action": "post", "text": "hello"}
            ann.send_json({"action": "pin", "post": 1, "request_id": 9})
            error = error_frame(ann)
            assert (error["action"], error["request_id"], error["code"], error["close"]) == ("pin", 9, 1008, False)
            with client.websocket_connect("/boards/python?role=moderator") as mod:
                mod.send_json({"action": "pin", "post": 1})
                assert mod.receive_json() == ann.receive_json() == {"action": "pin", "post": 1}


@pytest.mark.parametrize(
    ("query", "headers", "action", "allowed"),
    [
        ("user=ann&author=ann", {}, "edit", True),
        ("user=ann&author=bob", {}, "edit", False),
        ("user=ann&author=bob&role=moderator", {}, "edit", True),
        ("user=ann&role=moderator", {}, "export", False),
        ("user=ann&role=moderator", {"x-api-key": "let-me-in"}, "export", True),
        ("user=ann", {"x-api-key": "let-me-in"}, "export", False),
        ("user=ann", {}, "report", True),
        ("user=ann&role=moderator", {}, "report", False),
        ("user=ann&role=moderator", {}, "lock", True),
        ("user=ann", {}, "lock", False),
        ("user=ann&role=moderator", {}, "purge", False),
    ],
)
def test_permissions_compositions_decide_per_action(
    query: str, headers: dict[str, str], action: str, allowed: bool
) -> None:
    sample = load("permissions/composition.py")
    with TestClient(sample.app) as client, client.websocket_connect(f"/forum?{query}", headers=headers) as websocket:
        websocket.send_json({"action": action})
        frame = websocket.receive_json()
        if allowed:
            assert frame == {"action": action, "status": "ok"}
        else:
            assert (frame["errors"], frame["close"]) == ("You do not have permission to perform this action.", False)


def test_permissions_async_function_at_channel_level_refuses_banned_users() -> None:
    sample = load("permissions/composition.py")
    with TestClient(sample.app) as client, client.websocket_connect("/forum?user=mallory") as websocket:
        assert error_frame(websocket)["close"] is True
        assert close_code(websocket) == 1008


def test_permissions_is_authenticated_uses_the_authentication_middleware() -> None:
    sample = load("permissions/authenticated.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/inbox") as anonymous:
            assert error_frame(anonymous)["code"] == 1008
            assert close_code(anonymous) == 1008
        with client.websocket_connect("/inbox?token=token-alice") as alice:
            alice.send_json({"action": "whoami"})
            assert alice.receive_json() == {"user": "alice"}


def test_permissions_app_default_applies_to_channels_without_their_own() -> None:
    sample = load("permissions/global_default.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/unfinished") as websocket:
            assert error_frame(websocket)["close"] is True
            assert close_code(websocket) == 1008
        with client.websocket_connect("/staff") as websocket:
            error_frame(websocket)
            assert close_code(websocket) == 1008
        for path in ("/public", "/staff?badge=staff"):
            with client.websocket_connect(path) as websocket:
                websocket.send_json({"action": "hello"})
                assert websocket.receive_text() == "hello"
