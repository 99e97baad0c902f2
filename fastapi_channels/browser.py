"""Serve the browser client that ships in the package: ``channels.js`` (an ES module) and its ``channels.d.ts``.

Pages import it from the app itself, ``import { ChannelClient } from "/fastapi-channels/channels.js"``: nothing
to install or build, and the client always matches the server's version. Both files are served with an ETag,
so browsers revalidate them cheaply after an upgrade rather than running a stale copy.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from fastapi_channels.asyncapi_page import _YieldingRoute

__all__ = ["CLIENT_FILES", "add_client_routes", "client_etag", "client_source", "types_url_for"]

CLIENT_FILES = {"channels.js": "text/javascript; charset=utf-8", "channels.d.ts": "text/plain; charset=utf-8"}
"""The files of the browser client in ``fastapi_channels/static/``, with the media type each is served as."""


@functools.cache
def client_source(name: str = "channels.js") -> bytes:
    """Return the content of one file of the browser client (see ``CLIENT_FILES``)."""
    if name not in CLIENT_FILES:
        raise ValueError(f"The browser client has no file {name!r}: ask for one of {sorted(CLIENT_FILES)}.")
    return (importlib.resources.files("fastapi_channels") / "static" / name).read_bytes()


@functools.cache
def client_etag(name: str = "channels.js") -> str:
    """Return the ETag one file of the browser client is served with: a digest of its content, worked out once."""
    return f'"{hashlib.sha256(client_source(name)).hexdigest()[:32]}"'


def types_url_for(url: str) -> str:
    """Return where the TypeScript declarations are served when the client is served at ``url``.

    Raises:
        ValueError: ``url`` is not a path ending in ``.js``.
    """
    if not isinstance(url, str) or not url.startswith("/") or not url.endswith(".js") or url.endswith("/.js"):
        raise ValueError(
            f"client_url must be a path ending in '.js' such as '/fastapi-channels/channels.js', or None, not {url!r}."
        )
    return url.removesuffix(".js") + ".d.ts"


def add_client_routes(app: Starlette, url: str) -> None:
    """Serve ``channels.js`` at ``url`` (a path ending in ``.js``) and ``channels.d.ts`` next to it.

    A route the app itself has at either path wins, whenever it was added.

    Raises:
        ValueError: ``url`` is not a path ending in ``.js``.
    """
    types_url = types_url_for(url)
    for path, name in ((url, "channels.js"), (types_url, "channels.d.ts")):
        headers = {"X-TypeScript-Types": types_url} if name == "channels.js" else {}
        endpoint = _file_endpoint(name, headers)
        app.router.routes.append(_YieldingRoute(app, path, endpoint, name=f"fastapi_channels_{name}"))


def _file_endpoint(name: str, extra_headers: dict[str, str]) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        etag = client_etag(name)
        # no-cache: the browser may keep a copy, but asks whether it is still current (a 304 when it is).
        headers = {"ETag": etag, "Cache-Control": "no-cache", **extra_headers}
        if etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
            return Response(status_code=304, headers=headers)
        return Response(client_source(name), media_type=CLIENT_FILES[name], headers=headers)

    return serve
