"""The AsyncAPI page: its samples serve valid documents that say what the page promises, and their apps work."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from fastapi_channels.testing import receive_json, receive_text
from tests.asyncapi.validate import assert_valid
from tests.docs.samples import load


def test_asyncapi_chat_sample_documents_route_actions_and_sends() -> None:
    sample = load("asyncapi/chat.py")
    with TestClient(sample.app) as client:
        document = client.get("/asyncapi.json").json()
        page = client.get("/asyncapi").text
        with client.websocket_connect("/rooms/lobby") as websocket:
            assert receive_text(websocket) == "joined"
            websocket.send_json({"action": "say", "text": "hello"})
            assert receive_json(websocket) == {"user": "testclient", "text": "hello"}
            websocket.send_json({"action": "history", "request_id": 1, "limit": 1})
            assert receive_json(websocket)["data"] == [{"user": "testclient", "text": "hello"}]
    assert_valid(document)
    assert (document["info"]["title"], document["info"]["version"]) == ("Chat", "1.2.0")
    channel = document["channels"]["room_endpoint"]
    assert (channel["address"], list(channel["parameters"])) == ("/rooms/{room}", ["room"])
    assert channel["description"] == "Rooms where people talk; the room is the last part of the path."
    operations = document["operations"]
    say = operations["room_endpoint.action.say"]
    assert (say["summary"], say["tags"]) == ("Say something to the room", [{"name": "chat"}])
    assert say["x-fastapi-channels"]["rate_limits"] == [{"times": 5, "milliseconds": 1000, "text": "5 per 1 s"}]
    assert operations["room_endpoint.action.shout"]["x-fastapi-channels"]["deprecated"] is True
    history = channel["messages"]["reply.history"]["payload"]["properties"]["data"]
    assert history == {"items": {"$ref": "#/components/schemas/Message"}, "type": "array"}
    assert channel["messages"]["sends.joined"]["contentType"] == "text/plain"
    assert {"room_endpoint.sends.message", "room_endpoint.sends.joined"} <= set(operations)
    for shown in ("/rooms/{room}", "Say something to the room", "length ≤ 500", "schema-Message", "deprecated"):
        assert shown in page


def test_asyncapi_connect_endpoint_sample_serves_json_only_at_its_path() -> None:
    sample = load("asyncapi/connect_endpoint.py")
    with TestClient(sample.app) as client:
        assert client.get("/asyncapi").status_code == 404
        assert client.get("/asyncapi.json").status_code == 404
        document = client.get("/docs/asyncapi.json").json()
        with client.websocket_connect("/alerts?channel=night-shift") as websocket:
            websocket.send_json({"action": "ack", "request_id": 4, "alert_id": "12"})
            assert receive_json(websocket)["data"] == {"acknowledged": 12}
    assert_valid(document)
    alerts = document["channels"]["alerts"]
    assert alerts["address"] == "/alerts" and "channel" in alerts["bindings"]["ws"]["query"]["properties"]
    assert document["operations"]["alerts.action.ack"]["description"] == "Mark the alert as seen."


def test_asyncapi_in_code_sample_writes_the_document(tmp_path: Path) -> None:
    sample = load("asyncapi/in_code.py")
    sample.write_document(tmp_path / "asyncapi.json")
    document = json.loads((tmp_path / "asyncapi.json").read_text())
    assert_valid(document)
    roll = document["channels"]["dice"]["messages"]["action.roll"]["payload"]["allOf"][0]["$ref"]
    payload = document["components"]["schemas"][roll.rsplit("/", 1)[-1]]
    assert payload["properties"]["sides"]["type"] == "integer" and "sides" not in payload.get("required", [])
    with TestClient(sample.app) as client:
        assert client.get("/asyncapi.json").status_code == 404 and client.get("/asyncapi").status_code == 404
