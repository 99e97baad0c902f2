"""The first-channel page: a channel with actions and a relay channel behave as the page says."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.docs.samples import error_frame, load


def test_first_channel_ping_answers_only_the_sender_and_say_reaches_everyone() -> None:
    sample = load("first_channel/app.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/ws") as ann, client.websocket_connect("/ws") as bob:
            ann.send_json({"action": "ping", "request_id": 1})
            assert ann.receive_json() == {"action": "pong", "request_id": 1}
            ann.send_json({"action": "say", "text": "hello"})
            assert ann.receive_json() == {"action": "said", "text": "hello"}
            assert bob.receive_json() == {"action": "said", "text": "hello"}  # bob never got ann's pong
            bob.send_json({"action": "sing"})
            error = error_frame(bob)
            assert error["errors"] == "The action 'sing' does not exist."
            assert (error["code"], error["close"]) == (1008, False)
            bob.send_json({"action": "ping", "request_id": "b-1"})
            assert bob.receive_json() == {"action": "pong", "request_id": "b-1"}


def test_first_channel_relay_forwards_text_as_it_is_within_one_channel() -> None:
    sample = load("first_channel/relay.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/relay") as ann, client.websocket_connect("/relay") as bob:
            with client.websocket_connect("/relay/attic") as cat:
                ann.send_text("plain words, not JSON")
                assert ann.receive_text() == "plain words, not JSON"
                assert bob.receive_text() == "plain words, not JSON"
                cat.send_text('{"action": "anything"}')
                assert cat.receive_text() == '{"action": "anything"}'  # the attic heard only itself
                assert sample.relay.actions == []
