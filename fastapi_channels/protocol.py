"""The wire format: parse incoming frames and render replies and error frames.

Incoming frames are JSON text objects: ``{"action": "<name>", "request_id": <optional>, ...}``.
Error frames are JSON objects with at least ``type``, ``status``, ``action``, ``request_id`` and ``errors``.
Reply frames (what an action returns) are ``{"type": "response", "status": "ok", "action", "request_id", "data"}``.
Broadcasts to a channel with history are publication frames, ``{"type": "publication", "channel", "offset",
"epoch", "data" | "text"}``, and a client joining such a channel gets a resume frame, ``{"type": "resume",
"channel", "recovered", "offset", "epoch"}``, once what it missed has been replayed.
A connection that has joined channels besides its own receives their other broadcasts wrapped in broadcast frames,
``{"type": "broadcast", "channel", "data" | "text"}``, so that it can tell them apart.
JSON is read and written by pydantic-core (a dependency through pydantic): several times faster than the
standard library on the small objects frames are, and strict (no ``NaN``, no lone surrogate escapes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import from_json, to_json

from fastapi_channels.exceptions import ParseError, WebSocketException

__all__ = [
    "Frame",
    "INTERNAL_ERROR_MESSAGE",
    "MAX_EPOCH_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_OFFSET",
    "MAX_REQUEST_ID_LENGTH",
    "action_of",
    "broadcast_head",
    "channel_of",
    "channel_reply",
    "check_channel_name",
    "encode",
    "error_payload",
    "internal_error_payload",
    "is_json_text",
    "parse_frame",
    "publication_head",
    "publication_member",
    "publication_position",
    "render",
    "render_broadcast",
    "render_publication",
    "render_reply",
    "render_resume",
    "reply_head",
    "request_id_of",
    "split_member",
]

Frame = dict[str, Any]
"""A decoded JSON frame: a JSON object."""

_ID_TYPES = (int, float, str)

MAX_NAME_LENGTH = 256
"""The longest action or channel name a client may send: what is echoed and logged stays small."""
MAX_REQUEST_ID_LENGTH = 128
"""The longest string ``request_id``: it is echoed in every answer, so a client cannot make answers grow."""

MAX_OFFSET = 2**53 - 1
"""The largest offset a client may name: the largest integer a JavaScript number holds exactly."""
MAX_EPOCH_LENGTH = 64
"""The longest epoch a client may name; the server's own epochs are 16 hexadecimal digits."""

INTERNAL_ERROR_MESSAGE = "Internal server error."
"""What a client reads when an action crashes: the details stay in the server log."""


def parse_frame(frame: str | bytes) -> Frame:
    """Decode one frame of JSON (text, or UTF-8 bytes) into a JSON object, raising ``ParseError`` on anything else."""
    try:
        decoded = from_json(frame, allow_inf_nan=False)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            raise ParseError(error_msg="The message is nested too deeply.") from None
        raise ParseError(error_msg="The message is not valid JSON.") from None
    if not isinstance(decoded, dict):
        raise ParseError(error_msg='The message must be a JSON object such as {"action": "..."}.')
    return decoded


def request_id_of(frame: Mapping[str, Any]) -> int | str | None:
    """Return the frame's ``request_id`` if it is a number or a string, else None.

    Raises:
        ParseError: The ``request_id`` is a string longer than ``MAX_REQUEST_ID_LENGTH``.
    """
    value = frame.get("request_id")
    if value is None or type(value) in _ID_TYPES:  # the common cases, decided without isinstance
        if type(value) is str and len(value) > MAX_REQUEST_ID_LENGTH:
            raise ParseError(error_msg=f'The "request_id" must be at most {MAX_REQUEST_ID_LENGTH} characters.')
        return value
    if isinstance(value, bool):
        return None
    return value if isinstance(value, int | float | str) else None  # type: ignore[return-value]


def action_of(frame: Mapping[str, Any]) -> str:
    """Return the frame's action name, raising ``ParseError`` when it is missing or not a string."""
    action = frame.get("action")
    if type(action) is str and action and len(action) <= MAX_NAME_LENGTH:
        return action
    if action is None:
        raise ParseError(error_msg='The message has no "action" field.')
    if not isinstance(action, str) or not action:
        raise ParseError(error_msg='The "action" field must be a non-empty string.')
    if len(action) > MAX_NAME_LENGTH:
        raise ParseError(error_msg=f'The "action" field must be at most {MAX_NAME_LENGTH} characters.')
    return action


def check_channel_name(name: Any, *, field: str = "channel") -> str:
    """Return ``name`` if it can name a channel: a non-empty string of at most ``MAX_NAME_LENGTH`` characters.

    Raises:
        ParseError: It cannot; the message names ``field``.
    """
    if type(name) is str and 0 < len(name) <= MAX_NAME_LENGTH:
        return name
    if name is None:
        raise ParseError(error_msg=f'The message has no "{field}" field.')
    if not isinstance(name, str) or not name:
        raise ParseError(error_msg=f'The "{field}" field must be a non-empty string.')
    if len(name) > MAX_NAME_LENGTH:
        raise ParseError(error_msg=f'The "{field}" field must be at most {MAX_NAME_LENGTH} characters.')
    return name


def channel_of(frame: Mapping[str, Any]) -> str:
    """Return the frame's ``channel`` name, raising ``ParseError`` when it is missing, empty, too long or no string."""
    return check_channel_name(frame.get("channel"))


def error_payload(
    exc: WebSocketException,
    *,
    action: str | None = None,
    request_id: int | str | None = None,
) -> dict[str, Any]:
    """Build the error frame for ``exc``; the exception's own action and request id win."""
    payload: dict[str, Any] = {
        "type": "response",
        "status": exc.status,
        "action": exc.action if exc.action is not None else action,
        "request_id": exc.request_id if exc.request_id is not None else request_id,
        "errors": exc.error_msg,
        "code": exc.code,
        "close": exc.close,
    }
    if exc.data is not None:
        payload["data"] = exc.data
    for key, value in exc.extra.items():
        payload.setdefault(key, value)
    return payload


def internal_error_payload(*, action: str | None = None, request_id: int | str | None = None) -> dict[str, Any]:
    """Build the generic error frame sent when a handler crashed; it reveals no internals."""
    return {
        "type": "response",
        "status": "bad",
        "action": action,
        "request_id": request_id,
        "errors": INTERNAL_ERROR_MESSAGE,
        "code": 1011,
        "close": True,
    }


def reply_head(action: str) -> bytes:
    """Return the start of the reply frames of ``action``, up to its ``request_id`` value: built once per action."""
    return b'{"type":"response","status":"ok","action":' + to_json(action) + b',"request_id":'


def render_reply(head: bytes, request_id: int | str | None, data: bytes) -> str:
    """Render a reply frame from ``reply_head(action)``, the request's ``request_id`` and the JSON of its ``data``."""
    return (head + to_json(request_id) + b',"data":' + data + b"}").decode()


def channel_reply(action: str, request_id: int | str | None, channel: str) -> str:
    """Render the reply frame of a built-in ``subscribe`` or ``unsubscribe`` frame: its ``data`` names the channel."""
    return render_reply(reply_head(action), request_id, b'{"channel":' + to_json(channel) + b"}")


def encode(data: Any) -> str:
    """Encode a message as compact JSON text, keeping non-ASCII characters readable.

    Infinite and NaN numbers become ``null``, as JavaScript's ``JSON.stringify`` writes them, so that the
    text is always valid JSON; a string with a lone surrogate (not a character) raises ``ValueError``.
    """
    return to_json(data, inf_nan_mode="null").decode()


def render(payload: Any) -> str:
    """Encode a frame of our own as compact JSON text; a value JSON cannot hold is sent as its ``str()``."""
    return to_json(payload, fallback=str, inf_nan_mode="null").decode()


# -- channels with history -------------------------------------------------------------------------------
# A publication frame is built from pieces, so that Redis can put the offset and epoch it assigns in the
# middle without decoding anything: head + offset + ',"epoch":"' + epoch + '",' + member + '}'. The member is
# '"data":<the JSON message>' or '"text":<the text as a JSON string>'.

_DATA = '"data":'
_TEXT = '"text":'
_EPOCH = ',"epoch":"'


def publication_head(channel: str) -> str:
    """Return the start of the publication frames of ``channel``, up to its ``offset`` value."""
    return '{"type":"publication","channel":' + to_json(channel).decode() + ',"offset":'


def is_json_text(text: str) -> bool:
    """Return whether ``text`` is one JSON value (strict JSON: no ``NaN``, no trailing characters)."""
    try:
        from_json(text, allow_inf_nan=False)
    except ValueError:
        return False
    return True


def publication_member(text: str, *, is_json: bool) -> str:
    """Return the member that carries a message in its publication frame: ``"data"`` for JSON, else ``"text"``."""
    return _DATA + text if is_json else _TEXT + to_json(text).decode()


def split_member(member: str) -> tuple[str, bool]:
    """Return the message a member carries, as published, and whether it is JSON (undoes ``publication_member``)."""
    if member.startswith(_DATA):
        return member[len(_DATA) :], True
    text: str = from_json(member[len(_TEXT) :])
    return text, False


def render_publication(head: str, offset: int, epoch: str, member: str) -> str:
    """Render a publication frame from ``publication_head(channel)``, its position and its member."""
    return f'{head}{offset}{_EPOCH}{epoch}",{member}}}'


def publication_position(text: str, head: str) -> tuple[int, str] | None:
    """Return ``(offset, epoch)`` of a publication frame that starts with ``head``; None for any other text."""
    if not text.startswith(head):
        return None
    start = len(head)
    end = text.find(_EPOCH, start)
    epoch_end = text.find('"', end + len(_EPOCH))
    digits = text[start:end]
    if end < 0 or epoch_end < 0 or not (digits.isascii() and digits.isdigit()):
        return None
    return int(digits), text[end + len(_EPOCH) : epoch_end]


def broadcast_head(channel: str) -> str:
    """Return the start of the broadcast frames of ``channel``, up to the message they carry."""
    return '{"type":"broadcast","channel":' + to_json(channel).decode() + ","


def render_broadcast(head: str, text: str) -> str:
    """Wrap the broadcast ``text`` in a broadcast frame that starts with ``broadcast_head(channel)``."""
    return head + publication_member(text, is_json=is_json_text(text)) + "}"


def render_resume(channel: str, *, recovered: bool, offset: int, epoch: str) -> str:
    """Render the resume frame: whether the client has everything after the position it gave, and where it is now."""
    return render({"type": "resume", "channel": channel, "recovered": recovered, "offset": offset, "epoch": epoch})
