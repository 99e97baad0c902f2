"""The AsyncAPI 3.0 document of an app, built from what already runs it: nothing is declared twice.

A websocket route is a channel of the document when its endpoint serves a channel object: ``room.connect``
itself (``app.add_api_websocket_route("/chat", room.connect)``), or a function marked with ``@room.serves``.
Each action of the object is an operation the app receives, with the schemas of its payload and of its reply
(from the handler's types), its summary, description, tags, permission, rate limits and deprecation. What the
object ``sends``, heartbeat pings, drain notices and error frames are operations the app sends.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIWebSocketRoute

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - before FastAPI included routers lazily
    iter_route_contexts = None  # type: ignore[assignment]
from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Host, Mount, WebSocketRoute

from fastapi_channels.asyncapi_schemas import (
    SchemaInput,
    broadcast_message,
    close_codes,
    drain_message,
    error_message,
    generate_schemas,
    ping_message,
    publication_message,
    relay_message,
    reply_frame,
    request_frame,
    resume_message,
    resume_request,
    subscription_reply,
    subscription_request,
)
from fastapi_channels.channels import SERVES_ATTR, BaseChannel, Channel
from fastapi_channels.codecs import JSON_TEXT
from fastapi_channels.config import STATE_KEY, FastAPIChannel
from fastapi_channels.decorators import RETURN_ANNOTATION, RegisteredAction
from fastapi_channels.permission import AND, NOT, OR, BasePermission, PermissionLike
from fastapi_channels.throttling import RateSpec, get_limits

__all__ = [
    "ASYNCAPI_VERSION",
    "ServedRoute",
    "asyncapi_document",
    "served_by",
    "served_routes",
    "effective_routes",
    "describe_permission",
]

ASYNCAPI_VERSION = "3.0.0"
"""The version of the AsyncAPI specification the documents follow."""

_PARAMETER = re.compile(r"{(\w+)(?::(\w+))?}")
_NOT_IN_ID = re.compile(r"[^\w.\-]+")
_CHANNEL_QUERY = {
    "type": "object",
    "properties": {"channel": {"type": "string", "description": "The channel to join; the object's own if left out."}},
}


@dataclass(frozen=True)
class ServedRoute:
    """A websocket route whose endpoint serves a channel object."""

    path: str
    """The route's whole path, after the paths of the mounts it is in; parameters as ``{name}`` or ``{name:type}``."""
    name: str
    """The route's name (an endpoint function's name, by default)."""
    room: BaseChannel
    """The channel object the route serves."""
    channel_in_query: bool = False
    """Whether a ``?channel=`` query parameter picks the channel: ``room.connect`` is a FastAPI route's endpoint."""

    @property
    def address(self) -> str:
        """Return the path with its parameters as ``{name}``, as AsyncAPI writes them."""
        return _PARAMETER.sub(lambda match: "{" + match.group(1) + "}", self.path)

    @property
    def parameters(self) -> dict[str, str]:
        """Return each path parameter's name with its type (``str`` when the path gives none)."""
        return {name: kind or "str" for name, kind in _PARAMETER.findall(self.path)}


def served_by(endpoint: Any) -> BaseChannel | None:
    """Return the channel object ``endpoint`` serves: marked with ``room.serves``, or ``room.connect`` itself."""
    marked = getattr(endpoint, SERVES_ATTR, None)
    if isinstance(marked, BaseChannel):
        return marked
    owner = getattr(endpoint, "__self__", None)
    if isinstance(owner, BaseChannel) and getattr(endpoint, "__func__", None) is type(owner).connect:
        return owner
    return None


def served_routes(app: Starlette) -> list[ServedRoute]:
    """Return the websocket routes of ``app`` (and of the apps and routers mounted in it) that serve a channel."""
    return list(_walk(getattr(app, "routes", []), ""))


def effective_routes(routes: Iterable[BaseRoute]) -> Iterator[tuple[BaseRoute, Any]]:
    """Yield each route as declared, with what to read its path, name, endpoint and routes from.

    FastAPI includes a router lazily (since 0.16x): its routes get their prefix only as they are looked at.
    """
    if iter_route_contexts is None:  # pragma: no cover - an older FastAPI copies an included router's routes
        for route in routes:
            yield route, route
    else:
        for context in iter_route_contexts(list(routes)):
            yield context.original_route, context


def _walk(routes: Iterable[BaseRoute], prefix: str) -> Iterator[ServedRoute]:
    for route, effective in effective_routes(routes):
        if isinstance(route, Mount):
            yield from _walk(effective.routes, prefix + effective.path)
        elif isinstance(route, Host):
            yield from _walk(effective.routes, prefix)
        elif isinstance(route, WebSocketRoute) and (room := served_by(effective.endpoint)) is not None:
            path = prefix + effective.path
            # FastAPI fills the ``channel`` parameter of ``room.connect`` from the path, or else from the query.
            connects = isinstance(route, APIWebSocketRoute) and getattr(effective.endpoint, "__self__", None) is room
            in_query = connects and "channel" not in dict(_PARAMETER.findall(path))
            yield ServedRoute(path, effective.name, room, channel_in_query=in_query)


def asyncapi_document(app: Starlette, *, servers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the AsyncAPI 3.0 document of ``app``, a FastAPI (or Starlette) app, as JSON-ready data.

    Args:
        servers: The document's ``servers``, such as ``{"production": {"host": "example.com", "protocol": "wss"}}``.
    """
    routes = served_routes(app)
    rooms = list({id(route.room): route.room for route in routes}.values())
    schemas, models = generate_schemas(_schema_inputs(rooms))
    config = getattr(getattr(app, "state", None), STATE_KEY, None)
    builder = _Builder(schemas, config if isinstance(config, FastAPIChannel) else None)
    for route in routes:
        builder.add(route)
    info = {"title": getattr(app, "title", "") or "App", "version": getattr(app, "version", "") or "0.1.0"}
    description = getattr(app, "description", "")
    if description:
        info["description"] = description
    document: dict[str, Any] = {"asyncapi": ASYNCAPI_VERSION, "info": info}
    if servers:
        document["servers"] = dict(servers)
    document["defaultContentType"] = "application/json"
    document["channels"] = builder.channels
    document["operations"] = builder.operations
    document["components"] = {"schemas": models, "messages": builder.messages} if models else {}
    document["components"]["messages"] = builder.messages
    document["x-close-codes"] = close_codes()
    return document


def _actions(room: BaseChannel) -> dict[str, RegisteredAction]:
    return {name: room.get_action(name) for name in room.actions} if isinstance(room, Channel) else {}


def _schema_inputs(rooms: list[BaseChannel]) -> Iterator[SchemaInput]:
    for room in rooms:
        for name, entry in _actions(room).items():
            if entry.payload is not None:
                yield (id(room), "payload", name), "validation", entry.payload.adapter
            if entry.reply.adapter is not None:
                yield (id(room), "reply", name), "serialization", entry.reply.adapter
        for name, kind in (room.sends or {}).items():
            yield (id(room), "sends", name), "serialization", TypeAdapter(kind)


class _Builder:
    """Gather the channels, operations and shared messages of the document, one served route at a time."""

    def __init__(self, schemas: dict[Hashable, Any], config: FastAPIChannel | None) -> None:
        self.schemas = schemas
        self.config = config
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {"error": error_message()}

    def add(self, route: ServedRoute) -> None:
        """Add the channel of ``route``, and the operations of the object it serves."""
        room = route.room
        channel_id = _unique(_slug(route.name if route.name != "connect" else route.address), self.channels)
        channel: dict[str, Any] = {"address": route.address, "title": type(room).__name__}
        description = _own_doc(type(room))
        if description:
            channel["description"] = description
        if route.parameters:
            channel["parameters"] = {
                name: {"description": f"Path parameter ({kind})."} for name, kind in route.parameters.items()
            }
        if route.channel_in_query:
            channel["bindings"] = {"ws": {"query": _CHANNEL_QUERY, "bindingVersion": "0.1.0"}}
        channel["messages"] = messages = {"error": {"$ref": "#/components/messages/error"}}
        channel["x-fastapi-channels"] = self._channel_facts(room)
        self.channels[channel_id] = channel
        ref = {"$ref": f"#/channels/{channel_id}"}
        if isinstance(room, Channel):
            for entry in _actions(room).values():
                self._add_action(channel_id, ref, messages, room, entry)
        else:
            messages["text"] = relay_message()
            self._operation(f"{channel_id}.relay", "receive", ref, [f"{channel_id}/messages/text"])
            self._operation(f"{channel_id}.relayed", "send", ref, [f"{channel_id}/messages/text"])
        for name in room.sends or {}:
            key = _unique(f"sends.{_slug(name)}", messages)
            schema = self.schemas[(id(room), "sends", name)]
            messages[key] = {"name": name, "title": name, "payload": schema}
            if isinstance(schema, dict) and schema.get("type") == "string":
                messages[key]["contentType"] = "text/plain"  # a str is sent as it is, not as JSON
            self._operation(f"{channel_id}.{key}", "send", ref, [f"{channel_id}/messages/{key}"])
        self._operation(f"{channel_id}.error", "send", ref, [f"{channel_id}/messages/error"])
        if room.speaks_json and self.config is not None and self.config.heartbeat_interval is not None:
            self.messages["ping"] = ping_message()
            messages["ping"] = {"$ref": "#/components/messages/ping"}
            self._operation(f"{channel_id}.ping", "send", ref, [f"{channel_id}/messages/ping"])
        if room.retention is not None:
            self._add_history(channel_id, ref, messages, room)
        if isinstance(room, Channel) and room.client_subscriptions:
            self._add_subscriptions(channel_id, ref, messages, room)
        self.messages["drain"] = drain_message()
        messages["drain"] = {"$ref": "#/components/messages/drain"}
        self._operation(f"{channel_id}.drain", "send", ref, [f"{channel_id}/messages/drain"])

    def _add_action(
        self, channel_id: str, ref: dict[str, str], messages: dict[str, Any], room: Channel, entry: RegisteredAction
    ) -> None:
        name = entry.spec.name
        key = _unique(f"action.{_slug(name)}", messages)
        payload = self.schemas.get((id(room), "payload", name))
        messages[key] = {"name": name, "title": name, "payload": request_frame(name, payload)}
        if entry.spec.deprecated:
            messages[key]["deprecated"] = True
        replies = [f"{channel_id}/messages/error"]
        if _may_reply(room, entry):
            reply_key = _unique(f"reply.{_slug(name)}", messages)
            data = self.schemas.get((id(room), "reply", name))
            messages[reply_key] = {"name": f"{name} reply", "payload": reply_frame(name, data)}
            replies.insert(0, f"{channel_id}/messages/{reply_key}")
        operation = self._operation(f"{channel_id}.{key}", "receive", ref, [f"{channel_id}/messages/{key}"])
        operation.update(_described(room, entry, typed=payload is not None))
        operation["reply"] = {"channel": ref, "messages": [{"$ref": f"#/channels/{reply}"} for reply in replies]}

    def _add_history(self, channel_id: str, ref: dict[str, str], messages: dict[str, Any], room: BaseChannel) -> None:
        """Add the frames of a channel with history: publications, the resume frame and the resume request."""
        self.messages["publication"] = publication_message()
        self.messages["resume"] = resume_message()
        for name in ("publication", "resume"):
            messages[name] = {"$ref": f"#/components/messages/{name}"}
            self._operation(f"{channel_id}.{name}", "send", ref, [f"{channel_id}/messages/{name}"])
        if isinstance(room, Channel) and "resume" not in room.actions:
            key = _unique("action.resume", messages)
            messages[key] = resume_request()
            operation = self._operation(f"{channel_id}.{key}", "receive", ref, [f"{channel_id}/messages/{key}"])
            operation["reply"] = {
                "channel": ref,
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"} for name in ("resume", "error")],
            }

    def _add_subscriptions(self, channel_id: str, ref: dict[str, str], messages: dict[str, Any], room: Channel) -> None:
        """Add the built-in frames that join and leave more channels, and the broadcast frame that names them."""
        self.messages["broadcast"] = broadcast_message()
        messages["broadcast"] = {"$ref": "#/components/messages/broadcast"}
        self._operation(f"{channel_id}.broadcast", "send", ref, [f"{channel_id}/messages/broadcast"])
        for action in ("subscribe", "unsubscribe"):
            if action in room.actions:
                continue  # the channel's own action of that name takes the frame
            key = _unique(f"action.{action}", messages)
            reply_key = _unique(f"reply.{action}", messages)
            messages[key] = subscription_request(action)
            messages[reply_key] = subscription_reply(action)
            operation = self._operation(f"{channel_id}.{key}", "receive", ref, [f"{channel_id}/messages/{key}"])
            replies = [reply_key, "error"]
            operation["reply"] = {
                "channel": ref,
                "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"} for name in replies],
            }

    def _operation(self, key: str, action: str, channel: dict[str, str], messages: list[str]) -> dict[str, Any]:
        operation_id = _unique(key, self.operations)
        operation = {"action": action, "channel": channel, "messages": [{"$ref": f"#/channels/{m}"} for m in messages]}
        self.operations[operation_id] = operation
        return operation

    def _channel_facts(self, room: BaseChannel) -> dict[str, Any]:
        """Return what the channel object's configuration says about connecting to it."""
        kind = "actions" if isinstance(room, Channel) else "relay"
        facts: dict[str, Any] = {"class": _qualified(type(room)), "kind": kind, "channel": room.channel}
        if room.max_connection is not None:
            facts["max_connection"] = room.max_connection
        permission = room.get_permissions(self.config) if self.config is not None else room.permission_classes
        facts["permission"] = describe_permission(permission) or "AllowAny"
        throttles = room.get_throttles(self.config) if self.config is not None else tuple(room.throttle_classes or ())
        if throttles:
            facts["rate_limits"] = [_describe_limit(throttle) for throttle in throttles]
        if isinstance(room, Channel) and room.client_subscriptions:
            facts["client_subscriptions"] = True
            facts["max_channels_per_connection"] = room.max_channels_per_connection
            join_permission = describe_permission(room.join_permission)
            if join_permission is not None:
                facts["join_permission"] = join_permission
        if room.retention is not None:
            facts["history"] = {"size": room.retention.size, "ttl": room.retention.ttl}
        if tuple(room.codecs) != (JSON_TEXT,):
            # The payloads are described as JSON; these say how a client may carry them instead.
            facts["codecs"] = [
                {"name": codec.name, "subprotocol": codec.subprotocol, "binary": codec.binary} for codec in room.codecs
            ]
        return facts


def _described(room: Channel, entry: RegisteredAction, *, typed: bool) -> dict[str, Any]:
    """Return what the operation of an action says about it: its texts, tags, permission and limits."""
    spec = entry.spec
    described: dict[str, Any] = {"title": spec.name}
    if spec.summary:
        described["summary"] = spec.summary
    if spec.description or spec.doc:
        described["description"] = spec.description or spec.doc
    if spec.tags:
        described["tags"] = [{"name": tag} for tag in dict.fromkeys(spec.tags)]
    facts: dict[str, Any] = {"action": spec.name, "deprecated": spec.deprecated, "typed": typed}
    permission = describe_permission(spec.permission)
    if permission is not None:
        facts["permission"] = permission
    limits = get_limits(entry.function(room))
    if limits:
        facts["rate_limits"] = [_describe_limit(limit) for limit in limits]
    described["x-fastapi-channels"] = facts
    return described


def describe_permission(permission: PermissionLike) -> str | None:
    """Return ``permission`` in words for people, such as ``"(IsAuthenticated | IsAdmin)"``; None when not set."""
    if permission is None:
        return None
    if isinstance(permission, bool):
        return "everyone" if permission else "nobody"
    if isinstance(permission, list | tuple):
        return " & ".join(describe_permission(item) or "everyone" for item in permission) or "everyone"
    # Tuples, not ``AND | OR``: the permission metaclass turns ``|`` into an OR permission.
    if isinstance(permission, (AND, OR)):
        operator = "&" if isinstance(permission, AND) else "|"
        return f"({describe_permission(permission.first)} {operator} {describe_permission(permission.second)})"
    if isinstance(permission, NOT):
        return f"~{describe_permission(permission.operand)}"
    if isinstance(permission, type):
        return permission.__name__
    if isinstance(permission, BasePermission):
        return type(permission).__name__
    return str(getattr(permission, "__qualname__", type(permission).__name__))


def _describe_limit(limit: Any) -> dict[str, Any]:
    if not isinstance(limit, RateSpec):
        return {"text": type(limit).__name__}
    period = limit.milliseconds
    for unit, size in (("h", 3_600_000), ("min", 60_000), ("s", 1000), ("ms", 1)):
        if period % size == 0:
            text = f"{limit.times} per {period // size} {unit}"
            break
    return {"times": limit.times, "milliseconds": period, "text": text}


def _may_reply(room: Channel, entry: RegisteredAction) -> bool:
    """Whether the action may answer with a reply frame: not when its handler is annotated to return None."""
    if entry.spec.response_model is not RETURN_ANNOTATION or entry.reply.adapter is not None:
        return True
    try:
        returned = inspect.signature(entry.function(room)).return_annotation
    except (TypeError, ValueError):
        return True
    return returned not in (None, "None", type(None))


def _own_doc(cls: type) -> str | None:
    """Return the docstring of a user's channel class (the library's own classes describe the library)."""
    if cls.__module__.split(".")[0] == "fastapi_channels":
        return None
    return inspect.getdoc(cls) if "__doc__" in vars(cls) and cls.__doc__ else None


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _slug(text: str) -> str:
    return _NOT_IN_ID.sub("_", text).strip("_.") or "channel"


def _unique(key: str, taken: Mapping[str, Any]) -> str:
    if key not in taken:
        return key
    number = 2
    while f"{key}_{number}" in taken:
        number += 1
    return f"{key}_{number}"
