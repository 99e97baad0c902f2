"""Serve an app's AsyncAPI document as JSON, and as a page for people rendered on the server.

The page is plain HTML from a Jinja2 template that ships in the package: no script, no stylesheet or font
from elsewhere, so it works offline and behind any content security policy.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from markupsafe import Markup
from pydantic_core import to_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Match, Route, WebSocketRoute
from starlette.types import Scope

from fastapi_channels.asyncapi import asyncapi_document, effective_routes

__all__ = ["add_asyncapi_routes", "render_page", "SchemaRow"]

_CODE_SPAN = re.compile(r"``?([^`]+)``?")

# Constraints worth a note in a field's row, with the words they are shown with.
_CONSTRAINTS = {
    "minLength": "length ≥ {}",
    "maxLength": "length ≤ {}",
    "minimum": "≥ {}",
    "maximum": "≤ {}",
    "exclusiveMinimum": "> {}",
    "exclusiveMaximum": "< {}",
    "multipleOf": "a multiple of {}",
    "pattern": "matches {}",
    "minItems": "items ≥ {}",
    "maxItems": "items ≤ {}",
    "format": "format {}",
}


def add_asyncapi_routes(app: Starlette, *, url: str | None, docs_url: str | None) -> None:
    """Serve the document of ``app`` at ``url`` and its page at ``docs_url`` (None: not served).

    The document is built at the first request, once the app has all its routes, as FastAPI builds its OpenAPI
    document. A route the app itself has at the same path wins over either.
    """
    built: list[dict[str, Any]] = []

    def document(request: Request) -> dict[str, Any]:
        if not built:
            built.append(asyncapi_document(app))
        secure = request.url.scheme in ("https", "wss")
        server: dict[str, Any] = {"host": request.url.netloc, "protocol": "wss" if secure else "ws"}
        root_path = request.scope.get("root_path", "")
        if root_path:
            server["pathname"] = root_path
        return {**built[0], "servers": {"default": server}}

    async def serve_json(request: Request) -> Response:
        # As frames are written: a default of infinity in a schema becomes null instead of failing the page.
        return Response(to_json(document(request), inf_nan_mode="null"), media_type="application/json")

    async def serve_page(request: Request) -> HTMLResponse:
        json_url = request.scope.get("root_path", "") + url if url is not None else None
        return HTMLResponse(render_page(document(request), json_url=json_url))

    for path, endpoint, name in ((url, serve_json, "asyncapi_json"), (docs_url, serve_page, "asyncapi_docs")):
        if path is not None:
            app.router.routes.append(_YieldingRoute(app, path, endpoint, name=name))


class _YieldingRoute(Route):
    """A GET route that gives way to a route of the app at the same path, whenever that one was added."""

    def __init__(self, app: Starlette, path: str, endpoint: Any, *, name: str) -> None:
        super().__init__(path, endpoint, methods=["GET"], name=name, include_in_schema=False)
        self.app_routes = app.router.routes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE and any(
            route is not self
            and not isinstance(route, WebSocketRoute)
            and getattr(effective, "path", None) == self.path
            for route, effective in effective_routes(self.app_routes)
        ):
            return Match.NONE, {}
        return match, child_scope


@dataclass(frozen=True)
class SchemaRow:
    """One field of an object schema, as the page shows it."""

    name: str
    type: list[tuple[str, str | None]]
    """The type in words, as pieces of text; a piece naming a model comes with that model's name, for a link."""
    required: bool
    notes: list[str] = field(default_factory=list)


def render_page(document: Mapping[str, Any], *, json_url: str | None = None) -> str:
    """Return the HTML page of the AsyncAPI ``document``; ``json_url`` is where the page links to the JSON."""
    page = _Page(document)
    return _template().render(
        document=document,
        info=document.get("info", {}),
        servers=document.get("servers", {}),
        channels=[page.channel(key, channel) for key, channel in document.get("channels", {}).items()],
        frames=[page.sent(message) for message in page.shared.values()],
        close_codes=document.get("x-close-codes", []),
        models=[(name, schema, page.rows(schema)) for name, schema in page.models.items()],
        json_url=json_url,
        pretty=_pretty,
        type_of=page.type_of,
        inline=_inline,
    )


@functools.cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("fastapi_channels", "templates"), autoescape=True, trim_blocks=True
    )
    return environment.get_template("asyncapi.html")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _inline(text: str) -> Markup:
    """Return ``text`` as HTML, with its code spans (in single or double backticks) in code tags."""
    parts = _CODE_SPAN.split(text)
    # split() puts the text of each code span at the odd places.
    return Markup("").join(
        Markup("<code>{}</code>").format(part) if index % 2 else part for index, part in enumerate(parts)
    )


class _Page:
    """Read a document into what the template shows: each channel's actions and messages, with field tables."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        components = document.get("components", {})
        self.models: dict[str, Any] = components.get("schemas", {})
        self.shared: dict[str, Any] = components.get("messages", {})
        self.operations: dict[str, Any] = document.get("operations", {})

    def message(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return the message object ``message`` refers to (itself when it is no reference)."""
        ref = message.get("$ref", "")
        return self.shared.get(ref.rsplit("/", 1)[-1], {}) if ref.startswith("#/components/messages/") else message

    def channel(self, key: str, channel: Mapping[str, Any]) -> dict[str, Any]:
        """Return what the page shows of one channel: its facts, the actions it receives and what it sends."""
        messages = channel.get("messages", {})
        received, sent, common = [], [], []
        for operation in self.operations.values():
            if operation.get("channel", {}).get("$ref") != f"#/channels/{key}":
                continue
            for ref in operation.get("messages", []):
                entry = messages.get(ref.get("$ref", "").rsplit("/", 1)[-1], {})
                message = self.message(entry)
                if operation.get("action") == "receive":
                    received.append(self.action(operation, message, messages))
                elif "$ref" in entry:  # a frame every channel sends, shown once for all
                    common.append(message)
                else:
                    sent.append(self.sent(message))
        return {"key": key, "channel": channel, "received": received, "sent": sent, "common": common}

    def action(self, operation: Mapping[str, Any], message: Mapping[str, Any], messages: Any) -> dict[str, Any]:
        """Return what the page shows of one action: its metadata, payload fields and reply."""
        payload = message.get("payload", {})
        reply = None
        for ref in operation.get("reply", {}).get("messages", []):
            replied = self.message(messages.get(ref.get("$ref", "").rsplit("/", 1)[-1], {}))
            if replied.get("name") != "error":
                reply = replied.get("payload", {}).get("properties", {}).get("data", {})
        return {
            "operation": operation,
            "message": message,
            "facts": operation.get("x-fastapi-channels", {}),
            "rows": [row for part in payload.get("allOf", []) for row in self.rows(part)],
            "payload_type": _joined([self.type_of(part) for part in payload.get("allOf", [])], " & "),
            "text": message.get("contentType") == "text/plain",
            "reply": reply,
            "reply_rows": self.rows(reply) if reply is not None else [],
        }

    def sent(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Return what the page shows of one message the server sends."""
        payload = message.get("payload", {})
        return {"message": message, "rows": self.rows(payload), "type": self.type_of(payload)}

    def resolve(self, schema: Any) -> Any:
        """Return the model ``schema`` refers to, or ``schema`` itself."""
        ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
        return self.models.get(ref.rsplit("/", 1)[-1], {}) if ref.startswith("#/components/schemas/") else schema

    def rows(self, schema: Any) -> list[SchemaRow]:
        """Return the fields of an object schema, including those of the schemas it combines with ``allOf``."""
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            return []
        required = set(schema.get("required", []))
        found = [
            SchemaRow(name, self.type_of(value), name in required, _notes(value))
            for name, value in schema.get("properties", {}).items()
        ]
        for part in schema.get("allOf", []):
            found += self.rows(part)
        return found

    def type_of(self, schema: Any) -> list[tuple[str, str | None]]:
        """Return the type ``schema`` describes, in words, as pieces of text (with the model a piece names)."""
        if not isinstance(schema, dict):
            return [("any", None)]
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[-1]
            return [(name, name)]
        if "const" in schema:
            return [(json.dumps(schema["const"], ensure_ascii=False), None)]
        if "enum" in schema:
            return [("one of " + ", ".join(json.dumps(item, ensure_ascii=False) for item in schema["enum"]), None)]
        for combined, separator in (("anyOf", " | "), ("oneOf", " | "), ("allOf", " & ")):
            if combined in schema:
                return _joined([self.type_of(part) for part in schema[combined]], separator)
        kind = schema.get("type")
        if isinstance(kind, list):
            return _joined([self.type_of({**schema, "type": item}) for item in kind], " | ")
        if kind == "array":
            items = schema.get("items", {})
            if isinstance(items, list):
                return [("tuple (", None), *_joined([self.type_of(item) for item in items], ", "), (")", None)]
            return [("array of ", None), *self.type_of(items)]
        if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            return [("object of ", None), *self.type_of(schema["additionalProperties"])]
        return [(str(kind), None)] if kind else [("any", None)]


def _joined(parts: list[list[tuple[str, str | None]]], separator: str) -> list[tuple[str, str | None]]:
    joined: list[tuple[str, str | None]] = []
    for index, part in enumerate(parts):
        if index:
            joined.append((separator, None))
        joined += part
    return joined


def _notes(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return []
    notes = [schema["description"]] if schema.get("description") else []
    notes += [text.format(schema[key]) for key, text in _CONSTRAINTS.items() if key in schema]
    if "default" in schema:
        notes.append(f"default {json.dumps(schema['default'], ensure_ascii=False)}")
    if schema.get("deprecated"):
        notes.append("deprecated")
    return notes
