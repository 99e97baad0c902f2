"""The documentation: every sample in docs_src/ runs and does what its page says; the pages stay complete.

Like FastAPI's tutorial tests, each sample is executed as a fresh module and driven with TestClient. The
meta tests at the end keep docs/ and docs_src/ honest: every Python block in a page is a docs_src file
(copied verbatim), every docs_src file is shown in a page and run by a test here, the site builds with
`mkdocs build --strict` with every page in its navigation, and the generated API reference shows every
public name of every module with its docstring.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import html
import importlib
import importlib.util
import inspect
import json
import logging
import os
import pkgutil
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
import yaml
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

import fastapi_channels
from fastapi_channels import exceptions
from fastapi_channels.backends import PostgresBackend
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import get_action_spec
from fastapi_channels.layers import create_broadcast
from fastapi_channels.testing import receive_close, receive_json
from fastapi_channels.throttling import limiter
from fastapi_channels.used import PersonChannel
from tests.conftest import RedisServer, run_uvicorn

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SRC = ROOT / "docs_src"
README = ROOT / "README.md"
API_PAGE = DOCS / "api.md"

# A sample is shown as an HTML comment naming its file, directly followed by a Python block with its content.
SAMPLE_BLOCK = re.compile(r"<!-- (docs_src/[\w/]+\.py) -->\n```python\n(.*?)```\n", re.S)
PYTHON_BLOCK = re.compile(r"^```python\n", re.M)


def load(relative: str, *, module_name: str | None = None) -> ModuleType:
    """Execute ``docs_src/<relative>`` as a fresh module and return it."""
    name = module_name or "docs_sample_" + relative[:-3].replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, SRC / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def error_frame(websocket: Any) -> dict[str, Any]:
    """Receive the next frame and check that it is an error frame."""
    frame = receive_json(websocket)
    assert frame["type"] == "response" and frame["status"] == "bad", frame
    return frame


def close_code(websocket: Any) -> int:
    """Return the close code of a socket the server closes now, without any frame before the close."""
    return receive_close(websocket)[0]


def markdown_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


# -- README ---------------------------------------------------------------------------------------------


def test_readme_example_is_the_docs_src_file() -> None:
    sample = (SRC / "readme/chat.py").read_text()
    assert f"<!-- docs_src/readme/chat.py -->\n```python\n{sample}```\n" in README.read_text()


def test_readme_chat_broadcasts_to_the_room_and_counts_its_connections() -> None:
    sample = load("readme/chat.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/chat/lobby") as ann, client.websocket_connect("/chat/lobby") as bob:
            with client.websocket_connect("/chat/kitchen") as cook:
                ann.send_json({"action": "message", "user": "ann", "text": "hi"})
                assert ann.receive_json() == {"user": "ann", "text": "hi"}
                assert bob.receive_json() == {"user": "ann", "text": "hi"}
                cook.send_json({"action": "count"})
                assert cook.receive_json() == {"online": 1}  # the kitchen never heard the lobby
            bob.send_json({"action": "count"})
            assert bob.receive_json() == {"online": 2}


def test_readme_chat_limits_messages_per_client() -> None:
    sample = load("readme/chat.py")
    with TestClient(sample.app) as client, client.websocket_connect("/chat/lobby") as websocket:
        for number in range(5):
            websocket.send_json({"action": "message", "user": "ann", "text": str(number)})
            assert websocket.receive_json()["text"] == str(number)
        websocket.send_json({"action": "message", "user": "ann", "text": "one too many"})
        error = error_frame(websocket)
        assert (error["code"], error["close"]) == (1013, False)
        assert 1 < error["retry_after"] <= 2  # refilled at 5 per 10 seconds: one every 2 seconds


# -- first channel --------------------------------------------------------------------------------------


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


# -- actions --------------------------------------------------------------------------------------------


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


# -- permissions ----------------------------------------------------------------------------------------


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


# -- rate limits ----------------------------------------------------------------------------------------


def spend(websocket: Any, action: str, times: int) -> None:
    """Call ``action`` ``times`` times, each answered by a frame that is not an error."""
    for _ in range(times):
        websocket.send_json({"action": action})
        frame = websocket.receive_text()
        assert not frame.startswith('{"type":"response","status":"bad"'), frame


def refused(websocket: Any, action: str) -> dict[str, Any]:
    """Call ``action`` once more and return the RateLimitExceeded frame that answers."""
    websocket.send_json({"action": action, "request_id": "over"})
    error = error_frame(websocket)
    assert (error["action"], error["request_id"], error["code"], error["close"]) == (action, "over", 1013, False)
    return error


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


# -- events ---------------------------------------------------------------------------------------------


def test_events_join_handlers_run_in_order_and_leave_runs_once_per_ending(caplog: pytest.LogCaptureFixture) -> None:
    sample = load("events/handlers.py")

    @sample.lounge.action("crash")
    async def crash(websocket: WebSocket) -> None:
        raise RuntimeError("boom")

    late: list[str] = []

    async def too_late(websocket: WebSocket, channel: str) -> None:
        await sample.lounge.broadcast_to_personal(websocket, "too late")  # a closed socket: a silent no-op
        late.append(channel)

    sample.lounge.add_event_handler("leave", too_late)
    with TestClient(sample.app) as client, client.websocket_connect("/lounge?name=ann") as ann:
        assert ann.receive_text() == "Welcome to lounge, ann!"
        assert ann.receive_text() == "ann joined"
        with client.websocket_connect("/lounge?name=bob") as bob:  # 1. the client closes
            assert bob.receive_text() == "Welcome to lounge, bob!"
            assert ann.receive_text() == bob.receive_text() == "bob joined"
            bob.send_json({"action": "say", "text": "hi"})
            assert ann.receive_text() == bob.receive_text() == "bob: hi"
        assert ann.receive_text() == "bob left"
        with client.websocket_connect("/lounge?name=cy") as cy:  # 2. an action closes the socket
            cy.receive_text(), cy.receive_text(), ann.receive_text()
            cy.send_json({"action": "bye"})
            assert close_code(cy) == 1000
        assert ann.receive_text() == "cy left"
        with caplog.at_level(logging.ERROR), client.websocket_connect("/lounge?name=di") as di:  # 3. a crash
            di.receive_text(), di.receive_text(), ann.receive_text()
            di.send_json({"action": "crash"})
            assert error_frame(di)["errors"] == "Internal server error."
            assert close_code(di) == 1011
        assert ann.receive_text() == "di left"
        ann.send_json({"action": "say", "text": "anyone?"})
        assert ann.receive_text() == "ann: anyone?"  # no second "left" for anybody
    assert late == ["lounge"] * 4
    assert not [record for record in caplog.records if "Leave handler" in record.getMessage()]


def test_events_lifespan_as_argument_wraps_each_connection() -> None:
    sample = load("events/lifespan.py")
    with TestClient(sample.app) as client, client.websocket_connect("/office?user=ann") as ann:
        with client.websocket_connect("/office?user=bob"):
            ann.send_json({"action": "who"})
            assert ann.receive_json() == {"online": ["ann", "bob"]}
        ann.send_json({"action": "who"})
        assert ann.receive_json() == {"online": ["ann"]}
    assert sample.online == {"office": set()}


def test_events_lifespan_as_method_broadcasts_enter_and_leave() -> None:
    sample = load("events/lifespan.py")
    with TestClient(sample.app) as client, client.websocket_connect("/arena") as ann:
        assert ann.receive_text() == "A player entered the arena."
        with client.websocket_connect("/arena") as bob:
            assert ann.receive_text() == bob.receive_text() == "A player entered the arena."
        assert ann.receive_text() == "A player left the arena."


def test_events_join_failure_closes_or_continues_as_the_exception_says() -> None:
    sample = load("events/join_failure.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/rooms/vault") as websocket:
            error = error_frame(websocket)
            assert (error["errors"], error["code"], error["close"]) == ("This room is locked.", 1008, True)
            assert close_code(websocket) == 1008
        assert sample.departures == []  # never joined, so never left
        with client.websocket_connect("/rooms/archive") as websocket:
            assert websocket.receive_text() == "Welcome to archive."
            error = error_frame(websocket)
            assert (error["errors"], error["close"]) == ("This room is read-only.", False)
            websocket.send_json({"action": "anything"})
            assert error_frame(websocket)["errors"] == "The action 'anything' does not exist."
        assert sample.departures == ["archive"]


def test_events_lifespan_function_with_three_parameters_gets_the_channel_object() -> None:
    app = FastAPI()
    fastapi_channels.add_channel(app)
    seen: list[Any] = []

    @contextlib.asynccontextmanager
    async def lifespan(room: Any, websocket: WebSocket, channel: str) -> AsyncIterator[None]:
        seen.append((room, channel))
        yield

    room = Channel(channel="hall", lifespan=lifespan)
    app.add_api_websocket_route("/hall", room.connect)
    with TestClient(app) as client, client.websocket_connect("/hall"):
        pass
    assert seen == [(room, "hall")]


def test_events_connection_limit_refuses_one_more_with_try_again_later() -> None:
    app = FastAPI()
    fastapi_channels.add_channel(app)
    room = PersonChannel(channel="pair")
    joined: list[str] = []
    room.add_event_handler("join", lambda websocket, channel: joined.append(channel))

    @room.action()
    async def count(websocket: WebSocket) -> None:
        await room.broadcast_to_personal(websocket, {"online": await room.get_connection_count()})

    app.add_api_websocket_route("/pair", room.connect)
    with TestClient(app) as client, client.websocket_connect("/pair") as ann, client.websocket_connect("/pair") as bob:
        for websocket in (ann, bob):  # a round trip each: both have joined
            websocket.send_json({"action": "count"})
            receive_json(websocket)
        with client.websocket_connect("/pair") as third:
            error = error_frame(third)
            assert error["errors"] == "This channel is full. Try again later."
            assert (error["code"], error["close"]) == (1013, True)
            assert close_code(third) == 1013
        ann.send_json({"action": "count"})
        assert receive_json(ann) == {"online": 2}
    assert joined == ["pair", "pair"]


def test_events_unknown_event_type_is_refused() -> None:
    sample = load("events/handlers.py")
    with pytest.raises(ValueError, match="use 'join' or 'leave'"):
        sample.lounge.add_event_handler("joined", sample.welcome)


# -- exceptions -----------------------------------------------------------------------------------------


def test_exceptions_raised_in_actions_become_error_frames(caplog: pytest.LogCaptureFixture) -> None:
    sample = load("exceptions/raising.py")
    with TestClient(sample.app) as client, client.websocket_connect("/shop") as websocket:
        websocket.send_json({"action": "buy", "item": "tea", "request_id": 1})
        assert websocket.receive_json() == {"action": "buy", "item": "tea", "left": 2}
        websocket.send_json({"action": "buy", "item": "coffee", "request_id": 2})
        assert error_frame(websocket) == {
            "type": "response",
            "status": "bad",
            "action": "buy",
            "request_id": 2,
            "errors": "We do not sell 'coffee'.",
            "code": 1008,
            "close": False,
        }
        websocket.send_json({"action": "buy", "item": "cake", "request_id": 3})
        assert error_frame(websocket) == {
            "type": "response",
            "status": "bad",
            "action": "buy",
            "request_id": 3,
            "errors": "This item is sold out.",
            "code": 1008,
            "close": False,
            "data": {"item": "cake"},
            "restock_in_days": 2,
        }
        websocket.send_json({"action": "shoplift"})
        error = error_frame(websocket)
        assert (error["errors"], error["close"]) == ("You have been shown the door.", True)
        with pytest.raises(WebSocketDisconnect) as closed:
            websocket.receive_text()
        assert (closed.value.code, closed.value.reason) == (1008, "You have been shown the door.")
    with caplog.at_level(logging.ERROR, logger="fastapi_channels"), TestClient(sample.app) as client:
        with client.websocket_connect("/shop") as bystander, client.websocket_connect("/shop") as websocket:
            websocket.send_json({"action": "checkout", "request_id": "c"})
            assert error_frame(websocket) == {
                "type": "response",
                "status": "bad",
                "action": "checkout",
                "request_id": "c",
                "errors": "Internal server error.",
                "code": 1011,
                "close": True,
            }
            assert close_code(websocket) == 1011
            bystander.send_json({"action": "buy", "item": "tea"})
            assert bystander.receive_json()["left"] == 1
    crash = [record for record in caplog.records if record.exc_info]
    assert crash and "the till is broken" in str(crash[0].exc_info[1])


def test_exceptions_custom_handler_from_the_app_registry_replaces_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sample = load("exceptions/custom_handler.py")
    with caplog.at_level(logging.INFO, logger="myapp"), TestClient(sample.app) as client:
        with client.websocket_connect("/vault") as websocket:
            websocket.send_json({"action": "open", "request_id": 5})
            error = error_frame(websocket)
            assert (error["login_url"], error["request_id"]) == ("/login", 5)
            assert (error["code"], error["close"]) == (1008, False)
            websocket.send_json({"action": "lock"})
            assert "login_url" not in error_frame(websocket)  # ActionNotExist still uses the default handler
    assert "Denied open on /vault" in caplog.text


def test_exceptions_custom_handler_that_does_not_close_still_keeps_a_denied_client_out() -> None:
    app = FastAPI()
    fastapi_channels.add_channel(app)
    room = Channel(permission_classes=False)

    async def quiet(websocket: WebSocket, exc: exceptions.PermissionDenied) -> None:
        await websocket.send_text("denied, quietly")

    app.add_exception_handler(exceptions.PermissionDenied, quiet)

    @app.websocket("/room")
    async def room_endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    with TestClient(app) as client, client.websocket_connect("/room") as websocket:
        assert websocket.receive_text() == "denied, quietly"
        assert close_code(websocket) == 1000


@pytest.mark.parametrize("add_exception_handlers", [True, False])
def test_exceptions_without_registered_handler_channels_still_answer_frames(add_exception_handlers: bool) -> None:
    app = FastAPI()
    fastapi_channels.add_channel(app, add_exception_handlers=add_exception_handlers)
    room = Channel()

    @room.action()
    async def forbidden(websocket: WebSocket) -> None:
        raise exceptions.PermissionDenied(close=False)

    @app.websocket("/room")
    async def room_endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    @app.websocket("/outside")
    async def outside(websocket: WebSocket) -> None:
        await websocket.accept()
        raise exceptions.NotFound(error_msg="No such room.")

    assert (exceptions.WebSocketException in app.exception_handlers) is add_exception_handlers
    with TestClient(app) as client:
        with client.websocket_connect("/room") as websocket:
            websocket.send_json({"action": "forbidden"})
            assert error_frame(websocket)["close"] is False
        with client.websocket_connect("/outside") as websocket:
            if add_exception_handlers:
                assert error_frame(websocket)["errors"] == "No such room."
            assert close_code(websocket) == 1008


def close_code_table() -> dict[str, tuple[int, bool]]:
    """Read the exception table of the exceptions page: class name -> (close code, closes the socket)."""
    rows = re.findall(r"^\| `(\w+)` \| (\d{4}) \| (closes|stays open) \|", (DOCS / "exceptions.md").read_text(), re.M)
    return {name: (int(code), closes == "closes") for name, code, closes in rows}


def test_exceptions_page_table_matches_every_exception_class() -> None:
    table = close_code_table()
    classes = {name: getattr(exceptions, name) for name in exceptions.__all__}
    assert set(table) == set(classes)
    for name, klass in classes.items():
        assert table[name] == (klass.default_code, klass.default_close), name


def test_exceptions_page_close_code_table_lists_the_codes_in_use() -> None:
    text = (DOCS / "exceptions.md").read_text()
    for code in (1000, 1003, 1007, 1008, 1011, 1013):
        assert re.search(rf"^\| {code} \|", text, re.M), code


# -- protocol -------------------------------------------------------------------------------------------


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


# -- sending --------------------------------------------------------------------------------------------


def test_sending_from_http_endpoints_and_background_tasks() -> None:
    sample = load("sending/from_http.py")
    with TestClient(sample.app) as client, client.websocket_connect("/news") as reader:
        assert client.post("/news", json={"title": "Docs shipped"}).json() == {"published": True}
        assert reader.receive_json() == {"action": "headline", "title": "Docs shipped"}
        assert client.post("/news/later", json={"title": "Tests pass"}).json() == {"queued": True}
        assert reader.receive_json() == {"action": "headline", "title": "Tests pass"}


def test_sending_before_the_app_starts_says_how_to_fix_it() -> None:
    sample = load("sending/from_http.py")
    with pytest.raises(RuntimeError, match="lifespan did not start"):
        with TestClient(sample.app).websocket_connect("/news"):
            pass
    with pytest.raises(RuntimeError, match="The channel layer is not running"):
        asyncio.run(sample.notifier.broadcast_to_channel("news", "too early"))


def test_sending_without_add_channel_says_how_to_fix_it() -> None:
    app = FastAPI()
    room = Channel()

    @app.websocket("/room")
    async def room_endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    with TestClient(app) as client, pytest.raises(RuntimeError, match=r"call add_channel\(app\)"):
        with client.websocket_connect("/room"):
            pass


class Peer:
    """The client end of a websocket served in-process; while paused it stops reading, like a stalled client."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.reading = asyncio.Event()
        self.reading.set()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await self.reading.wait()
        await self.received.put(message)
        if message["type"] == "websocket.close":
            self.incoming.put_nowait({"type": "websocket.disconnect", "code": message.get("code", 1000)})

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.received.get(), 5)

    def send_json(self, data: Any) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(data)})


def websocket_scope(path: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "subprotocols": [],
    }


async def test_sending_client_that_stops_reading_is_closed_with_1013_and_others_get_everything() -> None:
    sample = load("sending/queue_size.py")
    left: list[str] = []
    sample.ticker.add_event_handler("leave", lambda websocket, channel: left.append(channel))
    reader, stalled = Peer(), Peer()
    async with sample.app.router.lifespan_context(sample.app):
        tasks = [
            asyncio.create_task(sample.app(websocket_scope("/ticker"), peer.receive, peer.send))
            for peer in (reader, stalled)
        ]
        try:
            for peer in (reader, stalled):
                assert (await peer.next())["type"] == "websocket.accept"  # accepted once in the channel
            stalled.reading.clear()
            reader.send_json({"action": "burst", "count": 100})
            ticks = [json.loads((await reader.next())["text"])["n"] for _ in range(100)]
            assert ticks == list(range(100))  # a reader gets everything, whatever happens to the other
            closed = await stalled.next()  # the frames queued for the stalled client were dropped
            assert (closed["type"], closed["code"]) == ("websocket.close", 1013)
            assert closed["reason"] == "Send queue full: the client is not reading."
            await asyncio.wait_for(tasks[1], 5)
            assert left == ["ticker"]
        finally:
            reader.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert left == ["ticker", "ticker"]


# -- backends -------------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis", "redis-stream"])
def configured_urls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Set BROADCAST_URL and LIMITER_URL for the backends sample; yield the kind."""
    if request.param == "memory":
        monkeypatch.delenv("BROADCAST_URL", raising=False)
        monkeypatch.delenv("LIMITER_URL", raising=False)
    else:
        url = request.getfixturevalue("redis_url")
        monkeypatch.setenv("BROADCAST_URL", url.replace("redis://", f"{request.param}://", 1))
        monkeypatch.setenv("LIMITER_URL", url)
    yield request.param


def test_backends_shared_backend_connects_processes_and_limits(configured_urls: str, channel_name: str) -> None:
    first, second = load("backends/configured.py"), load("backends/configured.py")  # two "processes"
    for sample in (first, second):
        sample.chat.channel = channel_name
    shared = configured_urls != "memory"
    with TestClient(first.app) as one, TestClient(second.app) as two:
        with one.websocket_connect("/chat") as ann, two.websocket_connect("/chat") as bob:
            for number in range(5):
                ann.send_json({"action": "message", "text": str(number)})
                assert ann.receive_json()["text"] == str(number)
                if shared:
                    assert bob.receive_json()["text"] == str(number)
            bob.send_json({"action": "message", "text": "from bob"})
            if shared:  # one budget per client across processes: bob's address already spent it
                assert error_frame(bob)["code"] == 1013
            else:
                assert bob.receive_json()["text"] == "from bob"  # never saw ann's five
    if shared:
        client = redis.Redis.from_url(first.LIMITER_URL)
        try:
            key = f"fastapi-channels:limit:{channel_name}:message:ip:testclient"
            assert 0 < client.pttl(key) <= 2 * 10_000  # expires on its own
            client.delete(key, channel_name)
        finally:
            client.close()


def test_backends_postgres_urls_use_our_postgres_backend() -> None:
    for url in ("postgres://postgres@127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test"):
        assert isinstance(create_broadcast(url)._backend, PostgresBackend)


def test_backends_unknown_url_says_what_is_supported() -> None:
    with pytest.raises(ValueError, match="use memory://, redis://"):
        fastapi_channels.add_channel(FastAPI(), url="carrier-pigeon://coop")


# -- add_channel ----------------------------------------------------------------------------------------


def test_add_channel_every_option_configures_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BROADCAST_URL", raising=False)
    monkeypatch.delenv("LIMITER_URL", raising=False)
    sample = load("add_channel/all_options.py")
    config = sample.app.state.fastapi_channels
    assert (config.url, config.limiter_url, config.limiters.prefix) == ("memory://", None, "myapp")
    assert config.layer.send_queue_size == 256
    assert exceptions.WebSocketException in sample.app.exception_handlers
    room = Channel()

    @room.action()
    async def tick(websocket: WebSocket) -> None:
        await room.broadcast_to_personal(websocket, "tock")

    sample.app.add_api_websocket_route("/room", room.connect)
    with TestClient(sample.app) as client, client.websocket_connect("/room") as websocket:
        spend(websocket, "tick", 60)
        refused(websocket, "tick")


def test_add_channel_own_broadcast_and_own_lifespan() -> None:
    sample = load("add_channel/own_broadcast.py")
    with TestClient(sample.app) as client, client.websocket_connect("/alerts") as websocket:
        assert client.post("/alerts").json() == {"sent": True}
        assert websocket.receive_json() == {"action": "alert"}


def test_add_channel_refuses_conflicting_options() -> None:
    with pytest.raises(ValueError, match="Pass only one of url=, backend= and broadcast="):
        fastapi_channels.add_channel(FastAPI(), url="memory://", broadcast=create_broadcast("memory://"))


# -- testing --------------------------------------------------------------------------------------------


def test_testing_page_sample_tests_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "main", raising=False)
    main = load("testing/main.py", module_name="main")
    sample_tests = load("testing/test_main.py")
    assert sample_tests.app is main.app
    names = [name for name in vars(sample_tests) if name.startswith("test_")]
    assert len(names) == 6
    for name in names:
        getattr(sample_tests, name)()
    monkeypatch.delitem(sys.modules, "main")


# -- migration ------------------------------------------------------------------------------------------


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


# -- deployment -----------------------------------------------------------------------------------------


def test_deployment_app_refuses_pages_of_other_sites(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://chat.example.com,https://www.example.com")
    sample = load("deployment/app.py")
    with TestClient(sample.app) as client:
        for headers in ({"origin": "https://evil.example"}, {}, {"origin": "https://chat.example.com.evil.example"}):
            with client.websocket_connect("/chat/lobby", headers=headers) as websocket:
                error = error_frame(websocket)
                assert (error["action"], error["code"], error["close"]) == (None, 1008, True)
                assert close_code(websocket) == 1008
        with client.websocket_connect("/chat/lobby", headers={"origin": "https://www.example.com"}) as websocket:
            websocket.send_json({"action": "message", "text": "hi"})
            assert websocket.receive_json() == {"action": "message", "text": "hi"}
            websocket.send_json({"action": "online"})
            assert websocket.receive_json() == {"action": "online", "count": 1}


async def proxied_socket(base_url: str, room: str, forwarded_for: str) -> ClientConnection:
    """Open a websocket to ``room`` as a proxy would, saying who the client is; return once it has joined."""
    websocket = await connect(
        base_url.replace("http://", "ws://") + f"/chat/{room}",
        origin=Origin("http://127.0.0.1:8000"),
        additional_headers={"X-Forwarded-For": forwarded_for},
        open_timeout=5,
    )
    await websocket.send(json.dumps({"action": "online"}))  # answered once the socket has joined its room
    assert (await next_frame(websocket))["action"] == "online"
    return websocket


async def next_frame(websocket: ClientConnection) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(websocket.recv(), 5))
    assert isinstance(frame, dict)
    return frame


async def spend_budget_then_send_as_another_client(base_url: str) -> dict[str, Any]:
    """Spend client 203.0.113.7's five messages, then return the answer to one message of 198.51.100.9."""
    first = await proxied_socket(base_url, "lobby", "203.0.113.7")
    try:
        for number in range(5):  # a few milliseconds: far less than the 2 s one token takes to refill
            await first.send(json.dumps({"action": "message", "text": str(number)}))
            assert (await next_frame(first))["text"] == str(number)
    finally:
        await first.close()
    second = await proxied_socket(base_url, "lobby", "198.51.100.9")
    try:
        await second.send(json.dumps({"action": "message", "text": "mine"}))
        return await next_frame(second)
    finally:
        await second.close()


@pytest.mark.parametrize(("allowed", "shared_budget"), [("10.0.0.2", True), ("127.0.0.1", False)])
async def test_deployment_x_forwarded_for_counts_only_from_a_trusted_proxy(allowed: str, shared_budget: bool) -> None:
    # The test connects from 127.0.0.1: trusted as the proxy, or not when the proxy is said to be 10.0.0.2.
    env = {"FORWARDED_ALLOW_IPS": allowed, "ALLOWED_ORIGINS": "http://127.0.0.1:8000"}
    with run_uvicorn("docs_src.deployment.app:app", env=env) as base_url:
        answer = await spend_budget_then_send_as_another_client(base_url)
    if shared_budget:  # the header was ignored: both sockets are the proxy's address, one budget
        assert (answer["type"], answer["code"], answer["close"]) == ("response", 1013, False)
    else:  # uvicorn took the client's address from the header: a budget of its own
        assert answer == {"action": "message", "text": "mine"}


async def test_deployment_workers_share_rooms_and_counts_through_redis(redis_url: str, channel_name: str) -> None:
    env = {"WEB_CONCURRENCY": "2", "REDIS_URL": redis_url, "ALLOWED_ORIGINS": "http://127.0.0.1:8000"}
    with run_uvicorn("docs_src.deployment.app:app", env=env) as base_url:
        sockets = [await proxied_socket(base_url, channel_name, "192.0.2.1") for _ in range(4)]
        try:
            for number, sender in enumerate(sockets):  # whichever worker took each socket
                await sender.send(json.dumps({"action": "message", "text": str(number)}))
                for websocket in sockets:
                    assert await next_frame(websocket) == {"action": "message", "text": str(number)}
            await sockets[3].send(json.dumps({"action": "online"}))
            assert await next_frame(sockets[3]) == {"action": "online", "count": 4}
        finally:
            for websocket in sockets:
                await websocket.close()


def session_of(response: Any) -> str:
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie
    return str(cookie.split(";", 1)[0].removeprefix("session="))


def test_deployment_cookie_authentication_with_an_origin_check() -> None:
    sample = load("deployment/cookie_auth.py")
    with TestClient(sample.app) as client:
        session = session_of(client.post("/login", params={"name": "ann"}))
        ours, theirs = "https://chat.example.com", "https://evil.example"
        with client.websocket_connect("/inbox", headers={"cookie": f"session={session}", "origin": ours}) as ann:
            ann.send_json({"action": "whoami"})
            assert ann.receive_json() == {"user": "ann"}
        for headers in ({"cookie": f"session={session}", "origin": theirs}, {"origin": ours}):
            with client.websocket_connect("/inbox", headers=headers) as websocket:
                assert error_frame(websocket)["close"] is True
                assert close_code(websocket) == 1008


def test_deployment_token_in_the_first_message_logs_the_connection_in() -> None:
    sample = load("deployment/first_message.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/inbox") as websocket:
            websocket.send_json({"action": "whoami"})
            assert error_frame(websocket)["close"] is False
            websocket.send_json({"action": "authenticate", "token": "token-alice"})
            assert websocket.receive_json() == {"action": "authenticated", "user": "alice"}
            websocket.send_json({"action": "whoami"})
            assert websocket.receive_json() == {"user": "alice"}
        with client.websocket_connect("/inbox") as websocket:
            websocket.send_json({"action": "authenticate", "token": "token-mallory"})
            error = error_frame(websocket)
            assert (error["errors"], error["close"]) == ("Invalid token.", True)
            assert close_code(websocket) == 1008


def test_deployment_connection_that_never_authenticates_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    sample = load("deployment/first_message.py")
    monkeypatch.setattr(sample, "LOGIN_TIMEOUT", 0.2)
    with TestClient(sample.app) as client:
        with client.websocket_connect("/inbox") as websocket:
            assert receive_close(websocket) == (1008, "Authenticate first.")


# -- scaling out -----------------------------------------------------------------------------------------


def test_scaling_lobby_counts_and_broadcasts_through_redis(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    sample = load("scaling/app.py")
    assert type(sample.app.state.fastapi_channels.presence).__name__ == "RedisPresence"
    with TestClient(sample.app) as client:
        with client.websocket_connect("/lobby") as first, client.websocket_connect("/lobby") as second:
            first.send_json({"action": "online"})
            assert first.receive_json() == {"action": "online", "count": 2}
            second.send_json({"action": "say", "text": "hello"})
            for websocket in (first, second):
                assert websocket.receive_json() == {"action": "said", "text": "hello"}
        stored = redis.Redis.from_url(own_redis.url)
        try:
            # The lobby's members live in Redis, where every process sees them; both have left.
            assert stored.hlen("fastapi-channels:presence:channel:lobby") == 0
        finally:
            stored.close()


def test_scaling_direct_messages_reach_one_user_or_one_connection(
    own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", own_redis.url)
    sample = load("scaling/direct.py")

    def as_user(token: str) -> dict[str, str]:
        return {"cookie": f"session={token}"}

    with TestClient(sample.app) as client:
        with (
            client.websocket_connect("/notifications", headers=as_user("token-of-ann")) as ann_phone,
            client.websocket_connect("/notifications", headers=as_user("token-of-ann")) as ann_laptop,
            client.websocket_connect("/notifications", headers=as_user("token-of-bob")) as bob,
            client.websocket_connect("/notifications") as anonymous,
        ):
            online = client.get("/online").json()
            assert [member["user"] for member in online] == ["ann", "ann", "bob", None]

            assert client.post("/notify/ann", params={"text": "your order shipped"}).json() == {"sent": True}
            for websocket in (ann_phone, ann_laptop):
                assert websocket.receive_json() == {"action": "notice", "text": "your order shipped"}

            for member, websocket in zip(online, (ann_phone, ann_laptop, bob, anonymous), strict=True):
                client.post(f"/connections/{member['connection']}/notify", params={"text": f"just {member['user']}"})
                # The first frame each one gets is its own: bob and the anonymous client got nothing before.
                assert websocket.receive_json() == {"action": "notice", "text": f"just {member['user']}"}


# -- the pages themselves -------------------------------------------------------------------------------


def sample_blocks(path: Path) -> list[tuple[str, str]]:
    return SAMPLE_BLOCK.findall(path.read_text())


def test_every_python_block_in_the_docs_is_a_docs_src_file_copied_verbatim() -> None:
    for page in [*markdown_pages(), README]:
        text = page.read_text()
        blocks = sample_blocks(page)
        assert len(blocks) == len(PYTHON_BLOCK.findall(text)), f"{page.name}: a python block without its file marker"
        for relative, code in blocks:
            source = ROOT / relative
            assert source.is_file(), f"{page.name} shows {relative}, which does not exist"
            assert code == source.read_text(), f"{page.name}: the copy of {relative} is out of date"


def test_every_docs_src_file_is_shown_in_a_page() -> None:
    shown = {relative for page in [*markdown_pages(), README] for relative, _ in sample_blocks(page)}
    files = {str(path.relative_to(ROOT)) for path in SRC.rglob("*.py")}
    assert files - shown == set()


def test_every_docs_src_file_is_exercised_by_a_test() -> None:
    tree = ast.parse(Path(__file__).read_text())
    loaded = set()
    for function in tree.body:
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) and function.name.startswith("test_"):
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "load"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    loaded.add(f"docs_src/{node.args[0].value}")
    files = {str(path.relative_to(ROOT)) for path in SRC.rglob("*.py")}
    assert files - loaded == set(), "docs_src files no test runs"


def public_modules() -> list[ModuleType]:
    names = ["fastapi_channels"] + [
        f"fastapi_channels.{info.name}" for info in pkgutil.iter_modules(fastapi_channels.__path__)
    ]
    return [importlib.import_module(name) for name in names]


def own_public_objects() -> Iterator[tuple[str, Any]]:
    """Yield (qualified name, object) for each class and function a module lists in __all__ and defines."""
    for module in public_modules():
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", obj


def test_every_public_module_declares_all_and_is_in_the_api_page() -> None:
    blocks = re.findall(r"^::: ([\w.]+)$", API_PAGE.read_text(), re.M)
    assert len(blocks) == len(set(blocks)), "a module appears twice in api.md"
    for module in public_modules():
        assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
    assert set(blocks) == {module.__name__ for module in public_modules()}


def test_every_public_class_and_function_has_a_docstring() -> None:
    missing = []
    for qualified, obj in own_public_objects():
        if not inspect.getdoc(obj) or (inspect.isclass(obj) and "__doc__" not in vars(obj)):
            missing.append(qualified)
        if inspect.isclass(obj):
            for attribute, value in vars(obj).items():
                function = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                if not attribute.startswith("_") and inspect.isfunction(function) and not function.__doc__:
                    missing.append(f"{qualified}.{attribute}")
    assert missing == []


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the documentation site as CI does (``mkdocs build --strict``) and return its folder."""
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's notice about its successor, not a problem
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return site_dir


def nav_pages(entries: Any) -> Iterator[str]:
    """Yield the Markdown files that mkdocs.yml's nav lists, in order."""
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            yield from nav_pages(value)
        else:
            yield value


def built_page(site: Path, page: str) -> Path:
    return site / ("index.html" if page == "index.md" else f"{page.removesuffix('.md')}/index.html")


def test_docs_site_builds_strictly_with_every_page_in_the_nav(site: Path) -> None:
    nav = list(nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]))
    assert len(nav) == len(set(nav))
    assert set(nav) == {page.name for page in markdown_pages()}
    assert nav[:3] == ["index.md", "installation.md", "first-channel.md"]  # a newcomer's order
    home = built_page(site, "index.md").read_text()
    for page in nav:
        assert built_page(site, page).is_file(), page
        if page != "index.md":  # every page is reachable from the home page's navigation
            assert f'href="{page.removesuffix(".md")}/"' in home, page


def test_api_page_documents_every_public_name(site: Path) -> None:
    page = built_page(site, "api.md").read_text()
    anchors = set(re.findall(r'id="(fastapi_channels[\w.]*)"', page))
    missing = []
    for module in public_modules():
        if module.__name__ == "fastapi_channels":  # re-exports: documented where they are defined
            names = [f"{getattr(module, name).__module__}.{name}" for name in module.__all__ if name != "__version__"]
        else:
            names = [f"{module.__name__}.{name}" for name in module.__all__]
        missing += [name for name in [module.__name__, *names] if name not in anchors]
    assert missing == []
    assert "__version__" in page
    text = html_text(page)
    for qualified, obj in own_public_objects():  # the docstring's summary is shown, not only the name
        assert html_text(inspect.getdoc(obj).splitlines()[0]) in text, qualified


def html_text(text: str) -> str:
    """Reduce Markdown or HTML to comparable plain text: no tags, no code marks, single spaces."""
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return " ".join(text.replace("``", "").replace("`", "").split())


def test_docs_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    linked = set(re.findall(r"\]\(([\w-]+\.md)(?:#[\w-]+)?\)", index))
    assert {page.name for page in markdown_pages()} - {"index.md"} <= linked


def heading_anchors(page: Path) -> set[str]:
    """Return the anchors GitHub (and MkDocs' default slugs) give the headings of ``page``, and its objects'."""
    text = page.read_text()
    anchors = set(re.findall(r"^::: ([\w.]+)$", text, re.M))  # mkdocstrings anchors each object at its path
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        text = heading.replace("`", "").strip().lower()
        anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_relative_links_in_the_docs_resolve() -> None:
    for page in [*markdown_pages(), README]:
        for target, anchor in re.findall(r"\]\((?!https?://|mailto:)([^)#\s]*)(?:#([^)\s]+))?\)", page.read_text()):
            linked = page.parent / target if target else page
            assert linked.exists(), f"{page.name} links to missing {target}"
            if anchor:
                assert anchor in heading_anchors(linked), f"{page.name} links to missing #{anchor} in {linked.name}"


def sync_samples() -> None:
    """Rewrite every sample block of the pages from its docs_src file; a bare marker line gets its block."""

    def block(match: re.Match[str]) -> str:
        relative = match.group(1)
        return f"<!-- {relative} -->\n```python\n{(ROOT / relative).read_text()}```\n"

    for page in [*markdown_pages(), README]:
        text = page.read_text()
        page.write_text(re.sub(r"<!-- (docs_src/[\w/]+\.py) -->\n(?:```python\n.*?```\n)?", block, text, flags=re.S))


if __name__ == "__main__":
    # After editing a docs_src file: `python tests/test_docs.py` copies it into the pages that show it.
    sync_samples()
