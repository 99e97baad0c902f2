"""The deployment page: origin checks, trusted proxies, workers sharing Redis and ways to log in."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from fastapi_channels.testing import receive_close
from tests.conftest import run_uvicorn
from tests.docs.samples import close_code, error_frame, load, refused_at_handshake


def test_deployment_app_refuses_pages_of_other_sites(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://chat.example.com,https://www.example.com")
    sample = load("deployment/app.py")
    with TestClient(sample.app) as client:
        # Other sites' pages are refused at the handshake (HTTP 403 from uvicorn), before any socket opens.
        for origin in ("https://evil.example", "https://chat.example.com.evil.example"):
            assert refused_at_handshake(client, "/chat/lobby", {"origin": origin}) == 1008
        # No Origin at all passes the handshake; the same_origin permission then refuses it.
        with client.websocket_connect("/chat/lobby") as websocket:
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
        assert refused_at_handshake(client, "/inbox", {"cookie": f"session={session}", "origin": theirs}) == 1008
        with client.websocket_connect("/inbox", headers={"origin": ours}) as websocket:  # no session
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
