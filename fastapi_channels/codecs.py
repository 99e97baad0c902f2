"""Codecs: how the frames of a connection travel - JSON text (the default), JSON in binary frames, or MessagePack.

A channel declares the codecs it speaks (``codecs=(JSON_TEXT, MSGPACK)``); each connection speaks one of them,
chosen at the handshake from the subprotocols its client offers (``negotiate``). Whatever the codec, handlers see
the same decoded values - those JSON can hold - and everything a connection is sent is made as JSON text first:
a codec only turns that text into its own frames, and the same text (a broadcast to many clients) is converted
once (``Codec.transcode``).
"""

from __future__ import annotations

import abc
import importlib
import math
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any, ClassVar

from pydantic_core import from_json

from fastapi_channels.exceptions import ParseError
from fastapi_channels.protocol import Frame, parse_frame
from fastapi_channels.protocol import encode as encode_json

__all__ = [
    "Codec",
    "JsonTextCodec",
    "JsonBinaryCodec",
    "MessagePackCodec",
    "JSON_TEXT",
    "JSON_BINARY",
    "MSGPACK",
    "SUBPROTOCOL_PREFIX",
    "MAX_DEPTH",
    "FrameDecoder",
    "frame_decoder",
    "negotiate",
    "resolve_codecs",
]

SUBPROTOCOL_PREFIX = "fastapi-channels."
"""Subprotocols that start with this name codecs; the server accepts a connection with one only when it speaks it."""

MAX_DEPTH = 200
"""How deeply lists and maps may nest inside the top-level map of a MessagePack frame: as deep as JSON text may."""

FrameDecoder = Callable[[Any], Frame]
"""Decodes one frame of a connection, its text (``str``) or its bytes, into a JSON object."""


class Codec(abc.ABC):
    """How frames travel on a connection: what they are (text or binary), how to read them, how to write them.

    Subclass it to add a format: give a ``name``, a ``subprotocol`` clients offer to choose it, whether its
    frames are ``binary``, a ``description`` for error messages ("send <description>"), and write ``decode``
    and ``encode``. ``decode`` must return only values JSON can hold, so that handlers see the same values
    whichever codec a client speaks.
    """

    name: ClassVar[str]
    """Names the codec in messages and logs."""
    binary: ClassVar[bool]
    """Whether the codec's frames are binary frames (else text frames)."""
    description: ClassVar[str]
    """What a client of this codec sends, for error messages: ``"JSON text"``."""
    passes_json_text: ClassVar[bool] = False
    """Whether JSON text is this codec's frame as it is: then nothing is converted on the way out."""
    default_subprotocol: ClassVar[str]
    """The subprotocol of the codec's objects made without ``subprotocol=``."""

    def __init__(self, *, subprotocol: str | None = None) -> None:
        missing = [name for name in ("name", "binary", "description") if not hasattr(self, name)]
        if missing:
            raise TypeError(f"{type(self).__name__} must set the class attributes {', '.join(missing)}.")
        chosen = subprotocol if subprotocol is not None else getattr(self, "default_subprotocol", None)
        if not isinstance(chosen, str) or not chosen:
            raise ValueError(
                f"A codec's subprotocol must be a non-empty string, not {chosen!r}: set the class attribute "
                "default_subprotocol, or pass subprotocol=."
            )
        self.subprotocol: str = chosen
        """The ``Sec-WebSocket-Protocol`` value a client offers to speak this codec."""
        # The last JSON text converted and what it became (or why it could not be): a broadcast reaches every
        # client of this codec with the same text object, so it is converted once, not once per client.
        self._last: tuple[str | None, str | bytes | None, str | None] = (None, None, None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(subprotocol={self.subprotocol!r})"

    def require(self) -> None:
        """Raise ``ImportError``, saying what to install, when a package the codec needs is missing."""
        return None

    @abc.abstractmethod
    def decode(self, frame: str | bytes) -> Frame:
        """Decode one frame into a JSON object; raise ``ParseError`` for anything else."""

    @abc.abstractmethod
    def encode(self, value: Any) -> str | bytes:
        """Encode a value JSON can hold (what ``decode`` returns) as one frame."""

    def encode_json_text(self, text: str) -> str | bytes:
        """Return the frame for a message already encoded as JSON text; text that is not JSON goes as a string."""
        try:
            value = from_json(text, allow_inf_nan=False)
        except ValueError:
            value = text
        return self.encode(value)

    def transcode(self, text: str) -> str | bytes:
        """Return ``encode_json_text(text)``, converting the same text only once in a row.

        Raises:
            ValueError: The text cannot be encoded in this codec (MessagePack holds no integer beyond 64 bits).
        """
        last = self._last  # read once: a connection served in another thread may replace it meanwhile
        if last[0] is text or last[0] == text:
            if last[2] is not None:
                raise ValueError(last[2])
            return last[1]  # type: ignore[return-value]
        try:
            wire = self.encode_json_text(text)
        except Exception as exc:
            reason = f"The message cannot be encoded as {self.name}: {type(exc).__name__}: {exc}"
            self._last = (text, None, reason)
            raise ValueError(reason) from exc
        self._last = (text, wire, None)
        return wire

    def message(self, text: str) -> dict[str, Any]:
        """Return the ASGI message that sends the JSON text ``text`` to a client of this codec."""
        return {"type": "websocket.send", "bytes" if self.binary else "text": self.transcode(text)}


class JsonTextCodec(Codec):
    """JSON objects in text frames: the default, and how every channel spoke before codecs."""

    name = "json"
    binary = False
    description = "JSON text"
    passes_json_text = True
    default_subprotocol = SUBPROTOCOL_PREFIX + "json"

    # The function itself, not a method calling it: text frames are decoded with no call more than before codecs.
    decode = staticmethod(parse_frame)

    def encode(self, value: Any) -> str:
        """Encode ``value`` as compact JSON text."""
        return encode_json(value)

    def encode_json_text(self, text: str) -> str:
        """Return ``text``: JSON text is this codec's frame."""
        return text


class JsonBinaryCodec(Codec):
    """JSON objects as UTF-8 in binary frames, read as strictly as JSON text."""

    name = "json-binary"
    binary = True
    description = "JSON in binary frames"
    default_subprotocol = SUBPROTOCOL_PREFIX + "json-binary"

    decode = staticmethod(parse_frame)

    def encode(self, value: Any) -> bytes:
        """Encode ``value`` as compact JSON in UTF-8."""
        return encode_json(value).encode()

    def encode_json_text(self, text: str) -> bytes:
        """Return ``text`` in UTF-8: nothing is parsed."""
        return text.encode()


class MessagePackCodec(Codec):
    """MessagePack maps in binary frames (needs ``pip install "fastapi-channels[msgpack]"``).

    Decoding is strict so that handlers see exactly what JSON could have sent: the frame is one map with string
    keys; values are maps, arrays, strings (valid UTF-8), integers, finite floats, booleans and nil; lists and
    maps nest at most ``MAX_DEPTH`` levels, and a frame holds at most 1,000 lists and maps plus one per two of its
    bytes (an empty one costs a byte to send and some 60 to keep in memory). Binary values (bin), extension types
    (ext, timestamps too), NaN and infinities are refused with ``ParseError``.
    """

    name = "msgpack"
    binary = True
    description = "MessagePack binary frames"
    default_subprotocol = SUBPROTOCOL_PREFIX + "msgpack"

    def __init__(self, *, subprotocol: str | None = None) -> None:
        super().__init__(subprotocol=subprotocol)
        self._msgpack: ModuleType | None = None

    def require(self) -> None:
        """Import ``msgpack``, raising ``ImportError`` that says how to install it when it is missing."""
        self._module()

    def _module(self) -> ModuleType:
        module = self._msgpack
        if module is None:
            try:
                module = importlib.import_module("msgpack")
            except ImportError as exc:
                raise ImportError(
                    'The MessagePack codec needs the msgpack package: pip install "fastapi-channels[msgpack]".'
                ) from exc
            self._msgpack = module
        return module

    def decode(self, frame: str | bytes) -> Frame:
        """Decode one binary frame into a JSON object, refusing what JSON could not hold."""
        msgpack = self._module()
        if isinstance(frame, str):
            raise ParseError(error_msg="The message is not valid MessagePack: it is text.")
        try:
            if len(frame) <= 2 * _CONTAINER_ALLOWANCE:
                # msgpack's defaults: strings must be UTF-8, map keys strings (or bytes, refused below). A frame this
                # small cannot go over the budget of lists and maps: each of them takes one byte at least.
                value = msgpack.unpackb(frame)
            else:
                spend = _budget(len(frame) // 2 + _CONTAINER_ALLOWANCE)
                value = msgpack.unpackb(frame, object_hook=spend, list_hook=spend)
        except _Refused as exc:
            raise ParseError(error_msg=str(exc)) from None
        except msgpack.StackError:
            raise ParseError(error_msg="The message is nested too deeply.") from None
        except UnicodeDecodeError:
            raise ParseError(error_msg="A string in the message is not valid UTF-8.") from None
        except ValueError:
            raise ParseError(error_msg=self._invalid(msgpack, frame)) from None
        if type(value) is not dict:
            raise ParseError(error_msg='The message must be a map such as {"action": "..."}.')
        _check_map(value, 0)
        return value

    @staticmethod
    def _invalid(msgpack: ModuleType, frame: bytes) -> str:
        """Say why msgpack refused ``frame``: its map keys (decoded again without that check), or anything else."""
        try:
            msgpack.unpackb(frame, strict_map_key=False)
        except TypeError:
            return _KEYS_MESSAGE  # a list or a map as a key
        except Exception:
            return "The message is not valid MessagePack."
        return _KEYS_MESSAGE  # numbers or nil as keys

    def encode(self, value: Any) -> bytes:
        """Encode a value JSON can hold as MessagePack."""
        packed: bytes = self._module().packb(value)
        return packed


# Lists and maps a frame may hold beyond one per two bytes of the frame.
_CONTAINER_ALLOWANCE = 1000

_KEYS_MESSAGE = "Map keys must be strings, as in JSON."


class _Refused(Exception):
    """Raised inside msgpack's hooks, and turned into a ``ParseError`` once msgpack has let go."""


def _budget(containers: int) -> Callable[[Any], Any]:
    """Return a hook for every list and map msgpack builds that refuses the frame past ``containers`` of them."""
    left = containers

    def spend(container: Any) -> Any:
        # Bounds the memory a frame may claim: an empty list takes one byte to send and some 60 to keep.
        nonlocal left
        left -= 1
        if left < 0:
            raise _Refused("The message holds too many lists and maps for its size.")
        return container

    return spend


_SCALARS = frozenset({str, int, bool, type(None)})


def _check_map(value: dict[Any, Any], depth: int) -> None:
    """Refuse what JSON cannot hold in the map ``value``, ``depth`` levels below the top, keys included."""
    for key, item in value.items():
        if type(key) is not str:
            raise ParseError(error_msg=_KEYS_MESSAGE)
        if type(item) not in _SCALARS:
            _check_value(item, depth)


def _check_value(item: Any, depth: int) -> None:
    """Refuse ``item``, in a list or map ``depth`` levels below the top, unless JSON can hold it."""
    kind = type(item)
    if kind is dict or kind is list:
        if depth >= MAX_DEPTH:
            raise ParseError(error_msg="The message is nested too deeply.")
        if kind is dict:
            _check_map(item, depth + 1)
            return
        for inner in item:
            if type(inner) not in _SCALARS:
                _check_value(inner, depth + 1)
    elif kind is float:
        if not math.isfinite(item):
            raise ParseError(error_msg="NaN and infinite numbers are not supported: JSON cannot hold them.")
    elif kind is bytes:
        raise ParseError(
            error_msg="Binary values are not supported: JSON cannot hold them (send binary data as base64 text)."
        )
    else:
        raise ParseError(error_msg="MessagePack extension types are not supported: JSON cannot hold them.")


JSON_TEXT = JsonTextCodec()
"""JSON text frames, subprotocol ``fastapi-channels.json``: the default."""
JSON_BINARY = JsonBinaryCodec()
"""JSON (UTF-8) in binary frames, subprotocol ``fastapi-channels.json-binary``."""
MSGPACK = MessagePackCodec()
"""MessagePack in binary frames, subprotocol ``fastapi-channels.msgpack`` (the ``msgpack`` extra)."""


def resolve_codecs(codecs: Any, *, owner: str) -> tuple[Codec, ...]:
    """Return ``codecs`` as a tuple, checked: codec objects, at least one, each subprotocol once, installed.

    Raises:
        TypeError: ``codecs`` is not a sequence of ``Codec`` objects.
        ValueError: It is empty, or two codecs share a subprotocol.
        ImportError: A codec needs a package that is not installed.
    """
    if isinstance(codecs, Codec) or isinstance(codecs, str | bytes) or not isinstance(codecs, Iterable):
        raise TypeError(f"{owner}.codecs must be a tuple of codecs, such as (JSON_TEXT, MSGPACK), not {codecs!r}.")
    resolved = tuple(codecs)
    if not resolved:
        raise ValueError(f"{owner}.codecs is empty: give at least one codec, such as (JSON_TEXT,).")
    seen: set[str] = set()
    for codec in resolved:
        if not isinstance(codec, Codec):
            raise TypeError(
                f"{owner}.codecs holds {codec!r}, which is not a codec: use JSON_TEXT, JSON_BINARY, MSGPACK "
                "(from fastapi_channels.codecs) or a Codec subclass."
            )
        if codec.subprotocol in seen:
            raise ValueError(f"{owner}.codecs names the subprotocol {codec.subprotocol!r} twice: give each once.")
        seen.add(codec.subprotocol)
        codec.require()
    return resolved


def negotiate(codecs: Sequence[Codec], offered: Iterable[Any]) -> Codec | None:
    """Return the first of ``codecs`` (the server's order) whose subprotocol the client offered, or None."""
    names = {item for item in offered if isinstance(item, str)}
    return next((codec for codec in codecs if codec.subprotocol in names), None)


def frame_decoder(codec: Codec, codecs: Sequence[Codec]) -> FrameDecoder:
    """Return what decodes the frames of a connection that speaks ``codec`` in a channel that declares ``codecs``.

    ``codec`` decodes the frames of its own type; a frame of the other type is decoded by the first of ``codecs``
    of that type (the session refuses such frames when there is none).
    """
    text = codec if not codec.binary else next((other for other in codecs if not other.binary), None)
    binary = codec if codec.binary else next((other for other in codecs if other.binary), None)
    if binary is None or text is None:
        return codec.decode
    decode_text, decode_binary = text.decode, binary.decode

    def decode(frame: Any) -> Frame:
        return decode_text(frame) if type(frame) is str else decode_binary(frame)

    return decode
