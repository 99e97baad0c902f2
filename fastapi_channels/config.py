"""The per-app configuration that ``add_channel`` builds, and how a connection or a broadcast finds it."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from starlette import status
from starlette.websockets import WebSocket

from fastapi_channels.backends import create_broadcast, redact, redis_client
from fastapi_channels.history import History, MemoryHistory, RedisHistory
from fastapi_channels.layers import ChannelLayer
from fastapi_channels.metrics import ChannelMetrics
from fastapi_channels.origin import check_allowed_origins
from fastapi_channels.outbox import DEFAULT_SEND_QUEUE_BYTES, DEFAULT_SEND_QUEUE_SIZE, DEFAULT_WRITE_TIMEOUT
from fastapi_channels.permission import AllowAny, PermissionLike, check_permission_like
from fastapi_channels.presence import DEFAULT_PRESENCE_TTL, LocalPresence, Presence, RedisPresence
from fastapi_channels.protocol import render
from fastapi_channels.throttling import LimiterBackend, check_throttle_like
from fastapi_channels.timeouts import check_timeout

if TYPE_CHECKING:
    from broadcaster import Broadcast, BroadcastBackend

__all__ = ["FastAPIChannel", "get_channel_config", "STATE_KEY", "DRAIN_REASON"]

logger = logging.getLogger("fastapi_channels")

DRAIN_REASON = "Server restarting: reconnect."
"""The close reason ``drain`` gives by default."""

STATE_KEY = "fastapi_channels"
"""The attribute of ``app.state`` that holds the app's ``FastAPIChannel``."""

# Configurations whose app lifespan is running, so that code outside a connection can find one.
_running: list[FastAPIChannel] = []


class FastAPIChannel:
    """One app's channel configuration: the broadcast layer, the rate-limit backend and the defaults."""

    def __init__(
        self,
        *,
        url: str | None = None,
        backend: BroadcastBackend | None = None,
        broadcast: Broadcast | None = None,
        limiter_url: str | None = None,
        limiter_prefix: str = "fastapi-channels",
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
    ) -> None:
        if sum(option is not None for option in (url, backend, broadcast)) > 1:
            raise ValueError("Pass only one of url=, backend= and broadcast= to add_channel().")
        check_permission_like(permission_classes)
        check_throttle_like(throttle_classes)
        if limiter_url is not None and urlparse(limiter_url).scheme not in ("redis", "rediss", "memory"):
            raise ValueError(
                f"limiter_url must be a redis://, rediss:// or memory:// URL, not {redact(limiter_url)!r}."
            )
        if send_queue_size is not None and (not isinstance(send_queue_size, int) or send_queue_size < 1):
            raise ValueError(f"send_queue_size must be a positive number of frames or None, not {send_queue_size!r}.")
        if not isinstance(send_queue_bytes, int) or send_queue_bytes < 1:
            raise ValueError(f"send_queue_bytes must be a positive integer, not {send_queue_bytes!r}.")
        if not isinstance(write_timeout, int | float) or isinstance(write_timeout, bool) or write_timeout <= 0:
            raise ValueError(f"write_timeout must be a positive number of seconds, not {write_timeout!r}.")
        self.allowed_origins = check_allowed_origins(allowed_origins)
        self.heartbeat_interval = check_timeout("heartbeat_interval", heartbeat_interval)
        self.idle_timeout = check_timeout("idle_timeout", idle_timeout)
        if self.idle_timeout is None and self.heartbeat_interval is not None:
            # A client that answers no ping for a whole interval after it is due is gone.
            self.idle_timeout = 2 * self.heartbeat_interval
        self.max_lifetime = check_timeout("max_lifetime", max_lifetime)
        self.send_queue_size = send_queue_size
        self.send_queue_bytes = send_queue_bytes
        self.write_timeout = float(write_timeout)
        self.url = url or "memory://"
        self._own_broadcast = broadcast is None
        self.broadcast = broadcast or create_broadcast(self.url, backend=backend)
        self.limiter_url = limiter_url
        self.permission_classes: PermissionLike = (AllowAny,) if permission_classes is None else permission_classes
        self.throttle_classes: tuple[Any, ...] = tuple(throttle_classes or ())
        self.presence = _build_presence(presence_url, self.url, namespace=namespace, ttl=presence_ttl)
        self.metrics = ChannelMetrics()
        """This app's counters (connections, frames, errors...): ``metrics.stats()`` or Prometheus."""
        # Only what we publish through ourselves can carry history: the store must publish where the layer listens.
        history = _build_history(self.url, namespace=namespace) if backend is None and broadcast is None else None
        self.layer = ChannelLayer(
            self.broadcast, presence=self.presence, namespace=namespace, metrics=self.metrics, history=history
        )
        self.limiters = LimiterBackend(prefix=limiter_prefix)
        self.started = False
        self.draining = False
        """While true (after ``drain``), new connections are refused with 1012."""
        # Counts startups: what a channel prepares for this app (its rate limiters) is valid for one run only.
        self.generation = 0

    async def startup(self) -> None:
        """Connect the broadcaster, presence and the limiter store."""
        if self._own_broadcast:
            await self.broadcast.connect()
        try:
            await self.layer.start()
        except BaseException:
            if self._own_broadcast:
                await self.broadcast.disconnect()
            raise
        if self.limiter_url and urlparse(self.limiter_url).scheme in ("redis", "rediss"):
            redis = redis_client(self.limiter_url)
            try:
                await redis.ping()
            except Exception as exc:
                await redis.aclose()
                await self.layer.stop()
                if self._own_broadcast:
                    await self.broadcast.disconnect()
                raise ConnectionError(
                    f"Cannot reach Redis at {redact(self.limiter_url)!r} for rate limits: {exc}"
                ) from exc
            self.limiters.redis = redis
        self.generation += 1
        self.started = True
        _running.append(self)

    async def shutdown(self) -> None:
        """Disconnect what ``startup`` connected."""
        self.started = False
        if self in _running:
            _running.remove(self)
        # Presence goes first: a graceful shutdown frees this process's slots at once.
        try:
            await self.layer.stop()
        except Exception:
            logger.exception("Stopping the channel layer failed")
        await self.limiters.aclose()
        if self._own_broadcast:
            try:
                await self.broadcast.disconnect()
            except Exception:
                logger.exception("Disconnecting the broadcaster failed")

    def drain(self, *, reason: str = DRAIN_REASON, reconnect_in: tuple[float, float] | None = (1.0, 5.0)) -> int:
        """Close every connection of this process with 1012 and refuse new ones; return how many were closed.

        Before its close, each client gets ``{"type": "drain", "reason": ..., "reconnect_in": seconds}``, a
        delay drawn between the two bounds of ``reconnect_in`` so that clients do not all come back at once.
        """
        self.draining = True
        closed = 0
        for connection in self.layer.local_connections():
            if reconnect_in is not None:
                delay = round(random.uniform(*reconnect_in), 1)
                connection.reply(render({"type": "drain", "reason": reason, "reconnect_in": delay}))
            connection.close(status.WS_1012_SERVICE_RESTART, reason)
            if connection.stop_waiting is not None:
                connection.stop_waiting()
            closed += 1
        return closed

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FastAPIChannel]:
        """Run ``startup`` and ``shutdown`` around the block."""
        await self.startup()
        try:
            yield self
        finally:
            await self.shutdown()


def _build_presence(presence_url: str | None, url: str, *, namespace: str, ttl: float) -> Presence:
    """Share presence through Redis when ``presence_url`` (or else the broadcast ``url``) is a Redis URL."""
    if not isinstance(ttl, int | float) or isinstance(ttl, bool) or ttl <= 0:
        raise ValueError(f"presence_ttl must be a positive number of seconds, not {ttl!r}.")
    if not isinstance(namespace, str) or not namespace:
        raise ValueError(f"namespace must be a non-empty string, not {namespace!r}.")
    chosen = presence_url if presence_url is not None else url
    parsed = urlparse(chosen)
    if parsed.scheme in ("redis", "rediss"):
        return RedisPresence(chosen, namespace=namespace, ttl=ttl)
    if parsed.scheme == "redis-stream":
        # The same server as the streams: only the scheme differs.
        return RedisPresence(parsed._replace(scheme="redis").geturl(), namespace=namespace, ttl=ttl)
    if presence_url is not None and parsed.scheme != "memory":
        raise ValueError(f"presence_url must be a redis://, rediss:// or memory:// URL, not {redact(presence_url)!r}.")
    return LocalPresence()


def _build_history(url: str, *, namespace: str) -> History | None:
    """Keep history in memory for memory://, in Redis for redis:// and rediss://; other backends keep none."""
    scheme = urlparse(url).scheme
    if scheme == "memory":
        return MemoryHistory()
    if scheme in ("redis", "rediss"):
        # The same server the layer subscribes through: the script that appends a publication publishes it too.
        return RedisHistory(url, namespace=namespace)
    return None


def get_channel_config(websocket: WebSocket | None = None) -> FastAPIChannel:
    """Return the configuration of ``websocket``'s app, or of the one running app when there is no websocket."""
    if websocket is not None:
        app = websocket.scope.get("app")
        config = getattr(getattr(app, "state", None), STATE_KEY, None)
        if not isinstance(config, FastAPIChannel):
            raise RuntimeError(
                "This app has no channels configured: call add_channel(app) after creating the FastAPI app."
            )
        if not config.started:
            raise RuntimeError(
                "The channel layer is not running: the app's lifespan did not start. Serve the app with uvicorn, "
                "or in tests use `with TestClient(app) as client:` so that startup runs."
            )
        return config
    if len(_running) == 1:
        return _running[0]
    if not _running:
        raise RuntimeError(
            "No app with channels is running: call add_channel(app) and start the app (in tests, "
            "`with TestClient(app) as client:`) before broadcasting."
        )
    raise RuntimeError("Several apps with channels are running: pass app= to say which one to use.")
