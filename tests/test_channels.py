"""Channels: names, relaying, broadcasting and encoding, and the errors of a channel used without its app."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient

from fastapi_channels.api import get_channel_config
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.testing import ChannelCommunicator
from tests.helpers import serve

# -- channel names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("class_channel", "init_channel", "connect_channel", "expected"),
    [
        (None, None, None, "default_channel"),
        ("from-class", None, None, "from-class"),
        ("from-class", "from-init", None, "from-init"),
        ("from-class", "from-init", "from-connect", "from-connect"),
        (None, None, "from-connect", "from-connect"),
    ],
    ids=["default", "class-attribute", "constructor-over-class", "connect-over-all", "connect-over-default"],
)
async def test_channel_name_most_specific_setting_wins(
    class_channel: str | None, init_channel: str | None, connect_channel: str | None, expected: str
) -> None:
    class Room(Channel):
        if class_channel is not None:
            channel = class_channel

        @action()
        async def where(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, channel)

    path = "/ws" if connect_channel is None else f"/ws/{connect_channel}"
    async with ChannelCommunicator(serve(Room(channel=init_channel)), path) as client:
        await client.send_action("where")
        assert await client.receive_text() == expected


# -- relaying and broadcasting ---------------------------------------------------------------------------


async def test_base_channel_text_frame_relayed_to_every_member_of_its_channel_only(
    backend: dict[str, Any], channel_name: str
) -> None:
    app = serve(BaseChannel(), **backend)
    async with (
        ChannelCommunicator(app, f"/ws/{channel_name}-a") as first,
        ChannelCommunicator(app, f"/ws/{channel_name}-a") as second,
        ChannelCommunicator(app, f"/ws/{channel_name}-b") as other,
    ):
        await first.send_text("hello, not even JSON")
        assert await first.receive_text() == "hello, not even JSON"
        assert await second.receive_text() == "hello, not even JSON"
        await second.send_text('{"action": "anything"}')
        assert await first.receive_text() == '{"action": "anything"}'
        assert await second.receive_text() == '{"action": "anything"}'
        # Had the other channel heard the relays, they would arrive before its own.
        await other.send_text("own")
        assert await other.receive_text() == "own"


async def test_broadcast_to_channel_reaches_every_connection_of_that_channel_only(
    backend: dict[str, Any], channel_name: str
) -> None:
    class Room(Channel):
        @action()
        async def shout(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(data["to"], {"shout": data["text"]})

    app = serve(Room(), **backend)
    red, blue = f"{channel_name}-red", f"{channel_name}-blue"
    async with (
        ChannelCommunicator(app, f"/ws/{red}") as red_1,
        ChannelCommunicator(app, f"/ws/{red}") as red_2,
        ChannelCommunicator(app, f"/ws/{blue}") as blue_1,
    ):
        await blue_1.send_action("shout", to=red, text="to red")
        assert await red_1.receive_json() == {"shout": "to red"}
        assert await red_2.receive_json() == {"shout": "to red"}
        await red_1.send_action("shout", to=blue, text="to blue")
        assert await blue_1.receive_json() == {"shout": "to blue"}
        await red_2.send_action("shout", to=red, text="again")
        # The red clients' next frame is the second red broadcast: the blue one never reached them.
        assert await red_1.receive_json() == {"shout": "again"}
        assert await red_2.receive_json() == {"shout": "again"}


async def test_broadcast_to_personal_reaches_only_the_given_socket(backend: dict[str, Any], channel_name: str) -> None:
    class Room(Channel):
        @action()
        async def whisper(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_personal(websocket, {"whisper": data["text"]})

        @action()
        async def shout(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(channel, {"shout": data["text"]})

    app = serve(Room(), **backend)
    async with (
        ChannelCommunicator(app, f"/ws/{channel_name}") as asker,
        ChannelCommunicator(app, f"/ws/{channel_name}") as bystander,
    ):
        await asker.send_action("whisper", text="secret")
        assert await asker.receive_json() == {"whisper": "secret"}
        await asker.send_action("shout", text="public")
        assert await asker.receive_json() == {"shout": "public"}
        # Had the whisper reached the bystander, it would arrive before the shout.
        assert await bystander.receive_json() == {"shout": "public"}


# -- encoding --------------------------------------------------------------------------------------------


class WrappingRoom(Channel):
    """Wraps every encoded message in {"wrapped": ...}: wrapped twice would mean encoded twice."""

    @staticmethod
    async def encode_json(data: Any) -> str:
        return json.dumps({"wrapped": data})

    @action()
    async def send(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        message: Any = data["payload"]
        if data["form"] == "encoded":
            message = await self.encode(message)
        elif data["form"] == "unawaited-encode":
            # The README passes self.encode(data) without awaiting it: the coroutine's text goes out as it is.
            message = self.encode(message)
        if data["to"] == "channel":
            await self.broadcast_to_channel(channel, message)
        else:
            await self.broadcast_to_personal(websocket, message)


@pytest.mark.parametrize("to", ["channel", "personal"])
@pytest.mark.parametrize(
    ("form", "payload", "expected"),
    [
        ("as-is", "plain text, sent as it is", "plain text, sent as it is"),
        ("as-is", '{"already": "json"}', '{"already": "json"}'),
        ("as-is", {"n": 1}, '{"wrapped": {"n": 1}}'),
        ("as-is", [1, "two"], '{"wrapped": [1, "two"]}'),
        ("encoded", {"n": 1}, '{"wrapped": {"n": 1}}'),
        ("unawaited-encode", {"n": 1}, '{"wrapped": {"n": 1}}'),
    ],
    ids=["str", "json-str", "dict", "list", "encode-result", "encode-coroutine"],
)
async def test_send_str_goes_as_is_and_anything_else_is_encoded_exactly_once(
    backend: dict[str, Any], channel_name: str, to: str, form: str, payload: Any, expected: str
) -> None:
    async with ChannelCommunicator(serve(WrappingRoom(), **backend), f"/ws/{channel_name}") as client:
        await client.send_action("send", to=to, form=form, payload=payload)
        assert await client.receive_text() == expected


async def test_broadcast_to_many_recipients_encodes_once(backend: dict[str, Any], channel_name: str) -> None:
    encoded: list[Any] = []

    class Room(Channel):
        @staticmethod
        async def encode_json(data: Any) -> str:
            encoded.append(data)
            return json.dumps(data)

        @action()
        async def shout(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(channel, {"shout": data["text"]})

    app = serve(Room(), **backend)
    async with (
        ChannelCommunicator(app, f"/ws/{channel_name}") as first,
        ChannelCommunicator(app, f"/ws/{channel_name}") as second,
        ChannelCommunicator(app, f"/ws/{channel_name}") as third,
    ):
        await first.send_action("shout", text="hi")
        for client in (first, second, third):
            assert await client.receive_json() == {"shout": "hi"}
    assert encoded == [{"shout": "hi"}]


async def test_sync_encode_json_shapes_outgoing_messages(backend: dict[str, Any], channel_name: str) -> None:
    class Room(Channel):
        @staticmethod
        def encode_json(data: Any) -> str:
            return "sync:" + json.dumps(data, sort_keys=True)

        @action()
        async def shout(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(channel, {"b": 2, "a": 1})
            await self.broadcast_to_personal(websocket, {"personal": True})

    async with ChannelCommunicator(serve(Room(), **backend), f"/ws/{channel_name}") as client:
        await client.send_action("shout")
        received = {await client.receive_text(), await client.receive_text()}
        assert received == {'sync:{"a": 1, "b": 2}', 'sync:{"personal": true}'}


# -- misuse ----------------------------------------------------------------------------------------------------


def test_channel_without_add_channel_fails_with_message_naming_add_channel() -> None:
    app = FastAPI()
    room = BaseChannel()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    with TestClient(app) as client, pytest.raises(RuntimeError, match=r"add_channel\(app\)"):
        with client.websocket_connect("/ws"):
            pass


def test_channel_with_lifespan_not_started_fails_with_message_saying_how_to_start_it() -> None:
    room = BaseChannel()
    app = serve(room)
    client = TestClient(app)  # not entered: the app lifespan never runs
    with pytest.raises(RuntimeError, match=r"with TestClient\(app\) as client"):
        with client.websocket_connect("/ws"):
            pass


async def test_broadcast_without_running_app_fails_with_message_naming_add_channel() -> None:
    room = BaseChannel()
    with pytest.raises(RuntimeError, match=r"add_channel\(app\)"):
        await room.broadcast_to_channel("anywhere", "hello")


def test_get_channel_config_without_running_app_says_how_to_fix_it() -> None:
    with pytest.raises(RuntimeError) as info:
        get_channel_config()
    message = str(info.value)
    assert "add_channel(app)" in message
    assert "with TestClient(app) as client" in message
