"""Our broadcaster backends (memory, Redis pub/sub, PostgreSQL) and the switch from a broadcast URL to a backend.

broadcaster 0.3.1's own Redis backend starts listening before redis-py registers the first subscription
and then waits forever (with current redis-py), and its listener dies silently when the connection drops.
``RedisPubSubBackend`` plugs into broadcaster's extension point instead: one reader task owns the pub/sub
connection, confirms each subscription before ``subscribe`` returns, and reconnects with backoff,
resubscribing every channel. Its publishes carry a deadline that Redis itself checks, so a message the sender
gave up on (Redis was frozen or cut off) is never published once Redis answers again.

The memory and Redis backends also subscribe to glob patterns of channel names (``PatternBackend``): Redis with
``PSUBSCRIBE``, memory by matching each message. Topic subscriptions (``fastapi_channels.topics``) use them.

URLs in messages and logs go through ``redact``: a password never appears there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlparse, urlsplit

from broadcaster import Broadcast, BroadcastBackend, Event
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "REDIS_MAX_CONNECTIONS",
    "MemoryPubSubBackend",
    "PatternBackend",
    "PatternDelivery",
    "RedisPubSubBackend",
    "PostgresBackend",
    "backend_of",
    "glob_matcher",
    "create_broadcast",
    "redis_client",
    "redact",
    "is_unreachable",
]

logger = logging.getLogger("fastapi_channels.backends")

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

# ``password=`` in the query string is another way to give redis-py the password.
_QUERY_PASSWORD = re.compile(r"(?i)([?&;]password=)[^&;#]*")

# ARGV: channel, message, deadline in milliseconds of Redis's clock. Returns {receivers, now}, or {-1, now}
# without publishing when Redis runs it after the deadline (it was frozen or cut off; the sender gave up).
_PUBLISH_BEFORE_DEADLINE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if now > tonumber(ARGV[3]) then return {-1, now} end
return {redis.call('PUBLISH', ARGV[1], ARGV[2]), now}
"""


def redact(url: str) -> str:
    """Return ``url`` with its password shown as ``***`` (``redis://user:***@host``), fit for messages and logs."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:  # not even a URL: keep only what follows the last "@", if any
        return f"***@{url.rpartition('@')[2]}" if "@" in url else url
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        url = url.replace(netloc, f"{userinfo.partition(':')[0]}:***@{host}", 1)
    return _QUERY_PASSWORD.sub(r"\1***", url)


def is_unreachable(exc: BaseException) -> bool:
    """Return whether ``exc`` says the backend cannot be reached (refused, lost, timed out), not that it refused one."""
    return isinstance(exc, (*_CONNECTION_ERRORS, asyncio.TimeoutError))


PatternDelivery = Callable[[str, str], None]
"""Receives each message of a pattern subscription: ``deliver(channel, message)``; it must not wait."""


@runtime_checkable
class PatternBackend(Protocol):
    """A broadcaster backend that also subscribes to every channel whose name matches a glob."""

    async def psubscribe(self, pattern: str, deliver: PatternDelivery) -> None:
        """Call ``deliver(channel, message)`` for each message of a channel matching ``pattern`` from now on."""

    async def punsubscribe(self, pattern: str) -> None:
        """Stop delivering the messages of ``pattern``."""


class MemoryPubSubBackend(BroadcastBackend):
    """Publish and subscribe within this process (``memory://``), to channels and to glob patterns of them.

    Patterns use Redis's glob syntax: ``*``, ``?`` and ``\\`` escapes.
    """

    _published: asyncio.Queue[Event]

    def __init__(self, url: str = "memory://") -> None:
        self._subscribed: set[str] = set()
        self._patterns: dict[str, tuple[re.Pattern[str], PatternDelivery]] = {}

    async def connect(self) -> None:
        """Start a fresh queue of published messages (each run of the app may have its own event loop)."""
        self._published = asyncio.Queue()

    async def disconnect(self) -> None:
        """Forget the pattern subscriptions: a new run subscribes again."""
        self._patterns.clear()

    async def subscribe(self, channel: str) -> None:
        """Receive ``channel``'s messages."""
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``'s messages."""
        self._subscribed.discard(channel)

    async def psubscribe(self, pattern: str, deliver: PatternDelivery) -> None:
        """Deliver the messages of every channel matching ``pattern``."""
        self._patterns[pattern] = (glob_matcher(pattern), deliver)

    async def punsubscribe(self, pattern: str) -> None:
        """Stop delivering the messages of ``pattern``."""
        self._patterns.pop(pattern, None)

    async def publish(self, channel: str, message: Any) -> None:
        """Queue ``message`` for the subscribers of ``channel``."""
        await self._published.put(Event(channel=channel, message=message))

    async def next_published(self) -> Event:
        """Return the next message of a subscribed channel, handing every message to the matching patterns."""
        while True:
            event = await self._published.get()
            if self._patterns:
                for matcher, deliver in list(self._patterns.values()):
                    if matcher.fullmatch(event.channel):
                        _deliver_safely(deliver, event.channel, event.message)
            if event.channel in self._subscribed:
                return event


def glob_matcher(glob: str) -> re.Pattern[str]:
    """Compile a glob in Redis syntax (``*``, ``?`` and ``\\`` escapes) into a regular expression of the same names."""
    parts: list[str] = []
    index = 0
    while index < len(glob):
        char = glob[index]
        if char == "\\" and index + 1 < len(glob):
            parts.append(re.escape(glob[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.S)


def _deliver_safely(deliver: PatternDelivery, channel: str, message: str) -> None:
    # One failing subscriber must not end the reader every subscription shares.
    try:
        deliver(channel, message)
    except Exception:
        logger.exception("Delivering a message of %r to a pattern subscription failed", channel)


REDIS_MAX_CONNECTIONS = 64
"""Connections one client (broadcast, presence, limiter) opens to Redis at most; more commands wait for one."""


def redis_client(url: str) -> Redis:
    """Return a Redis client for ``url`` that fails within seconds and retries a command on a fresh connection.

    After a Redis restart every pooled connection is stale, and the first command on each would otherwise
    fail (redis-py's ``from_url`` does not retry by default). Its pool makes a command wait for a free
    connection: redis-py 8's default pool refuses the 101st command in flight at once (``MaxConnectionsError``),
    which a burst of broadcasts reaches, and which would look like Redis being down.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=5,
        socket_connect_timeout=5,
        socket_timeout=5,
        retry=Retry(ExponentialBackoff(), 3),
    )
    return Redis.from_pool(pool)


class RedisPubSubBackend(BroadcastBackend):
    """Publish and subscribe through Redis pub/sub (``redis://`` and ``rediss://`` URLs), to channels and patterns."""

    subscribe_timeout = 5.0
    backoff_initial = 0.1
    backoff_max = 5.0
    # A publish sent to a Redis that froze (SIGSTOP, a stalled VM, a network partition) sits in Redis's socket
    # buffer: closing the connection does not take it back, and Redis would run it once it wakes.
    publish_deadline = 1.0
    """Seconds after sending after which Redis drops a publish instead of running it; at most ``PUBLISH_TIMEOUT``."""

    # Bound to the event loop that first waits on them, so connect() makes them afresh: each start of the
    # app may run on a new loop (every `with TestClient(app)` does).
    _wakeup: asyncio.Event
    _queue: asyncio.Queue[Event]

    def __init__(self, url: str) -> None:
        self._url = url
        self._redis: Redis | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: set[str] = set()
        self._confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._patterns: dict[str, PatternDelivery] = {}
        self._pattern_confirmations: dict[str, list[asyncio.Future[None]]] = {}
        self._publish_script: Any = None
        # Redis's clock minus our monotonic clock, in milliseconds: turns a deadline of ours into one of Redis's.
        self._clock_offset = 0.0

    async def connect(self) -> None:
        """Open the connections, failing fast when Redis cannot be reached."""
        self._wakeup = asyncio.Event()
        self._queue = asyncio.Queue()
        self._redis = redis_client(self._url)
        self._publish_script = self._redis.register_script(_PUBLISH_BEFORE_DEADLINE)
        try:
            seconds, microseconds = await self._redis.time()
        except _CONNECTION_ERRORS as exc:
            await self._redis.aclose()
            raise ConnectionError(f"Cannot reach Redis at {redact(self._url)!r} for broadcasting: {exc}") from exc
        self._clock_offset = seconds * 1000 + microseconds / 1000 - time.monotonic() * 1000
        self._pubsub = self._redis.pubsub()
        self._reader = asyncio.create_task(self._read(), name="fastapi-channels-redis-reader")

    async def disconnect(self) -> None:
        """Stop reading and close the connections, leaving the backend ready to connect again."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass
        # A new connection starts with no subscriptions, and these futures belong to the old loop.
        self._channels.clear()
        self._confirmations.clear()
        self._patterns.clear()
        self._pattern_confirmations.clear()
        # Forgotten, so that a leave finishing after shutdown cannot open a fresh connection nobody closes.
        pubsub, self._pubsub = self._pubsub, None
        redis, self._redis = self._redis, None
        if pubsub is not None:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        if redis is not None:
            await redis.aclose()

    async def subscribe(self, channel: str) -> None:
        """Subscribe and wait until Redis confirms, so no later publish is missed."""
        assert self._pubsub is not None, "connect() first"
        self._channels.add(channel)
        await self._confirmed(self._confirmations, channel, self._pubsub.subscribe(channel))

    async def psubscribe(self, pattern: str, deliver: PatternDelivery) -> None:
        """Deliver the messages of every channel matching the glob ``pattern``, once Redis confirms."""
        if self._pubsub is None:
            raise ConnectionError("The Redis backend is not connected: pattern subscriptions need the app running.")
        self._patterns[pattern] = deliver
        try:
            await self._confirmed(self._pattern_confirmations, pattern, self._pubsub.psubscribe(pattern))
        except BaseException:
            self._patterns.pop(pattern, None)
            raise

    async def punsubscribe(self, pattern: str) -> None:
        """Stop delivering the messages of ``pattern``."""
        self._patterns.pop(pattern, None)
        if self._pubsub is not None:
            try:
                await self._pubsub.punsubscribe(pattern)
            except _CONNECTION_ERRORS:
                pass  # the reader resubscribes only self._patterns after reconnecting

    async def _confirmed(
        self, confirmations: dict[str, list[asyncio.Future[None]]], name: str, request: Awaitable[Any]
    ) -> None:
        """Send a (pattern) subscription and wait until Redis confirms it."""
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        confirmations.setdefault(name, []).append(confirmed)
        try:
            await request
            self._wakeup.set()
            await asyncio.wait_for(asyncio.shield(confirmed), self.subscribe_timeout)
        except BaseException:
            waiting = confirmations.get(name, [])
            if confirmed in waiting:
                waiting.remove(confirmed)
            raise

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``."""
        self._channels.discard(channel)
        if self._pubsub is not None:
            try:
                await self._pubsub.unsubscribe(channel)
            except _CONNECTION_ERRORS:
                # The reader resubscribes only self._channels after reconnecting.
                pass

    async def publish(self, channel: str, message: Any) -> None:
        """Publish ``message`` (text) to ``channel``, unless Redis gets to it later than ``publish_deadline``.

        Raises:
            redis.exceptions.TimeoutError: Redis got to it too late and dropped it.
        """
        assert self._redis is not None, "connect() first"
        sent = time.monotonic()
        if await self._publish_before_deadline(channel, message, sent):
            return
        waited = time.monotonic() - sent
        # Dropped although answered in time: Redis's clock jumped ahead since the offset was measured. The offset
        # is fresh now, so try once more against the same give-up time.
        if waited < self.publish_deadline and await self._publish_before_deadline(channel, message, sent):
            return
        raise RedisTimeoutError(
            f"Redis at {redact(self._url)!r} got to a message {waited:.2f} s after it was sent, later than "
            f"publish_deadline ({self.publish_deadline} s), and dropped it"
        )

    async def _publish_before_deadline(self, channel: str, message: Any, sent: float) -> bool:
        """Publish unless Redis runs the script after ``sent + publish_deadline``; return whether it published."""
        deadline = int((sent + self.publish_deadline) * 1000 + self._clock_offset)
        receivers, now = await self._publish_script(args=[channel, message, deadline])
        # Redis read its clock before we read the answer, so the offset can only come out too small: Redis then
        # drops a late message slightly early, never publishes one after we gave up.
        self._clock_offset = now - time.monotonic() * 1000
        return int(receivers) >= 0

    async def next_published(self) -> Event:
        """Return the next message received on a subscribed channel."""
        return await self._queue.get()

    async def _read(self) -> None:
        delay = self.backoff_initial
        healthy = True
        while True:
            if not healthy:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                healthy = await self._reconnect()
                continue
            assert self._pubsub is not None
            if not self._pubsub.subscribed:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except _CONNECTION_ERRORS as exc:
                logger.warning("Redis pub/sub connection to %s lost (%s); reconnecting", redact(self._url), exc)
                healthy = False
                continue
            delay = self.backoff_initial
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = _text(message["channel"])
        if kind == "message":
            self._queue.put_nowait(Event(channel=channel, message=_text(message["data"])))
        elif kind == "pmessage":
            deliver = self._patterns.get(_text(message["pattern"]))
            if deliver is not None:
                _deliver_safely(deliver, channel, _text(message["data"]))
        elif kind in ("subscribe", "psubscribe"):
            confirmations = self._confirmations if kind == "subscribe" else self._pattern_confirmations
            for confirmed in confirmations.pop(channel, []):
                if not confirmed.done():
                    confirmed.set_result(None)

    async def _reconnect(self) -> bool:
        """Replace the broken pub/sub connection and resubscribe; return whether it worked."""
        old, self._pubsub = self._pubsub, None
        if old is not None:
            try:
                await old.aclose()  # type: ignore[no-untyped-call]
            except Exception:  # the old connection is already broken
                logger.debug("closing the broken pub/sub connection failed", exc_info=True)
        assert self._redis is not None
        self._pubsub = self._redis.pubsub()
        try:
            await self._redis.ping()
            if self._channels:
                await self._pubsub.subscribe(*self._channels)
            if self._patterns:
                await self._pubsub.psubscribe(*self._patterns)
        except _CONNECTION_ERRORS as exc:
            logger.warning("Redis at %s is still unreachable: %s", redact(self._url), exc)
            return False
        logger.warning(
            "Redis pub/sub reconnected to %s; resubscribed %d channel(s)", redact(self._url), len(self._channels)
        )
        return True


class PostgresBackend(BroadcastBackend):
    """Publish and subscribe through PostgreSQL LISTEN/NOTIFY (``postgres://`` and ``postgresql://`` URLs).

    broadcaster 0.3.1's own backend runs LISTEN, UNLISTEN and NOTIFY on one asyncpg connection at once, which
    fails with "another operation is in progress" as soon as two channels are joined, or a message is
    published while one is joined. This one listens on one connection and notifies on another, and runs one
    operation at a time on each. Needs asyncpg (the ``postgres`` extra).
    """

    # Bound to the event loop that first waits on them, so connect() makes them afresh: each start of the
    # app may run on a new loop (every `with TestClient(app)` does).
    _listen_lock: asyncio.Lock
    _notify_lock: asyncio.Lock
    _queue: asyncio.Queue[Event]

    def __init__(self, url: str) -> None:
        self._url = url
        self._listener: Any = None
        self._notifier: Any = None
        # PostgreSQL channel names (hashed when too long) back to the names broadcaster subscribed to.
        self._names: dict[str, str] = {}

    async def connect(self) -> None:
        """Open the listening and the notifying connections."""
        import asyncpg  # type: ignore[import-untyped]

        self._listen_lock = asyncio.Lock()
        self._notify_lock = asyncio.Lock()
        self._queue = asyncio.Queue()
        try:
            self._listener = await asyncpg.connect(self._url)
            self._notifier = await asyncpg.connect(self._url)
        except (OSError, asyncpg.PostgresError) as exc:
            await self.disconnect()
            raise ConnectionError(f"Cannot reach PostgreSQL at {redact(self._url)!r} for broadcasting: {exc}") from exc

    async def disconnect(self) -> None:
        """Close both connections, leaving the backend ready to connect again."""
        for connection in (self._listener, self._notifier):
            if connection is not None:
                await connection.close()
        self._listener = self._notifier = None

    async def subscribe(self, channel: str) -> None:
        """LISTEN to ``channel``."""
        async with self._listen_lock:
            self._names[_pg_channel(channel)] = channel
            await self._listener.add_listener(_pg_channel(channel), self._on_notification)

    async def unsubscribe(self, channel: str) -> None:
        """Stop listening to ``channel``; a no-op once disconnected."""
        async with self._listen_lock:
            if self._listener is not None:
                await self._listener.remove_listener(_pg_channel(channel), self._on_notification)

    async def publish(self, channel: str, message: Any) -> None:
        """NOTIFY ``channel`` with ``message`` (text)."""
        async with self._notify_lock:
            await self._notifier.execute("SELECT pg_notify($1, $2)", _pg_channel(channel), message)

    async def next_published(self) -> Event:
        """Return the next notification received on a channel listened to."""
        return await self._queue.get()

    def _on_notification(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self._queue.put_nowait(Event(channel=self._names.get(channel, channel), message=payload))


def _pg_channel(channel: str) -> str:
    """Return a PostgreSQL channel name for ``channel``: identifiers are cut at 63 bytes, so long names are hashed."""
    if len(channel.encode()) <= 63:
        return channel
    return "fastapi_channels_" + hashlib.sha256(channel.encode()).hexdigest()[:40]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# The backend of each Broadcast that create_broadcast built: broadcaster keeps its own private.
_backends: weakref.WeakKeyDictionary[Broadcast, BroadcastBackend] = weakref.WeakKeyDictionary()


def backend_of(broadcast: Broadcast) -> BroadcastBackend | None:
    """Return the backend ``create_broadcast`` built ``broadcast`` with; None for a ``Broadcast`` built elsewhere."""
    return _backends.get(broadcast)


def create_broadcast(url: str, *, backend: BroadcastBackend | None = None) -> Broadcast:
    """Build a ``Broadcast`` for ``backend``, or for ``url`` with our own backends for memory, Redis and PostgreSQL."""
    if backend is None:
        backend = _backend_for(url)
    if backend is None:
        try:
            return Broadcast(url)
        except ValueError:
            raise ValueError(
                f"Unsupported broadcast URL {redact(url)!r}: use memory://, redis://, rediss://, redis-stream://, "
                "postgres:// or kafka://, or pass backend= / broadcast=."
            ) from None
    broadcast = Broadcast(backend=backend)
    _backends[broadcast] = backend
    return broadcast


def _backend_for(url: str) -> BroadcastBackend | None:
    scheme = urlparse(url).scheme
    if scheme == "memory":
        return MemoryPubSubBackend(url)
    if scheme in ("redis", "rediss"):
        return RedisPubSubBackend(url)
    if scheme in ("postgres", "postgresql"):
        return PostgresBackend(url)
    return None
