"""Codecs: negotiation by subprotocol, the same values in handlers, every outgoing frame in the connection's codec,
broadcasts converted once, and hostile binary frames answered without losing the socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import websockets
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from pydantic_core import from_json
from starlette.middleware.authentication import AuthenticationMiddleware

from fastapi_channels import DenyAll, ParseError, add_channel
from fastapi_channels.auth import TokenAuthentication, authenticate_first_message, from_subprotocol
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.codecs import (
    JSON_BINARY,
    JSON_TEXT,
    MAX_DEPTH,
    MSGPACK,
    Codec,
    JsonTextCodec,
    MessagePackCodec,
    frame_decoder,
    negotiate,
    resolve_codecs,
)
from fastapi_channels.decorators import action
from fastapi_channels.protocol import parse_frame
from fastapi_channels.testing import receive_close
from tests.conftest import UvicornProcess
from tests.helpers import serve

TIMEOUT = 5
MSGPACK_PROTOCOL = "fastapi-channels.msgpack"
JSON_PROTOCOL = "fastapi-channels.json"
JSON_BINARY_PROTOCOL = "fastapi-channels.json-binary"


def packed(value: Any) -> bytes:
    frame: bytes = msgpack.packb(value)
    return frame


def nested(depth: int) -> bytes:
    """Return the MessagePack map ``{"action": "inspect", "n": [[...]]}`` with ``depth`` lists in ``n``."""
    return b"\x82" + packed("action") + packed("inspect") + packed("n") + b"\x91" * (depth - 1) + b"\x90"


# -- declaring codecs ------------------------------------------------------------------------------------------


def test_channel_codecs_default_to_json_text_and_accept_a_class_attribute_or_a_keyword() -> None:
    class Both(Channel):
        codecs = (JSON_TEXT, MSGPACK)

    assert Channel().codecs == (JSON_TEXT,)
    assert Both().codecs == (JSON_TEXT, MSGPACK)
    assert Both(codecs=[MSGPACK]).codecs == (MSGPACK,)  # the keyword wins, and becomes a tuple


@pytest.mark.parametrize(
    ("codecs", "error", "message"),
    [
        ((), ValueError, r"Channel.codecs is empty: give at least one codec"),
        (MSGPACK, TypeError, r"must be a tuple of codecs, such as \(JSON_TEXT, MSGPACK\)"),
        ("json", TypeError, r"must be a tuple of codecs"),
        (("json",), TypeError, r"holds 'json', which is not a codec: use JSON_TEXT, JSON_BINARY, MSGPACK"),
        ((JSON_TEXT, JsonTextCodec()), ValueError, r"names the subprotocol 'fastapi-channels.json' twice"),
    ],
)
def test_channel_codecs_that_cannot_work_fail_at_definition(codecs: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Channel(codecs=codecs)


def test_relay_codecs_other_than_json_text_fail_at_definition() -> None:
    class Relay(BaseChannel):
        pass

    assert Relay(codecs=(JSON_TEXT,)).codecs == (JSON_TEXT,)
    for codec in (MSGPACK, JSON_BINARY):
        with pytest.raises(TypeError, match=r"Relay is a BaseChannel, which relays text frames unchanged.*Channel"):
            Relay(codecs=(JSON_TEXT, codec))


def test_msgpack_codec_without_the_package_fails_at_definition_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)  # what Python does for a package that is not installed
    with pytest.raises(ImportError, match=r'pip install "fastapi-channels\[msgpack\]"'):
        Channel(codecs=(JSON_TEXT, MessagePackCodec()))


def test_codec_subprotocol_can_be_renamed_and_must_be_a_name() -> None:
    assert MessagePackCodec(subprotocol="chat.msgpack").subprotocol == "chat.msgpack"
    assert repr(MSGPACK) == "MessagePackCodec(subprotocol='fastapi-channels.msgpack')"
    with pytest.raises(ValueError, match="subprotocol must be a non-empty string"):
        MessagePackCodec(subprotocol="")

    class Nameless(Codec):
        def decode(self, frame: str | bytes) -> dict[str, Any]:
            return parse_frame(frame)

        def encode(self, value: Any) -> str:
            return json.dumps(value)

    with pytest.raises(TypeError, match="Nameless must set the class attributes name, binary, description"):
        Nameless(subprotocol="x")
    Nameless.name, Nameless.binary, Nameless.description = "nameless", False, "JSON text"
    with pytest.raises(ValueError, match="set the class attribute default_subprotocol, or pass subprotocol="):
        Nameless()


def test_negotiate_picks_the_servers_first_codec_the_client_offered() -> None:
    codecs = resolve_codecs((JSON_TEXT, JSON_BINARY, MSGPACK), owner="Room")
    assert negotiate(codecs, [MSGPACK_PROTOCOL, JSON_PROTOCOL]) is JSON_TEXT  # the server's order, not the client's
    assert negotiate(codecs, ["chat.v1", MSGPACK_PROTOCOL]) is MSGPACK
    assert negotiate(codecs, ["chat.v1", None, 3]) is None


# -- decoding --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "The message is not valid MessagePack."),
        (b"\xc1", "The message is not valid MessagePack."),
        (b"\x82\xa1a\x01", "The message is not valid MessagePack."),  # a map of two, cut short
        (packed({"action": "x"}) + b"\x00", "The message is not valid MessagePack."),  # something after the map
        (packed([1, 2]), 'The message must be a map such as {"action": "..."}.'),
        (packed("inspect"), 'The message must be a map such as {"action": "..."}.'),
        (packed({"action": "x", 1: "one"}), "Map keys must be strings, as in JSON."),
        (packed({"action": "x", None: "nil"}), "Map keys must be strings, as in JSON."),
        (packed({"action": "x", b"raw": 1}), "Map keys must be strings, as in JSON."),
        (b"\x82\xa6action\xa1x\x91\x01\xa1v", "Map keys must be strings, as in JSON."),  # a list as a key
        (b"\x82\xa6action\xa1x\x81\xa1a\x01\xa1v", "Map keys must be strings, as in JSON."),  # a map as a key
        (packed({"action": "x", "n": {"deep": [{"k": {2: 3}}]}}), "Map keys must be strings, as in JSON."),
        (packed({"action": "x", "v": float("nan")}), "NaN and infinite numbers are not supported"),
        (packed({"action": "x", "v": [float("-inf")]}), "NaN and infinite numbers are not supported"),
        (packed({"action": "x", "v": b"\x00\x01"}), "Binary values are not supported"),
        (packed({"action": "x", "v": msgpack.ExtType(7, b"data")}), "MessagePack extension types are not supported"),
        (packed({"action": "x", "v": [msgpack.Timestamp(1)]}), "MessagePack extension types are not supported"),
        (b"\x81\xa6action\xa3\xed\xa0\x80", "A string in the message is not valid UTF-8."),  # a lone surrogate
        (b"\x81\xa6action\xa2\xff\xfe", "A string in the message is not valid UTF-8."),
        (nested(MAX_DEPTH + 1), "The message is nested too deeply."),
        (nested(5000), "The message is nested too deeply."),  # past msgpack's own stack
        (b"\x81\xa6action\xdd\x00\x01\x00\x00" + b"\x90" * 65536, "The message holds too many lists and maps"),
    ],
)
def test_msgpack_decode_refuses_what_json_could_not_send_with_a_parse_error(frame: bytes, message: str) -> None:
    with pytest.raises(ParseError) as refused:
        MSGPACK.decode(frame)
    assert refused.value.error_msg is not None and refused.value.error_msg.startswith(message)
    assert (refused.value.code, refused.value.close) == (1007, False)


def test_msgpack_decode_nests_as_deeply_as_json_text_and_no_deeper() -> None:
    # {"action": ..., "n": [[...]]} with MAX_DEPTH lists in "n": the deepest JSON text may hold too.
    as_json = '{"action":"inspect","n":' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}"
    assert MSGPACK.decode(nested(MAX_DEPTH)) == parse_frame(as_json)
    too_deep = '{"action":"inspect","n":' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}"
    for refuse in (lambda: parse_frame(too_deep), lambda: MSGPACK.decode(nested(MAX_DEPTH + 1))):
        with pytest.raises(ParseError, match="nested too deeply"):
            refuse()


def test_msgpack_decode_large_frames_of_small_lists_fit_the_budget() -> None:
    # One list per two bytes is allowed at any size: what JSON text of lists of one digit holds.
    rows = [[index % 10] for index in range(40_000)]
    assert MSGPACK.decode(packed({"action": "x", "rows": rows}))["rows"] == rows


def test_decoded_values_are_the_same_whichever_codec() -> None:
    frame = {"action": "x", "n": [1, -(2**63), 2**64 - 1, 2.5, "é", True, None, {"k": []}], "s": "\U0001f600"}
    as_text = json.dumps(frame)
    decoded = [JSON_TEXT.decode(as_text), JSON_BINARY.decode(as_text.encode()), MSGPACK.decode(packed(frame))]
    assert decoded[0] == decoded[1] == decoded[2] == frame
    assert [type(value) for value in decoded[2]["n"]] == [type(value) for value in decoded[0]["n"]]


def test_frame_decoder_reads_the_other_frame_type_with_the_first_declared_codec() -> None:
    frame = {"action": "x", "v": 1}
    mixed = frame_decoder(MSGPACK, (JSON_TEXT, MSGPACK))
    assert mixed(packed(frame)) == mixed(json.dumps(frame)) == frame
    assert frame_decoder(JSON_TEXT, (JSON_TEXT,)) is parse_frame  # the default: no call more than before codecs
    assert frame_decoder(JSON_BINARY, (JSON_BINARY, MSGPACK))(b'{"action":"x","v":1}') == frame
    with pytest.raises(ParseError, match="not valid JSON"):
        frame_decoder(JSON_BINARY, (JSON_BINARY, MSGPACK))(packed(frame))  # a binary frame speaks the connection's


# -- encoding --------------------------------------------------------------------------------------------------


def test_transcode_turns_json_text_into_each_codecs_frame() -> None:
    text = '{"said":"hé","n":[1,2.5,null]}'
    assert JSON_TEXT.transcode(text) is text
    assert JSON_BINARY.transcode(text) == text.encode()
    assert msgpack.unpackb(MSGPACK.transcode(text)) == from_json(text)
    assert msgpack.unpackb(MSGPACK.transcode("plain words")) == "plain words"  # text that is not JSON: a string
    assert msgpack.unpackb(MSGPACK.encode({"a": [1]})) == {"a": [1]}
    assert JSON_BINARY.encode({"a": "é"}) == '{"a":"é"}'.encode()


def test_transcode_converts_the_same_text_once_and_remembers_a_failure() -> None:
    conversions: list[str] = []

    class Counting(MessagePackCodec):
        def encode_json_text(self, text: str) -> str | bytes:
            conversions.append(text)
            return super().encode_json_text(text)

    codec = Counting()
    text = '{"said":"hi"}'
    assert codec.transcode(text) == codec.transcode(text) == codec.transcode('{"said":"hi"}') == packed({"said": "hi"})
    assert conversions == [text]
    huge = '{"n":' + str(2**70) + "}"  # JSON holds it; MessagePack does not
    for _ in range(2):
        with pytest.raises(ValueError, match="cannot be encoded as msgpack: OverflowError"):
            codec.transcode(huge)
    assert conversions == [text, huge]


def test_broadcast_to_many_msgpack_clients_is_converted_once_per_process() -> None:
    conversions: list[str] = []

    class Counting(MessagePackCodec):
        def encode_json_text(self, text: str) -> str | bytes:
            conversions.append(text)
            return super().encode_json_text(text)

    class Room(Channel):
        @action
        async def say(self, channel: str, data: dict[str, Any]) -> None:
            await self.broadcast_to_channel(channel, {"said": data["text"]})

    with TestClient(serve(Room(codecs=(JSON_TEXT, Counting())))) as client, contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(client.websocket_connect("/ws", subprotocols=[MSGPACK_PROTOCOL])) for _ in range(4)
        ]
        clients[0].send_bytes(packed({"action": "say", "text": "to all"}))
        assert [msgpack.unpackb(each.receive_bytes()) for each in clients] == [{"said": "to all"}] * 4
        assert conversions == ['{"said":"to all"}']


def test_socket_accepted_before_connect_speaks_the_codec_it_was_accepted_with() -> None:
    room = Channel(codecs=(JSON_TEXT, MSGPACK))

    @room.action("whoami")
    async def whoami(websocket: WebSocket) -> str:
        return str(websocket.scope["user"].display_name)

    app = FastAPI()
    add_channel(app)
    app.add_middleware(AuthenticationMiddleware, backend=TokenAuthentication(from_subprotocol(), user=lambda t: t))

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        # Accepts with the subprotocol from_subprotocol recorded, then the first frame logs the client in.
        if await authenticate_first_message(websocket, user=lambda token: token) is not None:
            await room.connect(websocket)

    with TestClient(app) as client, client.websocket_connect("/ws", subprotocols=[MSGPACK_PROTOCOL]) as ws:
        assert ws.accepted_subprotocol == MSGPACK_PROTOCOL
        ws.send_text(json.dumps({"token": "ada"}))
        ws.send_bytes(packed({"action": "whoami", "request_id": 1}))
        assert msgpack.unpackb(ws.receive_bytes())["data"] == "ada"


def test_refused_connection_reads_why_in_its_codec_before_the_close() -> None:
    with TestClient(serve(Channel(codecs=(JSON_TEXT, MSGPACK), permission_classes=[DenyAll]))) as client:
        with client.websocket_connect("/ws", subprotocols=[MSGPACK_PROTOCOL]) as ws:
            assert ws.accepted_subprotocol == MSGPACK_PROTOCOL
            error = msgpack.unpackb(ws.receive_bytes())
            assert (error["code"], error["close"]) == (1008, True)
            assert receive_close(ws)[0] == 1008


def test_direct_messages_reach_msgpack_clients_in_msgpack() -> None:
    room = Channel(codecs=(JSON_TEXT, MSGPACK))

    @room.action("whoami")
    async def whoami(websocket: WebSocket) -> str | None:
        return room.get_connection_id(websocket)

    @room.action("poke")
    async def poke(data: dict[str, Any]) -> None:
        await room.send_to_connection(data["to"], {"poked": True})

    with TestClient(serve(room)) as client:
        with (
            client.websocket_connect("/ws", subprotocols=[MSGPACK_PROTOCOL]) as packer,
            client.websocket_connect("/ws") as texter,
        ):
            packer.send_bytes(packed({"action": "whoami", "request_id": 1}))
            connection_id = msgpack.unpackb(packer.receive_bytes())["data"]
            texter.send_text(json.dumps({"action": "poke", "to": connection_id}))
            assert msgpack.unpackb(packer.receive_bytes()) == {"poked": True}


def test_overridden_decode_json_reads_text_frames_and_the_codec_binary_frames() -> None:
    class Shouting(Channel):
        codecs = (JSON_TEXT, MSGPACK)

        @staticmethod
        async def decode_json(message: str) -> dict[str, Any]:
            frame = parse_frame(message)
            return {**frame, "text": str(frame.get("text")).upper()}

        @action
        async def echo(self, text: str) -> str:
            return text

    with TestClient(serve(Shouting())) as client, client.websocket_connect("/ws") as ws:
        ws.send_text(json.dumps({"action": "echo", "text": "hi"}))
        assert json.loads(ws.receive_text())["data"] == "HI"
        ws.send_bytes(packed({"action": "echo", "text": "hi"}))
        assert json.loads(ws.receive_text())["data"] == "hi"


def test_codec_subclass_plugs_in_a_format_of_its_own() -> None:
    class Upper(Codec):
        """JSON text with every frame sent in capitals: a format of its own, for the test."""

        name = "upper"
        binary = False
        description = "JSON text"
        default_subprotocol = "test.upper"

        def decode(self, frame: str | bytes) -> dict[str, Any]:
            return parse_frame(frame)

        def encode(self, value: Any) -> str:
            return json.dumps(value).upper()

    room = Channel(codecs=(JSON_TEXT, Upper()))

    @room.action("echo")
    async def echo(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with TestClient(serve(room)) as client, client.websocket_connect("/ws", subprotocols=["test.upper"]) as ws:
        assert ws.accepted_subprotocol == "test.upper"
        ws.send_text(json.dumps({"action": "echo", "text": "hi"}))
        assert json.loads(ws.receive_text().lower())["data"] == {"action": "echo", "text": "hi"}


# -- through a real server -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[UvicornProcess]:
    """One uvicorn process serving tests/apps/codecs_app.py, with the memory backend, for this module."""
    process = UvicornProcess("tests.apps.codecs_app:app")
    try:
        process.wait_until_serving()
        yield process
    finally:
        process.close()


def ws_url(server: UvicornProcess, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


def connect(server: UvicornProcess, path: str, *subprotocols: str, **options: Any) -> Any:
    """Open a websocket to ``path`` offering ``subprotocols``."""
    return websockets.connect(
        ws_url(server, path), subprotocols=list(subprotocols) or None, ping_interval=None, **options
    )


async def receive(client: Any) -> str | bytes:
    frame: str | bytes = await asyncio.wait_for(client.recv(), TIMEOUT)
    return frame


async def receive_msgpack(client: Any) -> Any:
    frame = await receive(client)
    assert isinstance(frame, bytes), f"expected a binary frame, got {frame!r}"
    return msgpack.unpackb(frame)


async def receive_json_text(client: Any) -> Any:
    frame = await receive(client)
    assert isinstance(frame, str), f"expected a text frame, got {frame!r}"
    return json.loads(frame)


async def receive_json_bytes(client: Any) -> Any:
    frame = await receive(client)
    assert isinstance(frame, bytes), f"expected a binary frame, got {frame!r}"
    return json.loads(frame)


def reply(action: str, request_id: Any, data: Any) -> dict[str, Any]:
    return {"type": "response", "status": "ok", "action": action, "request_id": request_id, "data": data}


async def test_negotiation_accepts_the_first_server_codec_offered_and_echoes_its_subprotocol(
    server: UvicornProcess,
) -> None:
    cases = [
        ("/ws/a", [MSGPACK_PROTOCOL], MSGPACK_PROTOCOL),
        ("/ws/a", [JSON_PROTOCOL], JSON_PROTOCOL),
        ("/ws/a", [MSGPACK_PROTOCOL, JSON_PROTOCOL], JSON_PROTOCOL),  # the server's order decides
        ("/ws/a", [], None),  # nothing offered: the channel's first codec, JSON text
        ("/ws/a", [JSON_BINARY_PROTOCOL], None),  # a codec this channel does not speak is never accepted
        ("/binary/a", [], None),
        ("/binary/a", [MSGPACK_PROTOCOL], MSGPACK_PROTOCOL),
        ("/msgpack", [], None),
    ]
    for path, offered, accepted in cases:
        async with connect(server, path, *offered) as client:
            assert client.subprotocol == accepted, (path, offered)


async def test_typed_action_sees_the_same_values_from_msgpack_and_json_clients(server: UvicornProcess) -> None:
    frame = {"action": "move", "request_id": 7, "x": 3, "y": 4.5, "label": "é\U0001f600"}
    inspect = {"action": "inspect", "request_id": "i", "n": [1, 2.0, "s", True, None, {"deep": [[-1]]}], "u": "\u2028"}
    async with connect(server, "/ws/values", MSGPACK_PROTOCOL) as packer, connect(server, "/ws/values") as texter:
        await packer.send(packed(frame))
        await texter.send(json.dumps(frame))
        expected = reply("move", 7, {"x": 3, "y": 4.5, "label": "é\U0001f600"})
        assert await receive_msgpack(packer) == await receive_json_text(texter) == expected
        await packer.send(packed(inspect))
        await texter.send(json.dumps(inspect))
        seen_packed, seen_text = await receive_msgpack(packer), await receive_json_text(texter)
        assert seen_packed == seen_text
        assert seen_packed["data"]["seen"]["n"][:3] == [[1, "int"], [2.0, "float"], ["s", "str"]]
        await packer.send(packed({"action": "move", "request_id": 8, "x": "three", "y": 1}))
        await texter.send(json.dumps({"action": "move", "request_id": 8, "x": "three", "y": 1}))
        refused_packed, refused_text = await receive_msgpack(packer), await receive_json_text(texter)
        assert refused_packed == refused_text
        assert (refused_packed["code"], refused_packed["close"], refused_packed["request_id"]) == (1007, False, 8)


async def test_error_frames_reach_msgpack_clients_in_msgpack_and_the_socket_stays(server: UvicornProcess) -> None:
    async with connect(server, "/ws/errors", MSGPACK_PROTOCOL) as client:
        await client.send(packed({"action": "nope", "request_id": 1}))
        error = await receive_msgpack(client)
        assert (error["errors"], error["code"], error["request_id"]) == ("The action 'nope' does not exist.", 1008, 1)
        await client.send(b"\xc1garbage")
        error = await receive_msgpack(client)
        assert (error["errors"], error["code"], error["close"]) == (
            "The message is not valid MessagePack.",
            1007,
            False,
        )
        await client.send(json.dumps({"action": "move", "request_id": 2, "x": 1, "y": 2}))  # text: JSON, answered
        assert await receive_msgpack(client) == reply("move", 2, {"x": 1, "y": 2.0, "label": ""})


async def test_hostile_msgpack_frames_each_answer_an_error_frame_and_the_socket_survives(
    server: UvicornProcess,
) -> None:
    hostile = {
        b"\x00\xff\x13garbage": "The message is not valid MessagePack.",
        nested(MAX_DEPTH + 1): "The message is nested too deeply.",
        nested(100_000): "The message is nested too deeply.",
        packed({"action": "inspect", 5: "five"}): "Map keys must be strings, as in JSON.",
        packed({"action": "inspect", "v": msgpack.ExtType(1, b"x")}): "MessagePack extension types are not supported",
        packed({"action": "inspect", "v": msgpack.Timestamp(0)}): "MessagePack extension types are not supported",
        packed({"action": "inspect", "v": b"bytes"}): "Binary values are not supported",
        packed({"action": "inspect", "v": float("inf")}): "NaN and infinite numbers are not supported",
        b"\x81\xa6action\xa3\xed\xb2\x80": "A string in the message is not valid UTF-8.",
        b"\x81\xa6action\xdd\x00\x10\x00\x00" + b"\x90" * 1_048_576: "The message holds too many lists and maps",
        # Just within uvicorn's 16 MiB bound: read whole, refused at its first byte.
        b"\xc1" * (16 * 1024 * 1024 - 1024): "The message is not valid MessagePack.",
    }
    async with connect(server, "/ws/hostile", MSGPACK_PROTOCOL, max_size=None, compression=None) as client:
        for frame, message in hostile.items():
            await client.send(frame)
            error = await receive_msgpack(client)
            assert error["errors"].startswith(message), (frame[:20], error)
            assert (error["code"], error["close"]) == (1007, False)
        await client.send(packed({"action": "move", "request_id": "alive", "x": 1, "y": 1}))
        assert (await receive_msgpack(client))["request_id"] == "alive"


async def test_binary_frame_over_the_servers_bound_closes_with_1009(server: UvicornProcess) -> None:
    async with connect(server, "/ws/big", MSGPACK_PROTOCOL, max_size=None, compression=None) as client:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            # uvicorn's ws_max_size (16 MiB) is the first bound: the frame never reaches the channel.
            await client.send(b"\x90" * (16 * 1024 * 1024 + 1))
            await receive(client)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_binary_frame_to_a_text_only_channel_answers_1003_and_the_socket_stays(server: UvicornProcess) -> None:
    async with connect(server, "/text", MSGPACK_PROTOCOL) as client:
        assert client.subprotocol is None  # the channel does not speak MessagePack: it never claims to
        await client.send(packed({"action": "move", "x": 1, "y": 1}))
        error = await receive_json_text(client)
        assert (error["errors"], error["code"], error["close"]) == (
            "Binary frames are not supported: send JSON text.",
            1003,
            False,
        )
        await client.send(json.dumps({"action": "move", "request_id": 1, "x": 1, "y": 1}))
        assert (await receive_json_text(client))["request_id"] == 1


async def test_text_frame_to_a_msgpack_only_channel_answers_1003_in_msgpack(server: UvicornProcess) -> None:
    async with connect(server, "/msgpack") as client:  # nothing offered: the channel's only codec
        await client.send(json.dumps({"action": "move", "x": 1, "y": 1}))
        error = await receive_msgpack(client)
        assert (error["errors"], error["code"], error["close"]) == (
            "Text frames are not supported: send MessagePack binary frames.",
            1003,
            False,
        )
        await client.send(packed({"action": "move", "request_id": 1, "x": 1, "y": 1}))
        assert (await receive_msgpack(client))["request_id"] == 1


async def test_json_client_may_send_msgpack_frames_to_a_channel_that_declares_it(server: UvicornProcess) -> None:
    async with connect(server, "/ws/mixed") as client:
        await client.send(packed({"action": "move", "request_id": 3, "x": 1, "y": 2}))
        assert await receive_json_text(client) == reply("move", 3, {"x": 1, "y": 2.0, "label": ""})


async def test_json_binary_connection_reads_and_writes_json_in_binary_frames(server: UvicornProcess) -> None:
    async with connect(server, "/binary/json") as client:  # nothing offered: JSON in binary frames comes first
        await client.send(json.dumps({"action": "move", "request_id": 1, "x": 1, "y": 2}).encode())
        assert await receive_json_bytes(client) == reply("move", 1, {"x": 1, "y": 2.0, "label": ""})
        await client.send(json.dumps({"action": "move", "request_id": 2, "x": 1, "y": 2}))  # text is JSON too
        assert (await receive_json_bytes(client))["request_id"] == 2
        await client.send(packed({"action": "move", "x": 1, "y": 2}))  # binary frames are this connection's JSON
        error = await receive_json_bytes(client)
        assert (error["errors"], error["code"]) == ("The message is not valid JSON.", 1007)
        await client.send(b'{"action": "inspect", "v": NaN}')
        assert (await receive_json_bytes(client))["errors"] == "The message is not valid JSON."


async def test_broadcasts_reach_json_msgpack_and_json_binary_clients_alike(server: UvicornProcess) -> None:
    await broadcast_to_every_codec(server)


async def test_broadcasts_through_redis_reach_every_codec(redis_url: str) -> None:
    env = {"CODECS_URL": redis_url, "CODECS_NAMESPACE": f"test-{uuid.uuid4().hex}"}
    process = UvicornProcess("tests.apps.codecs_app:app", env=env)
    try:
        process.wait_until_serving()
        await broadcast_to_every_codec(process)
    finally:
        process.close()


async def broadcast_to_every_codec(server: UvicornProcess) -> None:
    """Connect a client of each codec to one room; each sees every broadcast and plain string in its codec."""
    async with (
        connect(server, "/ws/lobby") as texter,
        connect(server, "/ws/lobby", MSGPACK_PROTOCOL) as packer,
        connect(server, "/binary/lobby") as byter,
    ):
        # A round trip each, so that all three are in the room before the broadcast.
        for client, receive_one in (
            (texter, receive_json_text),
            (packer, receive_msgpack),
            (byter, receive_json_bytes),
        ):
            await client.send(json.dumps({"action": "move", "request_id": "in", "x": 0, "y": 0}))
            assert (await receive_one(client))["request_id"] == "in"
        says: list[tuple[Any, str | bytes, str]] = [
            (packer, packed({"action": "say", "text": "hello é"}), "hello é"),
            (texter, json.dumps({"action": "say", "text": "from text"}), "from text"),
        ]
        for sender, frame, text in says:  # one at a time: two senders' broadcasts may be published in either order
            await sender.send(frame)
            said = [await receive_json_text(texter), await receive_msgpack(packer), await receive_json_bytes(byter)]
            assert said == [{"said": text}] * 3
        await texter.send(json.dumps({"action": "plain", "text": "not json"}))
        await packer.send(packed({"action": "plain", "text": "not json"}))
        await byter.send(json.dumps({"action": "plain", "text": "not json"}).encode())
        assert await receive(texter) == "not json"
        assert await receive_msgpack(packer) == "not json"  # a plain string, as a MessagePack string
        assert await receive(byter) == b"not json"


async def test_subprotocol_token_and_codec_share_the_handshake(server: UvicornProcess) -> None:
    cases = [
        ("/ws/auth", [MSGPACK_PROTOCOL, "access_token.ann"], MSGPACK_PROTOCOL, "ann"),
        ("/ws/auth", ["access_token.bob", "chat.v1", MSGPACK_PROTOCOL], MSGPACK_PROTOCOL, "bob"),  # the codec wins
        ("/ws/auth", ["chat.v1", "access_token.cat"], "chat.v1", "cat"),  # no codec offered: the app's own
        ("/text", [MSGPACK_PROTOCOL, "access_token.dan"], None, "dan"),  # never a codec the channel does not speak
    ]
    for path, offered, accepted, user in cases:
        async with connect(server, path, *offered) as client:
            assert client.subprotocol == accepted
            request = {"action": "whoami", "request_id": user}
            if accepted == MSGPACK_PROTOCOL:
                await client.send(packed(request))
                assert await receive_msgpack(client) == reply("whoami", user, user)
            else:
                await client.send(json.dumps(request))
                assert await receive_json_text(client) == reply("whoami", user, user)


async def test_reply_msgpack_cannot_hold_is_dropped_and_logged_and_the_socket_stays(server: UvicornProcess) -> None:
    async with connect(server, "/ws/numbers", MSGPACK_PROTOCOL) as packer, connect(server, "/ws/numbers") as texter:
        await texter.send(json.dumps({"action": "huge_number", "request_id": 1}))
        assert (await receive_json_text(texter))["data"] == 2**70  # JSON holds it
        await packer.send(packed({"action": "huge_number", "request_id": 1}))
        await packer.send(packed({"action": "move", "request_id": 2, "x": 1, "y": 1}))
        assert (await receive_msgpack(packer))["request_id"] == 2  # the reply to 1 could not be sent
    assert "could not be sent" in server.output()


async def test_crash_answers_a_msgpack_error_frame_then_closes_with_1011(server: UvicornProcess) -> None:
    async with connect(server, "/ws/crash", MSGPACK_PROTOCOL) as client:
        await client.send(packed({"action": "crash", "request_id": "c"}))
        error = await receive_msgpack(client)
        assert (error["errors"], error["code"], error["close"], error["request_id"]) == (
            "Internal server error.",
            1011,
            True,
            "c",
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await receive(client)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


async def test_on_receive_reads_binary_frames_as_json_text(server: UvicornProcess) -> None:
    async with connect(server, "/hooks", MSGPACK_PROTOCOL) as client:
        await client.send(packed({"action": "x", "n": [1, 2.5]}))
        assert await receive_msgpack(client) == {"message": '{"action":"x","n":[1,2.5]}', "type": "str"}
        await client.send(packed({"action": "x", "v": b"raw"}))
        assert (await receive_msgpack(client))["errors"].startswith("Binary values are not supported")


async def test_heartbeat_pings_reach_each_client_in_its_codec() -> None:
    process = UvicornProcess("tests.apps.codecs_app:app", env={"CODECS_HEARTBEAT": "0.2"})
    try:
        process.wait_until_serving()
        async with (
            connect(process, "/ws/pings", MSGPACK_PROTOCOL) as packer,
            connect(process, "/binary/pings") as byter,
        ):
            for _ in range(2):
                assert await receive_msgpack(packer) == {"type": "ping"}
                await packer.send(packed({"action": "pong"}))  # answered silently
            assert await receive_json_bytes(byter) == {"type": "ping"}
    finally:
        process.close()
