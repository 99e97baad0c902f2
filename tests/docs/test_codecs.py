"""The codecs page: a channel of JSON text and MessagePack, a MessagePack client, JSON in binary frames, a codec
of one's own."""

from __future__ import annotations

import json
import zlib
from typing import Any

import msgpack
from fastapi.testclient import TestClient

from tests.conftest import run_uvicorn
from tests.docs.samples import load

MSGPACK_PROTOCOL = "fastapi-channels.msgpack"


def reply(action: str, request_id: Any, data: Any) -> dict[str, Any]:
    return {"type": "response", "status": "ok", "action": action, "request_id": request_id, "data": data}


def test_codecs_json_and_msgpack_clients_share_a_room() -> None:
    sample = load("codecs/app.py")
    with TestClient(sample.app) as client:
        with (
            client.websocket_connect("/game/lobby") as texter,
            client.websocket_connect("/game/lobby", subprotocols=[MSGPACK_PROTOCOL]) as packer,
        ):
            assert (texter.accepted_subprotocol, packer.accepted_subprotocol) == (None, MSGPACK_PROTOCOL)
            packer.send_bytes(msgpack.packb({"action": "move", "request_id": 1, "x": 3, "y": 4.5}))
            assert msgpack.unpackb(packer.receive_bytes()) == reply("move", 1, {"x": 3.0, "y": 4.5})
            texter.send_json({"action": "move", "request_id": 1, "x": 3, "y": 4.5})
            assert texter.receive_json() == reply("move", 1, {"x": 3.0, "y": 4.5})
            packer.send_bytes(msgpack.packb({"action": "shout", "text": "hello"}))
            shout = {"action": "shout", "text": "hello"}
            assert texter.receive_json() == msgpack.unpackb(packer.receive_bytes()) == shout
            packer.send_bytes(msgpack.packb({"action": "move", "request_id": 2, "x": "left", "y": 0}))
            error = msgpack.unpackb(packer.receive_bytes())
            assert (error["status"], error["code"], error["request_id"]) == ("bad", 1007, 2)


async def test_codecs_client_speaks_msgpack_to_the_app_under_uvicorn() -> None:
    client = load("codecs/client.py")
    with run_uvicorn("docs_src.codecs.app:app") as base_url:
        answer = await client.move(base_url.replace("http://", "ws://") + "/game/lobby")
    assert answer == reply("move", 1, {"x": 3.0, "y": 4.5})


def test_codecs_json_in_binary_frames_is_read_and_answered_in_the_clients_codec() -> None:
    sample = load("codecs/binary.py")
    frame = json.dumps({"action": "report", "request_id": 1, "sensor": "t1", "value": 21.5}).encode()
    answer = reply("report", 1, {"sensor": "t1", "value": 21.5, "stored": True})
    with TestClient(sample.app) as client:
        with client.websocket_connect("/sensors") as plain:
            plain.send_bytes(frame)
            assert plain.receive_json() == answer  # read as JSON, answered as the connection speaks: text
        with client.websocket_connect("/sensors", subprotocols=["fastapi-channels.json-binary"]) as binary:
            binary.send_bytes(frame)
            assert json.loads(binary.receive_bytes()) == answer


def test_codecs_custom_codec_reads_and_writes_deflated_json_and_bounds_what_it_inflates() -> None:
    sample = load("codecs/custom.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/archive", subprotocols=["myapp.deflated-json"]) as websocket:
            assert websocket.accepted_subprotocol == "myapp.deflated-json"
            websocket.send_bytes(zlib.compress(b'{"action": "search", "request_id": 4, "words": ["zebra"]}'))
            assert json.loads(zlib.decompress(websocket.receive_bytes())) == reply("search", 4, ["zebra: 5 letters"])
            websocket.send_bytes(zlib.compress(b" " * 10_000_000))  # 10 KB that would inflate to 10 MB
            error = json.loads(zlib.decompress(websocket.receive_bytes()))
            assert (error["errors"], error["code"], error["close"]) == (
                "The message inflates to more than 1 MiB.",
                1007,
                False,
            )
            websocket.send_bytes(b"not zlib")
            assert json.loads(zlib.decompress(websocket.receive_bytes()))["errors"] == "The message is not zlib data."
            websocket.send_text('{"action": "search", "request_id": 5, "words": []}')  # text frames: JSON text
            assert json.loads(zlib.decompress(websocket.receive_bytes())) == reply("search", 5, [])
