"""The demo's chat (example/chat.py) through TestClient: sign-in, identity from the cookie, rooms, private messages.

The browser tests (tests/test_example_browser.py) drive the same chat in Chromium; these check each rule at the
frame level, where a test can say exactly which frames each person gets.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from example.app import create_app
from example.chat import HISTORY_SIZE, LOBBY, SECRET_VARIABLE, SESSION_COOKIE, sign, signed_name
from fastapi_channels.testing import receive_close, receive_json


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app("memory://")) as test_client:
        yield test_client


def cookie(name: str) -> dict[str, str]:
    return {"cookie": f"{SESSION_COOKIE}={sign(name)}"}


def enter(client: TestClient, name: str) -> Any:
    """Open the chat socket as ``name``; return the context manager (its frames start with the lobby's resume)."""
    return client.websocket_connect("/chat", headers=cookie(name))


def next_of(ws: WebSocketTestSession, kind: str) -> dict[str, Any]:
    """The next frame of ``kind`` (a frame type, or the ``kind`` of a publication's data), skipping others."""
    for _ in range(20):
        frame = receive_json(ws)
        if frame.get("type") == kind or (frame.get("type") == "publication" and frame["data"].get("kind") == kind):
            return frame
        if frame.get("kind") == kind:
            return frame
    raise AssertionError(f"no {kind} frame in 20")


def collect(ws: WebSocketTestSession, *kinds: str) -> dict[str, dict[str, Any]]:
    """The next frame of each of ``kinds``, in whatever order they come."""
    found: dict[str, dict[str, Any]] = {}
    for _ in range(20):
        frame = receive_json(ws)
        kind = frame.get("type") if frame.get("type") != "publication" else frame["data"].get("kind")
        kind = kind or frame.get("kind")
        if kind in kinds and kind not in found:
            found[kind] = frame
        if len(found) == len(kinds):
            return found
    raise AssertionError(f"not all of {kinds} in 20 frames: {sorted(found)}")


def settle_in(ws: WebSocketTestSession, name: str) -> None:
    """Read the lobby's resume frame and the join notice of ``name``."""
    assert next_of(ws, "resume")["channel"] == LOBBY
    assert next_of(ws, "presence")["data"]["user"] == name


def test_chat_login_sets_a_signed_http_only_cookie_and_the_page_greets_the_user(client: TestClient) -> None:
    assert "signin-form" in client.get("/").text
    response = client.post("/login", json={"name": "  Alice B.  "})
    assert response.status_code == 200 and response.json() == {"user": "Alice B."}
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
    token = client.cookies[SESSION_COOKIE]
    assert signed_name(token) == "Alice B."
    page = client.get("/").text
    assert '<strong id="signed-in-as">Alice B.</strong>' in page and "signin-form" not in page
    assert client.post("/logout").json() == {"signed_out": True}
    assert SESSION_COOKIE not in client.cookies and "signin-form" in client.get("/").text


@pytest.mark.parametrize("name", ["", "   ", "a" * 25, "<script>", "x;y", "-dash", {"nested": 1}])
def test_chat_login_refuses_a_name_that_is_not_a_plain_name(client: TestClient, name: Any) -> None:
    response = client.post("/login", json={"name": name})
    assert response.status_code == 422
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_chat_page_assets_are_local_and_served(client: TestClient) -> None:
    client.post("/login", json={"name": "alice"})
    page = client.get("/").text
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', page)
    assert sorted(assets) == ["/fastapi-channels/channels.js", "/static/chat.css", "/static/chat.js"]
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        # Works offline: nothing is loaded from another host.
        assert not re.search(r"https?://[\w.-]|//cdn", response.text), asset
    assert 'from "/fastapi-channels/channels.js"' in client.get("/static/chat.js").text


@pytest.mark.parametrize(
    "token",
    [sign("bob")[:-1] + "0", "Ym9i.deadbeef", "not-a-token", sign("bob").split(".")[0], ""],
    ids=["tampered", "forged", "garbage", "unsigned", "empty"],
)
def test_chat_socket_without_a_valid_cookie_is_refused_with_1008(client: TestClient, token: str) -> None:
    with client.websocket_connect("/chat", headers={"cookie": f"{SESSION_COOKIE}={token}"}) as ws:
        frame = receive_json(ws)
        assert frame["code"] == 1008 and frame["close"] is True
        assert receive_close(ws)[0] == 1008


def test_chat_cookie_signed_with_another_secret_is_refused(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, "another secret")
    foreign = sign("alice")
    monkeypatch.undo()
    assert signed_name(foreign) is None
    with client.websocket_connect("/chat", headers={"cookie": f"{SESSION_COOKIE}={foreign}"}) as ws:
        assert receive_json(ws)["code"] == 1008


def test_chat_identity_comes_from_the_cookie_never_from_the_frame(client: TestClient) -> None:
    with enter(client, "alice") as ws:
        settle_in(ws, "alice")
        ws.send_json({"action": "say", "text": "hi", "user": "mallory", "from": "mallory", "request_id": 1})
        answers = collect(ws, "response", "message")
        assert answers["response"]["data"] == {"offset": 2}
        message = answers["message"]["data"]
        assert message["user"] == "alice" and message["text"] == "hi"


def test_chat_rooms_subscribed_on_one_connection_say_only_where_joined(client: TestClient) -> None:
    with enter(client, "alice") as alice, enter(client, "bob") as bob:
        settle_in(alice, "alice")
        settle_in(bob, "bob")
        bob.send_json({"action": "say", "room": "random", "text": "early", "request_id": 1})
        refused = next_of(bob, "response")
        assert refused["code"] == 1008 and refused["close"] is False and "Join #random" in refused["errors"]
        bob.send_json({"action": "subscribe", "channel": "secret", "request_id": 2})
        assert next_of(bob, "response")["code"] == 1008  # not one of the chat's rooms
        bob.send_json({"action": "subscribe", "channel": "random", "request_id": 3})
        assert next_of(bob, "response")["data"] == {"channel": "random"}
        assert next_of(bob, "resume")["channel"] == "random"
        assert next_of(bob, "presence")["data"]["members"] == ["bob"]
        bob.send_json({"action": "say", "room": "random", "text": "hello random", "request_id": 4})
        answers = collect(bob, "response", "message")
        assert answers["response"]["status"] == "ok"
        said = answers["message"]
        assert said["channel"] == "random" and said["data"]["text"] == "hello random"
        bob.send_json({"action": "who", "room": "random", "request_id": 5})
        assert next_of(bob, "response")["data"] == ["bob"]
        # Alice is not in random: the next frame she gets answers her own request.
        alice.send_json({"action": "who", "request_id": 6})
        assert next_of(alice, "response")["data"] == ["alice", "bob"]


def test_chat_whisper_reaches_the_target_and_the_sender_only(client: TestClient) -> None:
    with enter(client, "alice") as alice, enter(client, "bob") as bob, enter(client, "carol") as carol:
        for ws, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            settle_in(ws, name)
        alice.send_json({"action": "whisper", "to": "bob", "text": "psst", "request_id": 1})
        received = next_of(bob, "private")
        assert {key: received[key] for key in ("from", "to", "text")} == {"from": "alice", "to": "bob", "text": "psst"}
        echoed = collect(alice, "private", "response")
        assert echoed["private"]["text"] == "psst"  # the sender's own pages see it too
        assert echoed["response"]["data"] == {"to": "bob"}
        carol.send_json({"action": "who", "request_id": 2})
        frame = receive_json(carol)
        while frame.get("type") == "publication":  # presence notices of the others, never the whisper
            assert frame["data"]["kind"] == "presence"
            frame = receive_json(carol)
        assert frame["request_id"] == 2
        alice.send_json({"action": "whisper", "to": "zed", "text": "anyone?", "request_id": 3})
        missing = next_of(alice, "response")
        assert missing["code"] == 1008 and missing["errors"] == "zed is not in the chat right now."


def test_chat_second_page_of_a_person_changes_no_member_list(client: TestClient) -> None:
    with enter(client, "alice") as first:
        settle_in(first, "alice")
        with enter(client, "alice") as second:
            notice = next_of(second, "presence")["data"]
            assert notice["event"] is None and notice["members"] == ["alice"]
        notice = next_of(first, "presence")["data"]  # the second page's presence, then its leave
        notice = next_of(first, "presence")["data"]
        assert notice["event"] is None and notice["members"] == ["alice"]


def test_chat_recent_endpoint_gives_a_late_joiner_the_last_messages_and_the_position(client: TestClient) -> None:
    assert client.get(f"/rooms/{LOBBY}/recent").status_code == 401
    with enter(client, "alice") as alice:
        settle_in(alice, "alice")
        for number in range(3):
            alice.send_json({"action": "say", "text": f"message {number}", "request_id": number})
            next_of(alice, "message")
    client.post("/login", json={"name": "bob"})
    assert client.get("/rooms/secret/recent").status_code == 404
    recent = client.get(f"/rooms/{LOBBY}/recent").json()
    texts = [item["data"].get("text") for item in recent["messages"] if item["data"]["kind"] == "message"]
    assert texts == ["message 0", "message 1", "message 2"]
    offsets = [item["offset"] for item in recent["messages"]]
    assert offsets == list(range(1, len(offsets) + 1)) and recent["offset"] == offsets[-1]
    assert recent["room"] == LOBBY and recent["epoch"] and HISTORY_SIZE >= len(offsets)
