"""The schemas of the AsyncAPI document: the frames of the wire protocol, the close codes, and pydantic's JSON
Schemas turned into AsyncAPI's dialect.

AsyncAPI 3.0 schemas are JSON Schema draft 07 with a few additions, while pydantic writes draft 2020-12: the
few keywords that differ are rewritten here (``prefixItems`` becomes an ``items`` list, a ``discriminator``
object becomes its property name), and every model lands in ``components/schemas``.
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable, Iterable
from typing import Any, Literal

from pydantic import PydanticUserError, TypeAdapter
from starlette import status

from fastapi_channels import exceptions
from fastapi_channels.protocol import MAX_REQUEST_ID_LENGTH
from fastapi_channels.timeouts import IDLE_CLOSE_CODE, LIFETIME_CLOSE_CODE

__all__ = [
    "REF_TEMPLATE",
    "SchemaInput",
    "generate_schemas",
    "request_frame",
    "reply_frame",
    "error_message",
    "ping_message",
    "drain_message",
    "relay_message",
    "broadcast_message",
    "subscription_request",
    "subscription_reply",
    "publication_message",
    "resume_message",
    "resume_request",
    "close_codes",
]

REF_TEMPLATE = "#/components/schemas/{model}"
"""Where the document keeps the models the schemas refer to."""

SchemaInput = tuple[Hashable, Literal["validation", "serialization"], TypeAdapter[Any]]
"""A schema to generate: a key to find it by, the mode (what is accepted, or what is sent) and the adapter."""

_REQUEST_ID = {
    "type": ["number", "string", "null"],
    "maxLength": MAX_REQUEST_ID_LENGTH,
    "description": "Echoed, exactly as sent, in the frame that answers the request.",
}

# Closes the library makes itself, besides those of the exceptions (each exception says when it closes).
_CLOSES = (
    (status.WS_1000_NORMAL_CLOSURE, None, "The server ends the connection normally.", True),
    (LIFETIME_CLOSE_CODE, None, "The connection reached its maximum lifetime: connect again.", True),
    (status.WS_1003_UNSUPPORTED_DATA, None, "A binary frame arrived: only text frames are read.", False),
    (status.WS_1011_INTERNAL_ERROR, None, "An unexpected error on the server, after a generic error frame.", True),
    (status.WS_1012_SERVICE_RESTART, None, "The server restarts or drains: connect again shortly.", True),
    (status.WS_1013_TRY_AGAIN_LATER, None, "The client did not read what was sent to it fast enough.", True),
    (IDLE_CLOSE_CODE, None, "The client sent no frame for the idle timeout (it answered no ping).", True),
)


def generate_schemas(inputs: Iterable[SchemaInput]) -> tuple[dict[Hashable, Any], dict[str, Any]]:
    """Return the schema of each input by its key, and the models they refer to, in AsyncAPI's dialect.

    One generator writes them all, so that two models of the same name get two names.
    """
    listed, schemas = [], {}
    for key, mode, adapter in inputs:
        try:
            adapter.json_schema(mode=mode)
        except PydanticUserError as exc:  # a type pydantic validates but cannot describe, such as a callable
            schemas[key] = {"description": f"A type without a JSON Schema: {exc.message}"}
        else:
            listed.append((key, mode, adapter))
    if not listed:
        return schemas, {}
    found, definitions = TypeAdapter.json_schemas(listed, ref_template=REF_TEMPLATE)
    schemas.update({key: to_asyncapi(schema) for (key, _), schema in found.items()})
    return schemas, {name: to_asyncapi(schema) for name, schema in definitions.get("$defs", {}).items()}


def to_asyncapi(schema: Any) -> Any:
    """Return the JSON Schema ``schema`` (draft 2020-12, as pydantic writes it) in AsyncAPI's draft 07 dialect."""
    if isinstance(schema, list):
        return [to_asyncapi(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: to_asyncapi(value) for key, value in schema.items()}
    discriminator = converted.get("discriminator")
    if isinstance(discriminator, dict):  # OpenAPI's form; AsyncAPI names the property only
        converted["discriminator"] = discriminator.get("propertyName", "")
    if "prefixItems" in converted:
        rest = converted.pop("items", False)
        converted["items"] = converted.pop("prefixItems")
        converted["additionalItems"] = rest
    return converted


def request_frame(action: str, payload: Any | None) -> dict[str, Any]:
    """Return the schema of the frame that calls ``action``, whose other fields are the ``payload`` schema."""
    frame: dict[str, Any] = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "const": action},
            "request_id": _REQUEST_ID,
        },
        "required": ["action"],
    }
    if payload is None:
        frame["description"] = "Untyped: any other fields reach the action in its data argument."
    else:
        frame["allOf"] = [payload]
    return frame


def reply_frame(action: str, data: Any | None) -> dict[str, Any]:
    """Return the schema of the reply frame of ``action``, whose ``data`` is what the action returned."""
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string", "const": "response"},
            "status": {"type": "string", "const": "ok"},
            "action": {"type": "string", "const": action},
            "request_id": _REQUEST_ID,
            "data": data if data is not None else {"description": "What the action returned, as JSON."},
        },
        "required": ["type", "status", "action", "request_id", "data"],
    }


def error_message() -> dict[str, Any]:
    """Return the message object of error frames."""
    payload = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "const": "response"},
            "status": {"type": "string", "description": '"bad", unless the exception was raised with another.'},
            "action": {"type": ["string", "null"], "description": "The action of the request, if known."},
            "request_id": _REQUEST_ID,
            "errors": {"type": "string", "description": "A readable message for people."},
            "code": {"type": "integer", "description": "The close code that matches the problem."},
            "close": {"type": "boolean", "description": "Whether the server closes the connection next."},
            "data": {"description": "The exception's data, when it has some."},
            "detail": {
                "type": "array",
                "description": "For a payload that does not fit: one entry per problem.",
                "items": {
                    "type": "object",
                    "properties": {
                        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                },
            },
            "retry_after": {"type": "number", "description": "For a rate limit: seconds before trying again."},
        },
        "required": ["type", "status", "action", "request_id", "errors", "code", "close"],
    }
    example = {
        "type": "response",
        "status": "bad",
        "action": "message",
        "request_id": 7,
        "errors": exceptions.PermissionDenied.default_error_msg,
        "code": status.WS_1008_POLICY_VIOLATION,
        "close": False,
    }
    return {
        "name": "error",
        "title": "Error frame",
        "summary": "Answers a frame that could not be handled, or explains the close that follows.",
        "payload": payload,
        "examples": [{"name": "denied", "payload": example}],
    }


def ping_message() -> dict[str, Any]:
    """Return the message object of heartbeat pings."""
    return {
        "name": "ping",
        "title": "Heartbeat ping",
        "summary": 'Sent to a silent client; any frame answers it, such as {"action": "pong"}.',
        "payload": _typed_frame("ping", {}),
    }


def drain_message() -> dict[str, Any]:
    """Return the message object of the frame sent before a close for a restart."""
    properties = {
        "reason": {"type": "string"},
        "reconnect_in": {"type": "number", "description": "Seconds to wait before connecting again."},
    }
    return {
        "name": "drain",
        "title": "Drain notice",
        "summary": "The server is about to close the connection with 1012: connect again after reconnect_in.",
        "payload": _typed_frame("drain", properties),
    }


_POSITION = {
    "offset": {"type": "integer", "minimum": 0, "description": "The position in the channel's stream."},
    "epoch": {"type": "string", "description": "The stream's epoch: offsets of another epoch do not compare."},
}


def publication_message() -> dict[str, Any]:
    """Return the message object of a broadcast on a channel with history: the message and its position."""
    properties = {
        "channel": {"type": "string"},
        **_POSITION,
        "data": {"description": "The broadcast message, as JSON (text that is not JSON comes as `text`)."},
        "text": {"type": "string"},
    }
    payload = _typed_frame("publication", properties)
    payload["required"] = ["type", "channel", "offset", "epoch"]
    return {
        "name": "publication",
        "title": "Publication",
        "summary": "A broadcast on a channel with history: keep its offset and epoch to resume after a reconnect.",
        "payload": payload,
    }


def resume_message() -> dict[str, Any]:
    """Return the message object of the frame that ends a join (and its replay) on a channel with history."""
    properties = {
        "channel": {"type": "string"},
        "recovered": {"type": "boolean", "description": "Whether everything after the position given was sent."},
        **_POSITION,
    }
    return {
        "name": "resume",
        "title": "Resume",
        "summary": "Sent on every join to a channel with history, after the publications the client missed.",
        "payload": _typed_frame("resume", properties),
    }


def resume_request() -> dict[str, Any]:
    """Return the message object of the frame that asks for what was missed since a position."""
    return {
        "name": "resume",
        "title": "resume",
        "summary": "Ask for the publications after a position (or pass ?offset=&epoch= when connecting).",
        "payload": request_frame(
            "resume", {"type": "object", "properties": _POSITION, "required": ["offset", "epoch"]}
        ),
    }


def broadcast_message() -> dict[str, Any]:
    """Return the message object of a broadcast to a connection that is in several channels."""
    properties = {
        "channel": {"type": "string", "description": "The channel the message was broadcast to."},
        "data": {"description": "The broadcast message, as JSON (text that is not JSON comes as `text`)."},
        "text": {"type": "string"},
    }
    payload = _typed_frame("broadcast", properties)
    payload["required"] = ["type", "channel"]
    return {
        "name": "broadcast",
        "title": "Broadcast",
        "summary": "A broadcast, naming its channel: sent from a connection's first join of another channel on.",
        "payload": payload,
    }


def subscription_request(action: str) -> dict[str, Any]:
    """Return the message object of the built-in ``subscribe`` or ``unsubscribe`` frame."""
    properties: dict[str, Any] = {"channel": {"type": "string", "minLength": 1}}
    if action == "subscribe":
        properties.update(_POSITION)
        summary = "Join another channel; on a channel with history, give offset and epoch to resume it."
    else:
        summary = "Leave a channel joined with subscribe (never the connection's own)."
    return {
        "name": action,
        "title": action,
        "summary": summary,
        "payload": request_frame(action, {"type": "object", "properties": properties, "required": ["channel"]}),
    }


def subscription_reply(action: str) -> dict[str, Any]:
    """Return the message object of the reply to a ``subscribe`` or ``unsubscribe`` frame."""
    data = {"type": "object", "properties": {"channel": {"type": "string"}}, "required": ["channel"]}
    return {"name": f"{action} reply", "payload": reply_frame(action, data)}


def relay_message() -> dict[str, Any]:
    """Return the message object of the text a relay channel passes on to everyone in the channel."""
    return {
        "name": "text",
        "title": "Text",
        "summary": "Any text frame: relayed, as it is, to everyone in the channel.",
        "contentType": "text/plain",
        "payload": {"type": "string"},
    }


def close_codes() -> list[dict[str, Any]]:
    """Return the close codes the library uses: each with its name, its exception, its cause and whether it closes.

    An error frame carries the code of its problem also when the socket stays open (``closes`` is false then).
    """
    names = {value: name for name, value in vars(status).items() if name.startswith("WS_")}
    rows = [
        (cls.default_code, name, _first_line(cls), cls.default_close)
        for name in exceptions.__all__
        if (cls := getattr(exceptions, name)) is not exceptions.WebSocketException
    ]
    codes = []
    for code, exception, text, closes in sorted([*rows, *_CLOSES], key=lambda row: row[0]):
        row = {"code": code, "name": names.get(code, "private use"), "description": text, "closes": closes}
        if exception is not None:
            row["exception"] = exception
        codes.append(row)
    return codes


def _typed_frame(kind: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"type": {"type": "string", "const": kind}, **properties},
        "required": ["type", *properties],
    }


def _first_line(cls: type) -> str:
    # Docstrings write code as ``name``; the document's texts are CommonMark, which writes `name`.
    return (inspect.getdoc(cls) or "").split("\n", 1)[0].replace("``", "`")
