"""Direct messages and who is online: send_to_connection, send_to_user, get_members, the reserved direct channel."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.authentication import SimpleUser, UnauthenticatedUser
from starlette.testclient import WebSocketTestSession

from fastapi_channels import send_to_user
from fastapi_channels.api import STATE_KEY
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.testing import receive_close, receive_json, receive_text
from tests.helpers import JOINED, greet_on_join, joined, serve

# -- addressing one connection or one user, and who is online ------------------------------------------------


def direct_room() -> Channel:
    """A room whose actions say who the caller is, send to one connection or user, list members and ping."""

    class Room(Channel):
        @action()
        async def whoami(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"id": self.get_connection_id(websocket)})

        @action()
        async def tell(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.send_to_connection(data["to"], {"told": data["text"]})

        @action()
        async def tell_user(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.send_to_user(data["user"], {"told": data["text"]}, channel=data.get("channel"))

        @action()
        async def members(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            members = await self.get_members(channel)
            count = await self.get_connection_count(channel)
            await self.broadcast_to_personal(websocket, {"count": count, "members": [asdict(m) for m in members]})

        @action()
        async def ping(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"pong": True})

    room = Room()
    greet_on_join(room)
    return room


@contextlib.contextmanager
def joined_as(client: TestClient, path: str, user: str | None) -> Iterator[WebSocketTestSession]:
    """Connect to ``path`` as ``user`` (anonymous if None) and wait until the client is in its channel."""
    with client.websocket_connect(path, headers={"x-user": user} if user else {}) as ws:
        assert receive_text(ws) == JOINED
        yield ws


def connection_id_of(ws: WebSocketTestSession) -> str:
    ws.send_json({"action": "whoami"})
    answer = receive_json(ws)
    assert isinstance(answer.get("id"), str) and answer["id"], answer
    return str(answer["id"])


def assert_nothing_else_received(*sockets: WebSocketTestSession) -> None:
    """Each socket's next frame is the answer to its ping: a message that had leaked to it would come first.

    Called once the addressee has its message: by then the server has queued the message for every socket it
    went to, so anything leaked is queued before the pong.
    """
    for ws in sockets:
        ws.send_json({"action": "ping"})
        assert receive_json(ws) == {"pong": True}


def test_send_to_connection_reaches_only_that_connection(backend: dict[str, Any], channel_name: str) -> None:
    app = serve(direct_room(), **backend)
    room, other_room = f"/ws/{channel_name}", f"/ws/{channel_name}-other"
    with (
        TestClient(app) as client,
        joined(client, room) as sender,
        joined(client, room) as target,
        joined(client, room) as bystander,
        joined(client, other_room) as elsewhere,
    ):
        ids = [connection_id_of(ws) for ws in (sender, target, bystander, elsewhere)]
        assert len(set(ids)) == 4
        sender.send_json({"action": "tell", "to": ids[1], "text": "psst"})
        assert receive_json(target) == {"told": "psst"}
        assert_nothing_else_received(sender, bystander, elsewhere)
        # Ids are unique across channels: a connection of another channel is reached too.
        target.send_json({"action": "tell", "to": ids[3], "text": "across"})
        assert receive_json(elsewhere) == {"told": "across"}
        assert_nothing_else_received(sender, target, bystander)


def test_send_to_connection_unknown_id_is_a_silent_no_op(backend: dict[str, Any], channel_name: str) -> None:
    app = serve(direct_room(), **backend)
    path = f"/ws/{channel_name}"
    with TestClient(app) as client, joined(client, path) as sender, joined(client, path) as other:
        sender.send_json({"action": "tell", "to": "no-such-connection", "text": "lost"})
        # No error for the sender; the next direct message is the first anyone receives.
        sender.send_json({"action": "tell", "to": connection_id_of(other), "text": "found"})
        assert receive_json(other) == {"told": "found"}
        assert_nothing_else_received(sender, other)


def test_send_to_user_reaches_every_connection_of_the_user_and_channel_restricts_it(
    backend: dict[str, Any], channel_name: str
) -> None:
    app = serve(direct_room(), authenticated=True, **backend)
    lobby, game = f"{channel_name}-lobby", f"{channel_name}-game"
    with (
        TestClient(app) as client,
        joined_as(client, f"/ws/{lobby}", "alice") as alice_lobby,
        joined_as(client, f"/ws/{lobby}", "alice") as alice_phone,
        joined_as(client, f"/ws/{game}", "alice") as alice_game,
        joined_as(client, f"/ws/{lobby}", "bob") as bob,
        joined_as(client, f"/ws/{lobby}", None) as anonymous,
    ):
        bob.send_json({"action": "tell_user", "user": "alice", "text": "hi alice"})
        for ws in (alice_lobby, alice_phone, alice_game):
            assert receive_json(ws) == {"told": "hi alice"}
        assert_nothing_else_received(bob, anonymous)
        bob.send_json({"action": "tell_user", "user": "alice", "text": "see you in the game", "channel": game})
        assert receive_json(alice_game) == {"told": "see you in the game"}
        assert_nothing_else_received(alice_lobby, alice_phone, bob, anonymous)
        # A user with no connection: nobody receives anything, and the sender gets no error.
        alice_game.send_json({"action": "tell_user", "user": "carol", "text": "nobody home"})
        alice_game.send_json({"action": "tell_user", "user": "bob", "text": "hi bob"})
        assert receive_json(bob) == {"told": "hi bob"}
        assert_nothing_else_received(alice_lobby, alice_phone, alice_game, bob, anonymous)


def test_send_to_user_and_connection_from_http_endpoint_with_channel_bound_to_app(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = direct_room()
    app = serve(room, authenticated=True, **backend)
    notifier = BaseChannel(app=app, group=room.group)  # another object that shares the room's channels

    @app.post("/notify/user/{user}")
    async def notify_user(user: str, text: str, channel: str | None = None) -> None:
        # App-wide: notifier serves nobody, so its own send_to_user would reach no one.
        await send_to_user(user, {"notified": text}, channel=channel, app=app)

    @app.post("/notify/connection/{connection_id}")
    async def notify_connection(connection_id: str, text: str) -> None:
        await notifier.send_to_connection(connection_id, {"notified": text})

    @app.get("/members/{channel}")
    async def members(channel: str) -> dict[str, Any]:
        found = await notifier.get_members(channel)
        return {"count": await notifier.get_connection_count(channel), "users": [m.user for m in found]}

    lobby, game = f"{channel_name}-lobby", f"{channel_name}-game"
    with (
        TestClient(app) as client,
        joined_as(client, f"/ws/{lobby}", "alice") as alice_lobby,
        joined_as(client, f"/ws/{game}", "alice") as alice_game,
        joined_as(client, f"/ws/{lobby}", "bob") as bob,
    ):
        assert client.get(f"/members/{lobby}").json() == {"count": 2, "users": ["alice", "bob"]}
        assert client.post("/notify/user/alice", params={"text": "from http"}).status_code == 200
        assert receive_json(alice_lobby) == {"notified": "from http"}
        assert receive_json(alice_game) == {"notified": "from http"}
        assert_nothing_else_received(bob)
        assert client.post("/notify/user/alice", params={"text": "game only", "channel": game}).status_code == 200
        assert receive_json(alice_game) == {"notified": "game only"}
        assert_nothing_else_received(alice_lobby, bob)
        assert client.post(f"/notify/connection/{connection_id_of(bob)}", params={"text": "bob"}).status_code == 200
        assert receive_json(bob) == {"notified": "bob"}
        assert_nothing_else_received(alice_lobby, alice_game)


def test_get_members_and_connection_id_from_an_action_agree_with_the_count(
    backend: dict[str, Any], channel_name: str
) -> None:
    app = serve(direct_room(), authenticated=True, **backend)
    path = f"/ws/{channel_name}"
    with (
        TestClient(app) as client,
        joined_as(client, path, "alice") as alice,
        joined_as(client, f"/ws/{channel_name}-other", "carol"),
    ):
        node = get_channel_config_of(app).presence.node
        with joined_as(client, path, "bob") as bob, joined_as(client, path, None) as anonymous:
            ids = [connection_id_of(ws) for ws in (alice, bob, anonymous)]
            anonymous.send_json({"action": "members"})
            listing = receive_json(anonymous)
            assert listing["count"] == 3
            # Oldest first: the order the clients joined in.
            assert [(m["connection_id"], m["user"], m["node"]) for m in listing["members"]] == [
                (ids[0], "alice", node),
                (ids[1], "bob", node),
                (ids[2], None, node),
            ]
            assert all(isinstance(m["joined_at"], float) for m in listing["members"])
            bob.close()
            anonymous.close()
        # The server notices the closes on its own time: ask until they are gone.
        deadline = time.monotonic() + 5
        while True:
            alice.send_json({"action": "members"})
            listing = receive_json(alice)
            assert listing["count"] == len(listing["members"])
            if listing["count"] == 1:
                break
            assert time.monotonic() < deadline, f"the closed connections are still listed: {listing}"
        assert listing["members"][0]["connection_id"] == ids[0]


def get_channel_config_of(app: FastAPI) -> Any:
    return getattr(app.state, STATE_KEY)


def test_client_joining_the_direct_channel_by_name_can_neither_read_nor_forge_direct_messages(
    backend: dict[str, Any], channel_name: str
) -> None:
    # Apps that let clients name their channel (/ws/{name}) must not hand them the topic of direct messages.
    namespace = backend["namespace"]
    room = BaseChannel()
    greet_on_join(room)
    app = serve(room, authenticated=True, **backend)
    notifier = BaseChannel(app=app)
    reserved = f"{namespace}.direct"

    @app.post("/forge")
    async def forge() -> None:
        forged = json.dumps({"connection": None, "user": "alice", "channel": None, "text": "forged"})
        await notifier.broadcast_to_channel(reserved, forged)

    @app.post("/secret")
    async def secret() -> None:
        await send_to_user("alice", "for alice only", app=app)

    with TestClient(app, raise_server_exceptions=False) as client:
        with joined_as(client, f"/ws/{channel_name}", "alice") as alice:
            with client.websocket_connect(f"/ws/{reserved}", headers={"x-user": "mallory"}) as mallory:
                refused = receive_json(mallory)
                assert (refused["code"], refused["close"]) == (1008, True)
                assert refused["errors"] == f"The channel name {reserved!r} is reserved."
                assert receive_close(mallory)[0] == 1008
            # Nor does app code publishing to that name reach it: channel names live under the namespace and the
            # channel's group, never on the direct topic. Alice's first frame is the genuine direct message.
            assert client.post("/forge").status_code == 200
            assert client.post("/secret").status_code == 200
            assert receive_text(alice) == "for alice only"


def test_user_who_logs_in_with_a_message_is_then_reached_by_send_to_user_and_listed(
    backend: dict[str, Any], channel_name: str
) -> None:
    room = direct_room()

    @room.action("login")
    async def login(websocket: WebSocket, data: dict[str, Any]) -> None:
        websocket.scope["user"] = SimpleUser(data["name"])
        await room.broadcast_to_personal(websocket, {"logged_in": data["name"]})

    @room.action("logout")
    async def logout(websocket: WebSocket, data: dict[str, Any]) -> None:
        websocket.scope["user"] = UnauthenticatedUser()
        await room.broadcast_to_personal(websocket, {"logged_out": True})

    app = serve(room, authenticated=True, **backend)
    with TestClient(app) as client, joined_as(client, f"/ws/{channel_name}", None) as carol:
        with joined_as(client, f"/ws/{channel_name}", "dave") as dave:
            carol.send_json({"action": "login", "name": "carol"})
            assert receive_json(carol) == {"logged_in": "carol"}
            dave.send_json({"action": "members"})
            assert sorted(str(member["user"]) for member in receive_json(dave)["members"]) == ["carol", "dave"]

            dave.send_json({"action": "tell_user", "user": "carol", "text": "welcome"})
            assert receive_json(carol) == {"told": "welcome"}

            carol.send_json({"action": "logout"})
            assert receive_json(carol) == {"logged_out": True}
            dave.send_json({"action": "tell_user", "user": "carol", "text": "gone?"})
            dave.send_json({"action": "members"})
            assert sorted(str(member["user"]) for member in receive_json(dave)["members"]) == ["None", "dave"]
            assert_nothing_else_received(carol)


def test_send_to_user_on_a_channel_object_reaches_only_the_connections_it_serves(
    backend: dict[str, Any], channel_name: str
) -> None:
    chat, notifications = direct_room(), direct_room()
    app = serve({"chat": chat, "notifications": notifications}, authenticated=True, **backend)
    chat_path = "/chat"

    @app.post("/notify/{user}")
    async def notify(user: str, text: str, everywhere: bool = False) -> None:
        if everywhere:
            await send_to_user(user, {"notified": text}, app=app)
        else:
            await notifications.send_to_user(user, {"notified": text})

    with (
        TestClient(app) as client,
        joined_as(client, chat_path, "alice") as alice_chat,
        joined_as(client, "/notifications", "alice") as alice_notifications,
    ):
        assert client.post("/notify/alice", params={"text": "for the bell"}).status_code == 200
        assert receive_json(alice_notifications) == {"notified": "for the bell"}
        # The chat socket of the same user, served by another channel object, hears nothing.
        assert_nothing_else_received(alice_chat, alice_notifications)
        assert client.post("/notify/alice", params={"text": "all", "everywhere": True}).status_code == 200
        assert receive_json(alice_chat) == {"notified": "all"}
        assert receive_json(alice_notifications) == {"notified": "all"}
        assert_nothing_else_received(alice_chat, alice_notifications)
