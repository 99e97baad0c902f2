"""The Several channels page: a chat whose clients join rooms, and topic patterns following sensors."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from fastapi_channels.testing import receive_json
from tests.docs.samples import load


def wrapped(channel: str, data: Any) -> dict[str, Any]:
    return {"type": "broadcast", "channel": channel, "data": data}


def test_multichannel_chat_rooms_joined_by_clients_and_by_server_code() -> None:
    sample = load("multichannel/rooms.py")
    with TestClient(sample.app) as client, client.websocket_connect("/chat?user=ann") as ann:
        assert receive_json(ann) == {"joined": "ann"}
        with client.websocket_connect("/chat?user=bob") as bob:
            assert receive_json(bob) == receive_json(ann) == {"joined": "bob"}
            ann.send_json({"action": "subscribe", "channel": "room:1", "request_id": 1})
            assert receive_json(ann)["data"] == {"channel": "room:1"}
            assert receive_json(ann) == wrapped("room:1", {"joined": "ann"})  # broadcasts reach it wrapped
            bob.send_json({"action": "say", "text": "hi all"})
            assert receive_json(bob) == {"user": "bob", "text": "hi all"}  # bob is in one channel: plain
            assert receive_json(ann) == wrapped("lobby", {"user": "bob", "text": "hi all"})
            bob.send_json({"action": "say", "to": "room:1", "text": "psst"})
            assert receive_json(bob)["errors"] == "Join 'room:1' before you speak there."
            bob.send_json({"action": "subscribe", "channel": "staff:desk", "request_id": 2})
            refused = receive_json(bob)
            assert (refused["status"], refused["code"], refused["close"]) == ("bad", 1008, False)
            ann.send_json({"action": "subscribe", "channel": "staff:desk", "request_id": 3})
            assert receive_json(ann)["status"] == "ok"
            assert receive_json(ann) == wrapped("staff:desk", {"joined": "ann"})
            ann.send_json({"action": "help", "request_id": 4})
            assert receive_json(ann)["data"] == ["lobby", "room:1", "staff:desk", "help:ann"]
            assert receive_json(ann) == wrapped("help:ann", {"joined": "ann"})
            ann.send_json({"action": "unsubscribe", "channel": "room:1", "request_id": 5})
            assert receive_json(ann)["data"] == {"channel": "room:1"}
            ann.close()
            assert receive_json(bob) == {"left": "ann"}  # the lobby's farewell; bob is in no other channel


def test_multichannel_sensors_follow_every_temperature_with_a_topic_pattern() -> None:
    sample = load("multichannel/sensors.py")
    with TestClient(sample.app) as client, client.websocket_connect("/sensors/sensors.kitchen.temp") as dashboard:
        client.post("/sensors/kitchen/humidity", params={"value": 40})
        client.post("/sensors/kitchen/temp", params={"value": 21.5})
        client.post("/sensors/hall/temp", params={"value": 19})
        assert receive_json(dashboard) == {"value": 21.5}
        deadline = time.monotonic() + 5
        while client.get("/temperatures").json() != {"kitchen": 21.5, "hall": 19.0}:
            assert time.monotonic() < deadline, client.get("/temperatures").json()
    assert sample.temperatures == {"kitchen": 21.5, "hall": 19.0}
