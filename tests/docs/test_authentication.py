"""The authentication page: a session cookie, a token in the subprotocol, the first message or a header, a ticket."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from websockets.asyncio.client import connect

from fastapi_channels.testing import receive_close
from tests.conftest import UvicornProcess
from tests.docs.samples import close_code, error_frame, load, refused_at_handshake

OURS, THEIRS = "https://chat.example.com", "https://evil.example"


def test_authentication_cookie_session_needs_our_origin() -> None:
    sample = load("authentication/cookie.py")
    with TestClient(sample.app) as client:
        response = client.post("/login", params={"name": "ann"})
        assert all(flag in response.headers["set-cookie"] for flag in ("HttpOnly", "Secure", "SameSite=strict"))
        session = response.cookies["session"]
        with client.websocket_connect("/inbox", headers={"cookie": f"session={session}", "origin": OURS}) as ann:
            ann.send_json({"action": "whoami"})
            assert ann.receive_json() == {"user": "ann"}
        # Another site's page, with ann's cookie: refused at the handshake, before any socket opens.
        assert refused_at_handshake(client, "/inbox", {"cookie": f"session={session}", "origin": THEIRS}) == 1008
        for headers in (
            {"origin": OURS},  # no session
            {"cookie": "session=guessed", "origin": OURS},
        ):
            with client.websocket_connect("/inbox", headers=headers) as websocket:
                assert error_frame(websocket)["close"] is True
                assert close_code(websocket) == 1008


def test_authentication_subprotocol_token_logs_in_and_is_never_echoed() -> None:
    sample = load("authentication/subprotocol.py")
    with TestClient(sample.app) as client:
        token = client.post("/token", params={"name": "ann"}).json()["token"]
        with client.websocket_connect("/chat/lobby", subprotocols=["chat.v1", f"access_token.{token}"]) as ann:
            assert token not in (ann.accepted_subprotocol or "")
            ann.send_json({"action": "whoami"})
            assert ann.receive_json() == {"user": "ann"}
        for offered in (["chat.v1", "access_token.forged"], ["chat.v1"], [f"chat.v1.{token}"]):
            with client.websocket_connect("/chat/lobby", subprotocols=offered) as websocket:
                assert error_frame(websocket)["close"] is True
                assert close_code(websocket) == 1008


def test_authentication_subprotocol_expired_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    sample = load("authentication/subprotocol.py")
    monkeypatch.setattr(sample, "TOKEN_TTL", -1.0)
    with TestClient(sample.app) as client:
        token = client.post("/token", params={"name": "ann"}).json()["token"]
        with client.websocket_connect("/chat/lobby", subprotocols=["chat.v1", f"access_token.{token}"]) as websocket:
            assert error_frame(websocket)["close"] is True
            assert close_code(websocket) == 1008


def test_authentication_subprotocol_connection_is_accepted_with_the_app_protocol() -> None:
    sample = load("authentication/subprotocol.py")
    with TestClient(sample.app) as client:
        token = client.post("/token", params={"name": "ann"}).json()["token"]
        offered = [f"access_token.{token}", "chat.v1"]
        with client.websocket_connect("/chat/lobby", subprotocols=offered) as websocket:
            assert websocket.accepted_subprotocol == "chat.v1"
        with client.websocket_connect("/chat/lobby", subprotocols=["chat.v1", "access_token.forged"]) as websocket:
            assert websocket.accepted_subprotocol == "chat.v1"  # refused with a readable error frame
            assert error_frame(websocket)["close"] is True


def test_authentication_first_message_logs_in_before_joining() -> None:
    sample = load("authentication/first_message.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/inbox") as websocket:
            websocket.send_json({"token": "token-alice"})
            websocket.send_json({"action": "whoami"})
            assert websocket.receive_json() == {"user": "alice"}
        for frame in ({"token": "token-mallory"}, {"action": "whoami"}):
            with client.websocket_connect("/inbox") as websocket:
                websocket.send_json(frame)
                assert close_code(websocket) == 1008


def test_authentication_first_message_silent_client_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    sample = load("authentication/first_message.py")
    monkeypatch.setattr(sample, "LOGIN_TIMEOUT", 0.1)
    with TestClient(sample.app) as client, client.websocket_connect("/inbox") as websocket:
        assert receive_close(websocket) == (1008, "Authenticate first.")


async def test_authentication_first_message_on_a_real_server_survives_clients_that_leave() -> None:
    server = UvicornProcess("docs_src.authentication.first_message:app")
    try:
        server.wait_until_serving()
        url = server.url.replace("http://", "ws://") + "/inbox"
        async with connect(url, open_timeout=5):
            pass  # connected, then gone without a word
        async with connect(url, open_timeout=5) as websocket:
            await websocket.send(json.dumps({"token": "token-alice"}))
            await websocket.send(json.dumps({"action": "whoami"}))
            assert json.loads(await asyncio.wait_for(websocket.recv(), 5)) == {"user": "alice"}
    finally:
        server.stop()
        output = server.output()
        server.close()
    assert "Traceback" not in output and "Exception" not in output, output


@pytest.mark.parametrize(
    ("authorization", "allowed"),
    [("Bearer key-billing-3f9a", True), ("bearer key-billing-3f9a", True), ("Basic key-billing-3f9a", False)]
    + [("Bearer key-guessed", False), ("key-billing-3f9a", False)],
)
def test_authentication_header_logs_programs_in(authorization: str, allowed: bool) -> None:
    sample = load("authentication/header.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/events", headers={"authorization": authorization}) as websocket:
            if allowed:
                websocket.send_json({"action": "whoami"})
                assert websocket.receive_json() == {"user": "billing-service"}
            else:
                assert error_frame(websocket)["close"] is True
                assert close_code(websocket) == 1008


def test_authentication_query_ticket_works_once_and_briefly(monkeypatch: pytest.MonkeyPatch) -> None:
    sample = load("authentication/query_ticket.py")
    with TestClient(sample.app) as client:
        ticket = client.post("/ticket", params={"name": "ann"}).json()["ticket"]
        with client.websocket_connect(f"/inbox?ticket={ticket}") as ann:
            ann.send_json({"action": "whoami"})
            assert ann.receive_json() == {"user": "ann"}
        monkeypatch.setattr(sample, "TICKET_TTL", -1.0)
        expired = client.post("/ticket", params={"name": "ann"}).json()["ticket"]
        for spent in (ticket, expired):  # a ticket copied from a log is already spent; an old one has expired
            with client.websocket_connect(f"/inbox?ticket={spent}") as websocket:
                assert error_frame(websocket)["close"] is True
                assert close_code(websocket) == 1008
