"""The events page: join and leave handlers, connection lifespans, join failures, connection limits."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient

import fastapi_channels
from fastapi_channels.channels import Channel
from fastapi_channels.testing import receive_json
from fastapi_channels.used import PersonChannel
from tests.docs.samples import close_code, error_frame, load


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
