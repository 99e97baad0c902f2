"""The actions page: naming, keywords, inheritance, function actions, duplicates and deprecation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import WebSocket
from fastapi.testclient import TestClient

from fastapi_channels.channels import Channel
from fastapi_channels.decorators import get_action_spec
from tests.docs.samples import error_frame, load


def test_actions_methods_are_named_by_decorator_or_function() -> None:
    sample = load("actions/methods.py")
    assert sample.lobby.actions == ["hello", "shout", "rooms"]
    spec = get_action_spec(sample.Lobby.list_rooms)
    assert spec is not None and spec.doc == "List the rooms a client can join."
    with TestClient(sample.app) as client:
        with client.websocket_connect("/lobby") as ann, client.websocket_connect("/lobby") as bob:
            ann.send_json({"action": "hello"})
            assert ann.receive_json() == {"action": "hello", "text": "Welcome to the lobby!"}
            ann.send_json({"action": "shout", "text": "hey"})
            assert ann.receive_json() == bob.receive_json() == {"action": "shout", "text": "HEY"}
            bob.send_json({"action": "rooms"})
            assert bob.receive_json()["rooms"] == ["lobby", "games", "music"]
            bob.send_json({"action": "broadcast_shout"})  # the method name is not an action name
            assert error_frame(bob)["errors"] == "The action 'broadcast_shout' does not exist."


def test_actions_functions_belong_to_one_channel_object_only() -> None:
    sample = load("actions/functions.py")
    assert sample.support.actions == ["ask", "hours"]
    assert sample.sales.actions == []
    assert Channel().actions == []
    with TestClient(sample.app) as client:
        with client.websocket_connect("/support") as support, client.websocket_connect("/sales") as sales:
            support.send_json({"action": "ask", "text": "Is it on?"})
            assert support.receive_json() == {"action": "question", "text": "Is it on?"}
            support.send_json({"action": "hours"})
            assert support.receive_json() == {"action": "hours", "open": "9:00-17:00"}
            sales.send_json({"action": "ask", "text": "Discount?"})
            assert error_frame(sales)["errors"] == "The action 'ask' does not exist."


def test_actions_handlers_receive_only_the_keywords_they_name() -> None:
    sample = load("actions/keywords.py")
    with TestClient(sample.app) as client, client.websocket_connect("/tools") as websocket:
        websocket.send_json({"action": "ping"})
        assert websocket.receive_text() == "pong"
        websocket.send_json({"action": "echo", "text": "hi", "request_id": "r-7"})
        assert websocket.receive_json() == {"request_id": "r-7", "echo": "hi"}
        websocket.send_json({"action": "echo", "text": "no id"})
        assert websocket.receive_json() == {"request_id": None, "echo": "no id"}
        websocket.send_json({"action": "where"})
        assert websocket.receive_json() == {"action": "where", "channel": "default_channel"}
        websocket.send_json({"action": "classic", "request_id": 3})
        assert websocket.receive_json() == {"action": "classic", "extra": []}


def test_actions_handler_with_kwargs_may_name_more_keywords() -> None:
    sample = load("actions/keywords.py")

    @sample.toolbox.action("both")
    async def both(websocket: WebSocket, action: str, request_id: Any, **kwargs: Any) -> None:
        await sample.toolbox.broadcast_to_personal(websocket, {"action": action, "rest": sorted(kwargs)})

    with TestClient(sample.app) as client, client.websocket_connect("/tools") as websocket:
        websocket.send_json({"action": "both", "request_id": 1})
        assert websocket.receive_json() == {"action": "both", "rest": ["channel", "data"]}


def test_actions_are_inherited_and_can_be_overridden() -> None:
    sample = load("actions/inheritance.py")
    assert sample.team.actions == ["report", "standup", "rules"]
    assert sample.ModeratedRoom().actions == ["report", "rules"]
    with TestClient(sample.app) as client, client.websocket_connect("/team") as websocket:
        websocket.send_json({"action": "report"})
        assert websocket.receive_json() == {"action": "report", "status": "received"}
        websocket.send_json({"action": "rules"})
        assert websocket.receive_json()["rules"] == ["Be kind.", "Stand up at 9."]
        websocket.send_json({"action": "standup", "text": "done"})
        assert websocket.receive_json() == {"action": "standup", "text": "done"}


def test_actions_duplicate_name_fails_when_the_class_is_created() -> None:
    with pytest.raises(TypeError, match="declares the action 'send' twice"):
        load("actions/duplicate.py")


def test_actions_function_action_with_a_taken_name_is_refused() -> None:
    sample = load("actions/functions.py")
    with pytest.raises(ValueError, match="already has an action named 'ask'"):
        sample.support.action("ask")(sample.ask)


def test_actions_deprecated_answers_an_error_frame_and_stays_open() -> None:
    sample = load("actions/deprecated.py")
    with TestClient(sample.app) as client, client.websocket_connect("/profile") as websocket:
        websocket.send_json({"action": "get_name", "request_id": 4})
        error = error_frame(websocket)
        assert error["errors"] == "The action 'get_name' is deprecated."
        assert (error["action"], error["request_id"], error["code"], error["close"]) == ("get_name", 4, 1008, False)
        websocket.send_json({"action": "get_profile"})
        assert websocket.receive_json() == {"name": "Ada", "language": "en"}
