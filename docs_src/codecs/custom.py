import zlib
from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import Channel, ParseError, action, add_channel
from fastapi_channels.codecs import JSON_TEXT, Codec
from fastapi_channels.protocol import encode, parse_frame

MAX_INFLATED = 1024 * 1024  # a few KB of zlib data can inflate to gigabytes: read no more than this


class DeflatedJson(Codec):
    """JSON compressed with zlib, in binary frames."""

    name = "deflated-json"
    binary = True
    description = "zlib-compressed JSON in binary frames"  # as in "Text frames are not supported: send ..."
    default_subprotocol = "myapp.deflated-json"

    def decode(self, frame: str | bytes) -> dict[str, Any]:
        if not isinstance(frame, bytes):
            raise ParseError(error_msg="The message must be a binary frame.")
        inflater = zlib.decompressobj()
        try:
            text = inflater.decompress(frame, MAX_INFLATED)
        except zlib.error:
            raise ParseError(error_msg="The message is not zlib data.") from None
        if inflater.unconsumed_tail:
            raise ParseError(error_msg="The message inflates to more than 1 MiB.")
        return parse_frame(text)  # then read as strictly as JSON text frames

    def encode(self, value: Any) -> bytes:
        return zlib.compress(encode(value).encode())

    def encode_json_text(self, text: str) -> bytes:
        # Everything a client is sent is JSON text already (replies, errors, broadcasts): compress it as it is.
        return zlib.compress(text.encode())


app = FastAPI()
add_channel(app)


class Archive(Channel):
    codecs = (JSON_TEXT, DeflatedJson())

    @action()
    async def search(self, words: list[str]) -> list[str]:
        return [f"{word}: {len(word)} letters" for word in words]


archive = Archive()


@app.websocket("/archive")
async def archive_endpoint(websocket: WebSocket) -> None:
    await archive.connect(websocket)
