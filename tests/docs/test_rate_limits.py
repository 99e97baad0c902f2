"""The rate-limits page: per-action and channel-wide limits, identifiers, callbacks and room caps."""

from __future__ import annotations

import pytest
from fastapi import WebSocket
from fastapi.testclient import TestClient

from fastapi_channels.throttling import limiter
from tests.docs.samples import error_frame, load, refused, spend


def test_rate_limits_on_actions_in_either_decorator_order() -> None:
    sample = load("rate_limits/actions.py")
    with TestClient(sample.app) as client, client.websocket_connect("/chat") as websocket:
        for action, times, retry_after in (("message", 3, 2), ("typing", 1, 2), ("search", 2, 0.5), ("nudge", 1, 60)):
            spend(websocket, action, times)
            error = refused(websocket, action)
            assert retry_after / 2 < error["retry_after"] <= retry_after
            assert error["errors"].startswith("Too many requests. Retry in ")


def test_rate_limits_are_per_client_channel_and_action() -> None:
    sample = load("rate_limits/actions.py")
    with TestClient(sample.app) as client, client.websocket_connect("/chat") as first:
        spend(first, "message", 3)
        refused(first, "message")
        spend(first, "typing", 1)  # another action has its own budget
        with client.websocket_connect("/chat") as second:  # same address, no login: the same client
            refused(second, "message")
    sample.chat.channel = "other-chat"
    with TestClient(sample.app) as client, client.websocket_connect("/chat") as websocket:
        spend(websocket, "message", 3)  # another channel has its own budget


def test_rate_limits_requests_refused_earlier_spend_nothing() -> None:
    sample = load("rate_limits/channel_wide.py")

    @sample.quiet.action("secret", permission=False)
    async def secret(websocket: WebSocket) -> None:
        await sample.quiet.broadcast_to_personal(websocket, "never")

    with TestClient(sample.app) as client, client.websocket_connect("/quiet") as websocket:
        for frame in ("not json", '{"action": "nothing"}', '{"action": "secret"}') * 5:
            websocket.send_text(frame)
            assert error_frame(websocket)["code"] in (1007, 1008)
        spend(websocket, "say", 20)  # the channel-wide budget of 20 is still whole
        refused(websocket, "wave")


def test_rate_limits_custom_identifier_gives_each_device_a_budget() -> None:
    sample = load("rate_limits/identifier.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/sensors?device=a") as a, client.websocket_connect("/sensors?device=b") as b:
            for value in (1, 2):
                a.send_json({"action": "reading", "value": value})
                assert a.receive_json() == b.receive_json() == {"action": "reading", "value": value}
            refused(a, "reading")
            b.send_json({"action": "reading", "value": 3})
            assert b.receive_json() == {"action": "reading", "value": 3}


def test_rate_limits_ws_callback_replaces_the_error_frame() -> None:
    sample = load("rate_limits/identifier.py")
    with TestClient(sample.app) as client, client.websocket_connect("/sensors") as websocket:
        websocket.send_json({"action": "calibrate"})
        assert websocket.receive_json() == {"action": "calibrate", "status": "started"}
        websocket.send_json({"action": "calibrate"})
        frame = websocket.receive_json()
        assert frame["action"] == "slow_down" and 15_000 < frame["retry_after_ms"] <= 30_000
        websocket.send_json({"action": "reading", "value": 1})  # the refused calibrate sent nothing more
        assert websocket.receive_json() == {"action": "reading", "value": 1}


def test_rate_limits_channel_wide_default_counts_every_action() -> None:
    sample = load("rate_limits/channel_wide.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/quiet") as websocket:
            spend(websocket, "say", 10)
            spend(websocket, "wave", 10)
            refused(websocket, "say")
        with client.websocket_connect("/unlimited") as websocket:
            spend(websocket, "say", 25)
        with client.websocket_connect("/relay") as websocket:
            for number in range(3):
                websocket.send_text(f"line {number}")
                assert websocket.receive_text() == f"line {number}"
            websocket.send_text("line 3")
            error = error_frame(websocket)
            assert (error["code"], error["close"], error["action"]) == (1013, False, None)


def test_rate_limits_fastapi_limiter_caps_the_whole_room() -> None:
    sample = load("rate_limits/room_cap.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/auditorium") as ann, client.websocket_connect("/auditorium") as bob:
            for number in range(100):
                (ann if number % 2 else bob).send_json({"action": "question", "text": str(number)})
                assert ann.receive_json() == bob.receive_json()
            for websocket in (ann, bob):
                websocket.send_json({"action": "question", "text": "one more"})
                error = error_frame(websocket)
                assert (error["errors"], error["code"], error["close"]) == ("Too many requests.", 1013, False)
                assert "retry_after" not in error


def test_rate_limits_authenticated_users_have_their_own_budget() -> None:
    sample = load("permissions/authenticated.py")

    @limiter(times=1, minutes=1)
    @sample.inbox.action("send")
    async def send(websocket: WebSocket) -> None:
        await sample.inbox.broadcast_to_personal(websocket, "sent")

    with TestClient(sample.app) as client:
        with client.websocket_connect("/inbox?token=token-alice") as alice:
            spend(alice, "send", 1)
            refused(alice, "send")
            with client.websocket_connect("/inbox?token=token-bob") as bob:  # same address, another user
                spend(bob, "send", 1)


def test_rate_limits_contradicting_limits_fail_at_definition() -> None:
    with pytest.raises(ValueError, match="contradict"):
        limiter(times=10, seconds=1)(limiter(times=5, minutes=1)(lambda: None))
    with pytest.raises(ValueError, match="needs a period"):
        limiter(times=1)
