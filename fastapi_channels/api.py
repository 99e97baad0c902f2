"""``add_channel``: give an app channels (its configuration, run inside the app lifespan) and error handling.

Also the app-wide ways to reach a user or a connection from anywhere, whichever channel object serves them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from fastapi_channels.asyncapi_page import add_asyncapi_routes
from fastapi_channels.browser import add_client_routes, types_url_for
from fastapi_channels.config import DRAIN_REASON, STATE_KEY, FastAPIChannel, get_channel_config
from fastapi_channels.exceptions import WebSocketException
from fastapi_channels.handlers import websocket_exception_handler
from fastapi_channels.outbox import (
    DEFAULT_SEND_QUEUE_BYTES,
    DEFAULT_SEND_QUEUE_SIZE,
    DEFAULT_WRITE_TIMEOUT,
    SendCapture,
)
from fastapi_channels.permission import PermissionLike
from fastapi_channels.presence import DEFAULT_PRESENCE_TTL
from fastapi_channels.protocol import encode

if TYPE_CHECKING:
    from broadcaster import Broadcast, BroadcastBackend

# FastAPIChannel, get_channel_config and STATE_KEY live in config.py; existing code imports them from here too.
__all__ = ["add_channel", "send_to_user", "drain"]


def add_channel(
    app: FastAPI,
    *,
    url: str | None = None,
    backend: BroadcastBackend | None = None,
    broadcast: Broadcast | None = None,
    limiter_url: str | None = None,
    limiter_prefix: str = "fastapi-channels",
    add_exception_handlers: bool = True,
    permission_classes: PermissionLike = None,
    throttle_classes: Sequence[Any] | None = None,
    send_queue_size: int | None = DEFAULT_SEND_QUEUE_SIZE,
    send_queue_bytes: int = DEFAULT_SEND_QUEUE_BYTES,
    write_timeout: float = DEFAULT_WRITE_TIMEOUT,
    presence_url: str | None = None,
    presence_ttl: float = DEFAULT_PRESENCE_TTL,
    namespace: str = "fastapi-channels",
    allowed_origins: Sequence[str] | None = None,
    heartbeat_interval: float | None = None,
    idle_timeout: float | None = None,
    max_lifetime: float | None = None,
    asyncapi_url: str | None = "/asyncapi.json",
    asyncapi_docs_url: str | None = "/asyncapi",
    client_url: str | None = "/fastapi-channels/channels.js",
) -> FastAPI:
    """Give ``app`` channels: a broadcaster (memory:// by default), a rate limiter and error handling.

    The broadcaster and limiter connect when the app starts and disconnect when it stops, around the app's
    own lifespan. ``permission_classes`` and ``throttle_classes`` are the defaults of every channel that
    does not set its own.

    Args:
        url: Broadcast URL: memory://, redis://, rediss://, redis-stream://, postgres:// or kafka://.
        backend: A broadcaster ``BroadcastBackend`` to use instead of a URL.
        broadcast: A ``Broadcast`` you connect and disconnect yourself.
        limiter_url: redis:// to keep rate limits in Redis (shared by processes); in memory otherwise.
        limiter_prefix: Prefix of the rate-limit keys in Redis.
        add_exception_handlers: Register the ``WebSocketException`` handler in the app's handler registry.
        permission_classes: Default channel permission (``AllowAny`` when left out).
        throttle_classes: Default channel-wide limits (``limiter(...)`` or fastapi-limiter ``WebSocketRateLimiter``).
        send_queue_size: Frames that may wait for one connection (None: no count, only ``send_queue_bytes``).
        send_queue_bytes: Characters of text (bytes, for ASCII) that may wait for one connection. A broadcast
            past it cuts the client as too slow (close 1013); the connection's own replies make its session
            stop reading the client's frames until the backlog has drained.
        write_timeout: Seconds one write may wait for a client that does not read before the client is cut.
        presence_url: Where connection counts, ``max_connection`` and member lists are shared: a redis:// URL,
            or memory:// for this process only. Defaults to ``url`` when that is a Redis URL, else memory://.
        presence_ttl: Seconds after which the connections of a process that died without cleaning up no
            longer count (it renews its lease every ``presence_ttl / 3`` seconds).
        namespace: Prefix of every channel name in the backend, of the presence keys in Redis and of the
            channel that carries messages for one connection or user: apps that share a Redis server use
            different namespaces, and then never hear each other.
        allowed_origins: Sites whose pages may connect, besides the app's own (``"https://example.com"``;
            ``"*"``: any). A browser's handshake from any other ``Origin`` is refused with HTTP 403.
        heartbeat_interval: Seconds of silence after which the server sends a client ``{"type":"ping"}``.
        idle_timeout: Seconds without a frame from a client before it is closed with 4408 (twice
            ``heartbeat_interval`` when only that is given; None: never).
        max_lifetime: Seconds after which any connection is closed with 1001, so that clients reconnect
            (for example to pick up new credentials or spread over new servers); None: never.
        asyncapi_url: Where the app's AsyncAPI 3.0 document is served as JSON; None: not served.
        asyncapi_docs_url: Where the page that shows the document to people is served; None: not served.
        client_url: Where the browser client, an ES module, is served (its TypeScript declarations next to it,
            ending in ``.d.ts`` instead of ``.js``); None: not served.
    """
    if not isinstance(app, FastAPI):
        raise TypeError(f"add_channel() takes a FastAPI app, not {type(app).__name__}.")
    for label, path in (("asyncapi_url", asyncapi_url), ("asyncapi_docs_url", asyncapi_docs_url)):
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ValueError(f"{label} must be a path starting with '/', or None to serve nothing, not {path!r}.")
    if client_url is not None:
        types_url_for(client_url)  # a bad path raises before the app is changed
    if asyncapi_url is not None and asyncapi_url == asyncapi_docs_url:
        raise ValueError(f"asyncapi_url and asyncapi_docs_url are both {asyncapi_url!r}: give the page another path.")
    config = FastAPIChannel(
        url=url,
        backend=backend,
        broadcast=broadcast,
        limiter_url=limiter_url,
        limiter_prefix=limiter_prefix,
        permission_classes=permission_classes,
        throttle_classes=throttle_classes,
        send_queue_size=send_queue_size,
        send_queue_bytes=send_queue_bytes,
        write_timeout=write_timeout,
        presence_url=presence_url,
        presence_ttl=presence_ttl,
        namespace=namespace,
        allowed_origins=allowed_origins,
        heartbeat_interval=heartbeat_interval,
        idle_timeout=idle_timeout,
        max_lifetime=max_lifetime,
    )
    setattr(app.state, STATE_KEY, config)
    # Innermost of the app's middleware: every frame still passes through the user's own middleware.
    app.user_middleware.append(Middleware(SendCapture))
    original_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with config.running():
            async with original_lifespan(app_) as state:
                yield state

    app.router.lifespan_context = lifespan
    if add_exception_handlers:
        app.add_exception_handler(WebSocketException, websocket_exception_handler)  # type: ignore[arg-type]
    add_asyncapi_routes(app, url=asyncapi_url, docs_url=asyncapi_docs_url)
    if client_url is not None:
        add_client_routes(app, client_url)
    return app


async def send_to_user(user: str, message: Any, *, channel: str | None = None, app: FastAPI | None = None) -> None:
    """Send ``message`` to every connection of the authenticated ``user`` in the app, on every process.

    Unlike ``BaseChannel.send_to_user``, which reaches the connections one channel object serves, this
    reaches the user in every channel of the app (in ``channel`` only, if given). ``message`` is sent as it
    is when it is a ``str``, else as JSON. Pass ``app`` when several apps with channels run in one process.
    """
    config = _config_of(app)
    text = message if isinstance(message, str) else encode(message)
    await config.layer.send_direct(text, user=user, channel=channel)


def drain(
    app: FastAPI | None = None, *, reason: str = DRAIN_REASON, reconnect_in: tuple[float, float] | None = (1.0, 5.0)
) -> int:
    """Close every connection of this process with 1012 and refuse new ones, before a deploy or a shutdown.

    Each client first gets ``{"type": "drain", "reason": reason, "reconnect_in": seconds}``, with a delay
    drawn from ``reconnect_in`` so that clients come back spread out (to this server's successor, or to
    another behind the load balancer). Returns how many connections were closed.
    """
    return _config_of(app).drain(reason=reason, reconnect_in=reconnect_in)


def _config_of(app: FastAPI | None) -> FastAPIChannel:
    if app is None:
        return get_channel_config()
    config = getattr(app.state, STATE_KEY, None)
    if not isinstance(config, FastAPIChannel):
        raise RuntimeError("This app has no channels configured: call add_channel(app) after creating the FastAPI app.")
    if not config.started:
        raise RuntimeError("The app's channels are not running: send while the app runs (after its startup).")
    return config
