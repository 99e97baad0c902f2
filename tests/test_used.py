"""Ready-made channels: PersonChannel holds two connections, GroupChannel two hundred."""

from __future__ import annotations

from typing import Any

from fastapi import WebSocket
from fastapi.testclient import TestClient

from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.testing import receive_close, receive_json, receive_text
from fastapi_channels.used import GroupChannel, PersonChannel
from tests.helpers import greet_on_join, serve


def test_person_channel_third_connection_refused_with_error_frame_and_1013(
    backend: dict[str, Any], channel_name: str
) -> None:
    class PersonalChatRoom(PersonChannel):
        @action("message")
        async def send_message(self, websocket: WebSocket, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
            await self.broadcast_to_channel(channel, await self.encode(data))

    room = PersonalChatRoom(channel=channel_name)
    greet_on_join(room)
    app = serve(room, **backend)
    with TestClient(app) as client, client.websocket_connect("/ws") as first, client.websocket_connect("/ws") as second:
        assert receive_text(first) == "joined"
        assert receive_text(second) == "joined"
        with client.websocket_connect("/ws") as third:
            frame = receive_json(third)
            assert frame["type"] == "response"
            assert frame["status"] == "bad"
            assert frame["code"] == 1013
            assert frame["close"] is True
            assert receive_close(third)[0] == 1013
        # The two inside are unaffected.
        first.send_json({"action": "message", "message": "just us"})
        assert receive_json(first) == {"action": "message", "message": "just us"}
        assert receive_json(second) == {"action": "message", "message": "just us"}


def test_person_channel_place_freed_by_a_leaver_admits_a_new_client(backend: dict[str, Any], channel_name: str) -> None:
    room = PersonChannel(channel=channel_name)
    greet_on_join(room)
    room.add_event_handler("leave", lambda websocket, channel: room.broadcast_to_channel(channel, "left"))
    app = serve(room, **backend)
    with TestClient(app) as client, client.websocket_connect("/ws") as first:
        assert receive_text(first) == "joined"
        with client.websocket_connect("/ws") as second:
            assert receive_text(second) == "joined"
            second.close()
            assert receive_text(first) == "left"
        with client.websocket_connect("/ws") as newcomer:
            assert receive_text(newcomer) == "joined"


def test_group_channel_admits_more_than_two(backend: dict[str, Any], channel_name: str) -> None:
    room = GroupChannel(channel=channel_name)
    greet_on_join(room)
    app = serve(room, **backend)
    with (
        TestClient(app) as client,
        client.websocket_connect("/ws") as first,
        client.websocket_connect("/ws") as second,
        client.websocket_connect("/ws") as third,
    ):
        for ws in (first, second, third):
            assert receive_text(ws) == "joined"


def test_used_channels_limits_on_class_and_instances() -> None:
    assert issubclass(PersonChannel, Channel)
    assert issubclass(GroupChannel, Channel)
    assert PersonChannel.max_connection == 2
    assert GroupChannel.max_connection == 200
    assert PersonChannel().max_connection == 2
    assert GroupChannel().max_connection == 200
    assert GroupChannel(max_connection=5).max_connection == 5

    class BigGroup(GroupChannel):
        max_connection = 500

    assert BigGroup().max_connection == 500
    assert GroupChannel.max_connection == 200
