"""The bundled demo (example/app.py) and the two seed examples, on memory:// and a real Redis.

The seed examples run unchanged: their source is loaded at test time with only their ``add_channel(...)``
line changed, its URLs replaced and a namespace added (see tests/apps/seed_app.py), then every room is
checked against what its comments promise. The same checks run against the demo app. The last tests serve
the seed and the demo with a real uvicorn process and talk to them with a real websocket client, including
an abrupt disconnect.

Their rooms have fixed channel names, which any other run on a shared Redis would hear (pub/sub knows no
database numbers or prefixes): the Redis cases run on a redis-server of this module's own, and each test
has its own namespace on it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import secrets
import urllib.request
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from example.app import JOIN_NOTICE, LEAVE_NOTICE, NAMESPACE_VARIABLE, URL_VARIABLE, create_app
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.exceptions import ActionIsDeprecated, PermissionDenied, RateLimitExceeded, WebSocketException
from fastapi_channels.testing import receive_close, receive_json, receive_text
from tests.apps.seed_app import load_seed
from tests.conftest import RedisServer, run_uvicorn

SEEDS = ["readme_example.py", "pypi_example.py"]
APPS = ["demo", *SEEDS]
FRAME_TIMEOUT = 10.0


# -- building the apps -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis server of this module's own (it replaces the suite's shared one here)."""
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def unique_namespace() -> str:
    """A namespace no other test uses."""
    return f"test-{uuid.uuid4().hex}"


def build_app(which: str, url: str, namespace: str) -> FastAPI:
    """Return the demo app or a freshly loaded seed example, broadcasting (and limiting) on ``url``."""
    if which == "demo":
        return create_app(url, namespace=namespace)
    app: FastAPI = load_seed(which, url, namespace).app
    return app


def unique_client() -> tuple[str, int]:
    """A client address no other test uses, so rate-limit budgets (kept in Redis for 3000 s) never carry over."""
    return (f"client-{uuid.uuid4().hex[:12]}", 50000)


@pytest.fixture(params=APPS)
def client(request: pytest.FixtureRequest, backend: dict[str, str | None]) -> Iterator[TestClient]:
    """A running TestClient of the demo app or of a seed example, on each backend."""
    url, namespace = backend["url"], backend["namespace"]
    assert url is not None and namespace is not None
    with TestClient(build_app(request.param, url, namespace), client=unique_client()) as test_client:
        yield test_client


def chat(action: str, request_id: int, user: str = "alice", message: Any = "hello") -> dict[str, Any]:
    """A frame as the page sends it: the action, the user (the seed's ResponseModel requires it) and a numeric id."""
    return {"action": action, "user": user, "message": message, "request_id": request_id}


def reply(action: str, request_id: int, user: str = "alice", message: Any = "hello") -> dict[str, Any]:
    """What the rooms send back for ``chat(...)``: the seed's ResponseModel without its empty fields."""
    return {"action": action, "user": user, "message": message, "status": "ok", "request_id": request_id}


def assert_error(frame: dict[str, Any], action: str, request_id: int, *, code: int, close: bool) -> None:
    """Check an error frame's protocol fields."""
    assert frame["type"] == "response"
    assert frame["status"] == "bad"
    assert frame["action"] == action
    assert frame["request_id"] == request_id
    assert isinstance(frame["errors"], str) and frame["errors"]
    assert frame["code"] == code
    assert frame["close"] is close


def join_person_room(ws: WebSocketTestSession, request_id: int) -> None:
    """Wait until ``ws`` is in the person room: any answer to a frame proves the server admitted it."""
    ws.send_json(chat("error", request_id))
    assert_error(receive_json(ws, FRAME_TIMEOUT), "error", request_id, code=1008, close=False)


# -- the demo's page and endpoints -----------------------------------------------------------------------


class PageParser(HTMLParser):
    """Collect the channels the page lists, the room options of its form and its asset URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.listed: dict[str, dict[str, Any]] = {}
        self.options: dict[str, list[str]] = {}
        self.assets: list[str] = []
        self._current: dict[str, Any] | None = None
        self._in_action = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "li" and "channel" in classes:
            self._current = {"class": attributes["data-class"], "actions": []}
            self.listed[attributes["data-path"] or ""] = self._current
        elif tag == "code" and "action" in classes:
            self._in_action = True
        elif tag == "option" and "data-actions" in attributes:
            self.options[attributes["value"] or ""] = json.loads(attributes["data-actions"] or "")
        elif tag in ("script", "link"):
            self.assets.append(attributes.get("src") or attributes.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "code":
            self._in_action = False
        elif tag == "li":
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._in_action and self._current is not None:
            self._current["actions"].append(data)


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


def demo_rooms(app: FastAPI) -> dict[str, BaseChannel]:
    """The demo's channel objects by URL path."""
    return {room.path: room.channel for room in app.state.demo_rooms.values()}


def test_demo_explorer_lists_every_channel_with_its_actions_from_the_channel_objects() -> None:
    app = create_app("memory://")
    with TestClient(app) as client:
        response = client.get("/explore")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = parse_page(response.text)
    rooms = demo_rooms(app)
    assert set(rooms) == {"/base", "/person", "/group"}
    assert set(page.listed) == set(rooms)
    assert set(page.options) == set(rooms)
    for path, room in rooms.items():
        assert page.listed[path]["class"] == type(room).__name__
        assert page.listed[path]["actions"] == room.actions
        assert page.options[path] == room.actions
    assert page.listed["/base"]["actions"] == []
    assert page.listed["/person"]["actions"] == [
        "count",
        "message",
        "deprecated_action",
        "permission_denied",
        "error",
        "close",
    ]
    assert page.listed["/group"]["actions"] == ["message", "error_true", "error_false", "close", "shout"]


def test_demo_explorer_action_registered_later_is_listed() -> None:
    app = create_app("memory://")
    group = demo_rooms(app)["/group"]
    assert isinstance(group, Channel)

    @group.action("wave")
    async def wave(websocket: Any, channel: str, data: dict[str, Any]) -> None:
        await group.broadcast_to_channel(channel, data)

    with TestClient(app) as client:
        page = parse_page(client.get("/explore").text)
        listed = client.get("/channels").json()["channels"]
    assert page.listed["/group"]["actions"][-1] == "wave"
    assert listed["GroupRoom"]["action"] == group.actions


def test_demo_explorer_assets_are_local_and_served() -> None:
    with TestClient(create_app("memory://")) as client:
        page = parse_page(client.get("/explore").text)
        assert sorted(page.assets) == ["/static/app.css", "/static/app.js"]
        script = client.get("/static/app.js")
        style = client.get("/static/app.css")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    # Works offline: nothing on the page or in its assets is fetched from another host.
    for text in (script.text, style.text):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    # The frames the page sends carry the user the seed's ResponseModel requires and a numeric request_id.
    assert "user: ui.user.value," in script.text and "request_id: requestId," in script.text


def test_demo_homepage_links_the_asyncapi_page_of_its_channels() -> None:
    with TestClient(create_app("memory://")) as client:
        home = client.get("/")
        link = re.search(r'<a id="asyncapi-link" href="([^"]+)"', home.text)
        assert link is not None
        page = client.get(urljoin(str(home.url), link.group(1)))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "shout" in page.text  # an action of the demo's group room


def test_demo_channels_endpoint_describes_each_room() -> None:
    app = create_app("memory://")
    rooms = demo_rooms(app)
    with TestClient(app) as client:
        body = client.get("/channels").json()
    assert body["backend"] == "memory (one process)"
    described = {entry["path"]: entry for entry in body["channels"].values()}
    assert set(described) == set(rooms)
    for path, room in rooms.items():
        entry = described[path]
        assert entry["class"] == type(room).__name__
        assert entry["action"] == room.actions
        assert entry["channel"] == room.channel
        assert entry["max_connection"] == room.max_connection
        assert entry["room"] == ("channel" if isinstance(room, Channel) else "base_channel")


def test_demo_count_endpoint_counts_live_connections() -> None:
    with TestClient(create_app("memory://")) as client:
        assert client.get("/count/group").json()["connections"] == 0
        with client.websocket_connect("/group") as first, client.websocket_connect("/group") as second:
            assert receive_text(first) == JOIN_NOTICE
            assert receive_text(second) == JOIN_NOTICE
            body = client.get("/count/group").json()
            assert body == {"room": "group", "channel": "group_channel", "connections": 2, "max_connection": 200}
        assert client.get("/count/nowhere").status_code == 404


def test_demo_group_room_shout_replies_to_its_sender_only_and_refuses_an_empty_message() -> None:
    with TestClient(create_app("memory://"), client=unique_client()) as client:
        with client.websocket_connect("/group") as alice, client.websocket_connect("/group") as bob:
            assert receive_text(alice) == JOIN_NOTICE
            assert receive_text(bob) == JOIN_NOTICE
            alice.send_json(chat("shout", 5, message="hello bob"))
            assert receive_json(alice) == {
                "type": "response",
                "status": "ok",
                "action": "shout",
                "request_id": 5,
                "data": "HELLO BOB",
            }
            alice.send_json(chat("shout", 6, message=""))
            frame = receive_json(alice)
            assert_error(frame, "shout", 6, code=1007, close=False)
            assert frame["detail"][0]["loc"] == ["payload", "message"]
            # Bob saw neither: the answer to his own shout is the next frame he gets.
            bob.send_json(chat("shout", 7, user="bob", message="hi"))
            assert receive_json(bob)["data"] == "HI"


def test_demo_rejects_a_message_without_user_with_a_readable_error(backend: dict[str, str | None]) -> None:
    assert backend["url"] is not None
    app = create_app(backend["url"], namespace=backend["namespace"])
    with TestClient(app, client=unique_client()) as client:
        with client.websocket_connect("/person") as ws:
            ws.send_json({"action": "message", "message": "who am I?", "request_id": 7})
            frame = receive_json(ws)
            assert_error(frame, "message", 7, code=1007, close=False)
            assert "user" in frame["errors"]
            ws.send_json(chat("message", 8))
            assert receive_json(ws) == reply("message", 8)


def test_demo_environment_variable_switches_to_redis(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setenv(URL_VARIABLE, redis_url)
    monkeypatch.setenv(NAMESPACE_VARIABLE, unique_namespace())
    with TestClient(create_app(), client=unique_client()) as client:
        assert client.get("/channels").json()["backend"] == "Redis"
        with client.websocket_connect("/group") as first, client.websocket_connect("/group") as second:
            assert receive_text(first) == JOIN_NOTICE
            assert receive_text(second) == JOIN_NOTICE
            first.send_json(chat("message", 1))
            assert receive_json(first) == reply("message", 1)
            assert receive_json(second) == reply("message", 1)
    monkeypatch.delenv(URL_VARIABLE)
    with TestClient(create_app()) as client:
        assert client.get("/channels").json()["backend"] == "memory (one process)"


def test_demo_namespace_variable_keeps_counts_of_two_demos_on_one_redis_apart(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv(URL_VARIABLE, redis_url)
    apps = []
    for _ in range(2):
        monkeypatch.setenv(NAMESPACE_VARIABLE, unique_namespace())
        apps.append(create_app())
    with TestClient(apps[0], client=unique_client()) as one, TestClient(apps[1], client=unique_client()) as other:
        with one.websocket_connect("/person") as first, other.websocket_connect("/person") as second:
            join_person_room(first, 1)
            join_person_room(second, 2)
            # Each demo counts only its own member: one shared namespace would count both.
            first.send_json(chat("count", 3))
            assert receive_json(first) == reply("count", 3, message=1)
            second.send_json(chat("count", 4))
            assert receive_json(second) == reply("count", 4, message=1)


@pytest.mark.parametrize("seed", SEEDS)
def test_seed_file_imports_unchanged_with_its_three_rooms(seed: str) -> None:
    module = importlib.import_module(f"example.{seed.removesuffix('.py')}")
    paths = {getattr(route, "path", None) for route in module.app.routes}
    assert {"/", "/base", "/person", "/group"} <= paths
    assert module.app.state.fastapi_channels.url == "redis://localhost:6379"
    assert module.global_channels_details == {
        "BaselChatRoom": {"action": [], "room": "base_channel", "name": "chatroom_ws_base"},
        "PersonalChatRoom": {
            "action": ["count", "message", "deprecated_action", "permission_denied", "error", "close"],
            "room": "channel",
            "name": "chatroom_ws_person",
        },
        "GroupChatRoom": {
            "action": ["message", "error_true", "error_false", "close"],
            "room": "channel",
            "name": "chatroom_ws_group",
        },
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_seed_channel_details_render_with_the_demo_template(seed: str) -> None:
    module = load_seed(seed, "memory://")

    # The seed's own homepage calls TemplateResponse(name, context), which Starlette 1.0 removed; render the
    # same context with the current signature to show the template serves the seed's channel details.
    @module.app.get("/seed-page")
    async def seed_page(request: Request) -> Any:
        return module.templates.TemplateResponse(request, "index.html", {"channels": module.global_channels_details})

    with TestClient(module.app) as client:
        page = parse_page(client.get("/seed-page").text)
    assert page.listed == {
        "/base": {"class": "BaselChatRoom", "actions": []},
        "/person": {"class": "PersonalChatRoom", "actions": module.person_chatroom.actions},
        "/group": {"class": "GroupChatRoom", "actions": module.group_chatroom.actions},
    }
    assert module.group_chatroom.actions == ["message", "error_true", "error_false", "close"]


# -- the rooms, on the demo and both seed examples, on memory:// and Redis -------------------------------


def test_base_room_text_frame_relayed_to_everyone(client: TestClient) -> None:
    with client.websocket_connect("/base") as first:
        # A socket that receives its own relayed frame is in the room.
        first.send_text("first is here")
        assert receive_text(first) == "first is here"
        with client.websocket_connect("/base") as second:
            second.send_text("second is here")
            assert receive_text(second) == "second is here"
            assert receive_text(first) == "second is here"
            text = f"hello everyone {uuid.uuid4().hex}"
            first.send_text(text)
            assert receive_text(first) == text
            assert receive_text(second) == text


def test_person_room_count_replies_to_sender_only(client: TestClient) -> None:
    with client.websocket_connect("/person") as first, client.websocket_connect("/person") as second:
        join_person_room(first, 1)
        join_person_room(second, 2)
        first.send_json(chat("count", 3))
        assert receive_json(first) == reply("count", 3, message=2)
        first.send_json(chat("message", 4))
        assert receive_json(first) == reply("message", 4)
        # The next frame the other member gets is the broadcast: the count went to its sender alone.
        assert receive_json(second) == reply("message", 4)


def test_person_room_message_broadcast_to_both(client: TestClient) -> None:
    with client.websocket_connect("/person") as first, client.websocket_connect("/person") as second:
        join_person_room(first, 1)
        join_person_room(second, 2)
        second.send_json(chat("message", 3, user="bob", message="hi alice"))
        expected = reply("message", 3, user="bob", message="hi alice")
        assert receive_json(first) == expected
        assert receive_json(second) == expected


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("deprecated_action", ActionIsDeprecated(error_msg="The action 'deprecated_action' is deprecated.")),
        ("permission_denied", PermissionDenied()),
        ("error", PermissionDenied()),
    ],
)
def test_person_room_error_action_answers_error_frame_and_stays_open(
    client: TestClient, action: str, expected: WebSocketException
) -> None:
    with client.websocket_connect("/person") as ws:
        ws.send_json(chat(action, 41))
        frame = receive_json(ws)
        assert_error(frame, action, 41, code=expected.code, close=False)
        assert frame["errors"] == expected.error_msg
        ws.send_json(chat("message", 42))
        assert receive_json(ws) == reply("message", 42)


def test_person_room_close_action_closes_socket(client: TestClient) -> None:
    with client.websocket_connect("/person") as first, client.websocket_connect("/person") as second:
        join_person_room(first, 1)
        join_person_room(second, 2)
        first.send_json(chat("close", 3))
        assert receive_close(first)[0] == 1000
        # Only the sender's socket closed: the other member still chats.
        second.send_json(chat("message", 4))
        assert receive_json(second) == reply("message", 4)


def test_person_room_third_count_rate_limited_and_stays_open(client: TestClient) -> None:
    with client.websocket_connect("/person") as ws:
        ws.send_json(chat("count", 1))
        assert receive_json(ws) == reply("count", 1, message=1)
        ws.send_json(chat("count", 2))
        assert receive_json(ws) == reply("count", 2, message=1)
        ws.send_json(chat("count", 3))
        frame = receive_json(ws)
        assert_error(frame, "count", 3, code=RateLimitExceeded.default_code, close=False)
        assert 0 < frame["retry_after"] <= 3000
        ws.send_json(chat("message", 4))
        assert receive_json(ws) == reply("message", 4)


def test_person_room_third_connection_refused(client: TestClient) -> None:
    with client.websocket_connect("/person") as first, client.websocket_connect("/person") as second:
        join_person_room(first, 1)
        join_person_room(second, 2)
        with client.websocket_connect("/person") as third:
            frame = receive_json(third)
            assert frame["status"] == "bad" and frame["errors"]
            assert frame["code"] == 1013 and frame["close"] is True
            assert receive_close(third)[0] == 1013
        first.send_json(chat("count", 3))
        assert receive_json(first) == reply("count", 3, message=2)


def test_group_room_joiner_receives_join_notice(client: TestClient) -> None:
    with client.websocket_connect("/group") as first:
        assert receive_text(first) == "Join successfully"
        with client.websocket_connect("/group") as second:
            assert receive_text(second) == "Join successfully"
            # The join notice is personal: the member already there hears the next broadcast, not the notice.
            second.send_json(chat("message", 1, user="bob"))
            assert receive_json(first) == reply("message", 1, user="bob")


def test_group_room_message_rate_limited_once_per_3_seconds(client: TestClient) -> None:
    with client.websocket_connect("/group") as first, client.websocket_connect("/group") as second:
        assert receive_text(first) == JOIN_NOTICE
        assert receive_text(second) == JOIN_NOTICE
        first.send_json(chat("message", 1))
        assert receive_json(first) == reply("message", 1)
        assert receive_json(second) == reply("message", 1)
        first.send_json(chat("message", 2))
        frame = receive_json(first)
        assert_error(frame, "message", 2, code=RateLimitExceeded.default_code, close=False)
        assert 0 < frame["retry_after"] <= 3
        first.send_json(chat("error_false", 3))
        assert_error(receive_json(first), "error_false", 3, code=1008, close=False)


def test_group_room_error_true_closes_with_1008_after_frame(client: TestClient) -> None:
    with client.websocket_connect("/group") as ws:
        assert receive_text(ws) == JOIN_NOTICE
        ws.send_json(chat("error_true", 9))
        frame = receive_json(ws)
        assert_error(frame, "error_true", 9, code=1008, close=True)
        assert frame["errors"] == PermissionDenied.default_error_msg
        assert receive_close(ws)[0] == 1008


def test_group_room_error_false_keeps_socket_open(client: TestClient) -> None:
    with client.websocket_connect("/group") as ws:
        assert receive_text(ws) == JOIN_NOTICE
        ws.send_json(chat("error_false", 9))
        frame = receive_json(ws)
        assert_error(frame, "error_false", 9, code=1008, close=False)
        assert frame["errors"] == PermissionDenied.default_error_msg
        ws.send_json(chat("message", 10))
        assert receive_json(ws) == reply("message", 10)


def test_group_room_close_action_closes_socket(client: TestClient) -> None:
    with client.websocket_connect("/group") as ws:
        assert receive_text(ws) == JOIN_NOTICE
        ws.send_json(chat("close", 1))
        assert receive_close(ws)[0] == 1000


@pytest.mark.parametrize("how", ["client_close", "close_action", "error_true"])
def test_group_room_member_leaving_notifies_remaining(client: TestClient, how: str) -> None:
    with client.websocket_connect("/group") as stays:
        assert receive_text(stays) == JOIN_NOTICE
        with client.websocket_connect("/group") as leaves:
            assert receive_text(leaves) == JOIN_NOTICE
            if how == "client_close":
                leaves.close(1000)
            elif how == "close_action":
                leaves.send_json(chat("close", 1))
                assert receive_close(leaves)[0] == 1000
            else:
                leaves.send_json(chat("error_true", 1))
                assert receive_json(leaves)["close"] is True
                assert receive_close(leaves)[0] == 1008
            # Still inside the block: leaving it makes TestClient cancel the server task of this socket,
            # which a real server never does, and would cut the leave handler's publish short.
            assert receive_text(stays, FRAME_TIMEOUT) == "leave successfully"
        stays.send_json(chat("message", 2))
        assert receive_json(stays) == reply("message", 2)


# -- real uvicorn servers and a real websocket client ----------------------------------------------------


def loopback_host() -> str:
    """A random address on the loopback network, so each client has its own rate-limit identity."""
    return f"127.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"


async def join_group(base_url: str) -> ClientConnection:
    """Connect a real websocket client to the group room from its own address and wait for the join notice."""
    ws = await connect(base_url.replace("http://", "ws://") + "/group", local_addr=(loopback_host(), 0))
    assert await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT) == JOIN_NOTICE
    return ws


async def receive_frame(ws: ClientConnection) -> Any:
    """The next frame, decoded as JSON when it is JSON."""
    text = await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
    assert isinstance(text, str)
    try:
        return json.loads(text)
    except ValueError:
        return text


@pytest.mark.parametrize("seed", SEEDS)
async def test_seed_under_uvicorn_abrupt_disconnect_notifies_the_group(
    seed: str, backend: dict[str, str | None]
) -> None:
    env = {"SEED_EXAMPLE": seed, "SEED_URL": backend["url"] or "memory://", "SEED_NAMESPACE": unique_namespace()}
    with run_uvicorn("tests.apps.seed_app:app", env=env) as base_url:
        alice = await join_group(base_url)
        bob = await join_group(base_url)
        try:
            await alice.send(json.dumps(chat("message", 1, user="alice", message="hi bob")))
            assert await receive_frame(alice) == reply("message", 1, user="alice", message="hi bob")
            assert await receive_frame(bob) == reply("message", 1, user="alice", message="hi bob")
            await bob.send(json.dumps(chat("message", 2, user="bob", message="hi alice")))
            assert await receive_frame(alice) == reply("message", 2, user="bob", message="hi alice")
            assert await receive_frame(bob) == reply("message", 2, user="bob", message="hi alice")

            # Drop alice's TCP connection without a close frame.
            assert alice.transport is not None
            alice.transport.abort()
            assert await receive_frame(bob) == LEAVE_NOTICE

            # The server keeps serving: a newcomer joins and chats with bob.
            carol = await join_group(base_url)
            await carol.send(json.dumps(chat("message", 3, user="carol", message="hello")))
            assert await receive_frame(bob) == reply("message", 3, user="carol")
            assert await receive_frame(carol) == reply("message", 3, user="carol")
            await carol.close()
            assert await receive_frame(bob) == LEAVE_NOTICE
        finally:
            await bob.close()


async def test_seed_under_uvicorn_error_true_closes_with_1008() -> None:
    with run_uvicorn("tests.apps.seed_app:app", env={"SEED_URL": "memory://"}) as base_url:
        ws = await join_group(base_url)
        await ws.send(json.dumps(chat("error_true", 5)))
        frame = await receive_frame(ws)
        assert frame["errors"] == PermissionDenied.default_error_msg and frame["request_id"] == 5
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def fetch(url: str) -> tuple[int, str, str]:
    """GET ``url``: status, content type and body."""
    with urllib.request.urlopen(url, timeout=FRAME_TIMEOUT) as response:
        return response.status, response.headers["content-type"], response.read().decode()


async def test_demo_under_uvicorn_serves_page_assets_and_rooms() -> None:
    with run_uvicorn("example.app:app", env={URL_VARIABLE: "memory://"}) as base_url:
        status, content_type, html = fetch(base_url + "/explore")
        assert status == 200 and content_type.startswith("text/html")
        page = parse_page(html)
        assert set(page.listed) == {"/base", "/person", "/group"}
        for asset in page.assets:
            status, _, body = fetch(base_url + asset)
            assert status == 200 and body
        alice = await join_group(base_url)
        assert json.loads(fetch(base_url + "/count/group")[2])["connections"] == 1
        await alice.send(json.dumps(chat("message", 1)))
        assert await receive_frame(alice) == reply("message", 1)
        await alice.close()


async def test_demo_two_processes_on_redis_chat_with_each_other(redis_url: str) -> None:
    env = {URL_VARIABLE: redis_url, NAMESPACE_VARIABLE: unique_namespace()}
    with run_uvicorn("example.app:app", env=env) as first_url, run_uvicorn("example.app:app", env=env) as second_url:
        assert json.loads(fetch(first_url + "/channels")[2])["backend"] == "Redis"
        alice = await join_group(first_url)
        bob = await join_group(second_url)
        try:
            # Presence lives in Redis too: each process counts both members, the page's live count with them.
            for base_url in (first_url, second_url):
                assert json.loads(fetch(base_url + "/count/group")[2])["connections"] == 2
            await alice.send(json.dumps(chat("message", 1, user="alice", message="hi from port one")))
            assert await receive_frame(alice) == reply("message", 1, user="alice", message="hi from port one")
            assert await receive_frame(bob) == reply("message", 1, user="alice", message="hi from port one")
            await bob.send(json.dumps(chat("message", 2, user="bob", message="hi from port two")))
            assert await receive_frame(alice) == reply("message", 2, user="bob", message="hi from port two")
            assert await receive_frame(bob) == reply("message", 2, user="bob", message="hi from port two")
            # Leaving one process tells the members of the other.
            await bob.close()
            assert await receive_frame(alice) == LEAVE_NOTICE
        finally:
            await alice.close()
            await bob.close()
