"""Where the publications of channels with history are kept: in this process's memory, or in Redis.

Each broadcast to a channel with history gets the next ``offset`` of the channel's stream, within the stream's
``epoch``: a random name the stream gets when it is created, and a new one when it is lost (the app restarted
on ``memory://``, Redis restarted without persistence, or nobody published for ``HISTORY_META_TTL`` seconds).
A client that knows the offset and epoch of the last publication it received can be sent what it missed.

``RedisHistory`` keeps each stream in a Redis stream next to a hash holding its epoch and last offset. One Lua
script assigns the offset, appends the publication, trims the stream to its size and age, and publishes the
frame: every process agrees on the offsets, and every subscriber receives publications in offset order.
``MemoryHistory`` keeps the same in this process (``memory://`` serves one process).

Reading a channel nobody has published to gives it an epoch too (a client that joins before the first
publication resumes in it), kept only ``HISTORY_PENDING_TTL`` seconds unless a publication comes: reads alone
never hold a channel name for long.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, ClassVar, TypeVar

from pydantic_core import from_json
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fastapi_channels.backends import redact, redis_client
from fastapi_channels.protocol import split_member

__all__ = [
    "HISTORY_META_TTL",
    "HISTORY_PENDING_TTL",
    "History",
    "HistoryPage",
    "HistoryUnavailable",
    "MemoryHistory",
    "Position",
    "Publication",
    "RedisHistory",
    "Retention",
]

HISTORY_META_TTL = 30 * 24 * 3600.0
"""Seconds a stream's epoch and last offset outlive its last publication (then its next one starts a new epoch)."""

HISTORY_PENDING_TTL = 60.0
"""Seconds the epoch given to a reader of a stream nobody has published to is kept for its first publication."""

# Seconds a history read may take before the store counts as unreachable.
OPERATION_TIMEOUT = 5.0

# Seconds between two sweeps of the memory store for streams nobody published to for too long.
SWEEP_INTERVAL = 1.0

T = TypeVar("T")


@dataclass(frozen=True)
class Retention:
    """How much history a channel keeps: its last ``size`` publications, each for ``ttl`` seconds at most."""

    size: int
    ttl: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"history_size must be a positive number of publications, not {self.size!r}.")
        ttl = self.ttl
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < 1e12):
            raise ValueError(f"history_ttl must be a positive number of seconds or None, not {ttl!r}.")

    def stream_ttl(self, meta_ttl: float) -> float:
        """Return the seconds a stream's publications outlive its last publication."""
        return self.ttl if self.ttl is not None else meta_ttl


@dataclass(frozen=True)
class Position:
    """A place in a channel's stream: an offset within an epoch."""

    offset: int
    epoch: str


@dataclass(frozen=True)
class Publication:
    """One publication kept in history: its offset and the message as it was published."""

    offset: int
    text: str
    """The message as it went out: JSON text, or any other text sent as it is."""
    is_json: bool
    """Whether ``text`` is JSON (publication frames carry it as ``"data"``, else as ``"text"``)."""

    @property
    def data(self) -> Any:
        """Return the message decoded from JSON, or its text when it is not JSON."""
        return from_json(self.text) if self.is_json else self.text


@dataclass(frozen=True)
class HistoryPage:
    """Publications read from history, oldest first, with where the stream stands now."""

    publications: list[Publication]
    offset: int
    """The offset of the stream's last publication (0 before the first)."""
    epoch: str
    """The stream's epoch: offsets of another epoch do not compare with these."""
    complete: bool = True
    """Read ``since`` an offset: whether no publication between it and the first one returned is gone."""


class HistoryUnavailable(ConnectionError):
    """The history store cannot be reached."""


def new_epoch() -> str:
    """Return a fresh epoch: 16 random hexadecimal digits."""
    return secrets.token_hex(8)


def _page(offset: int, epoch: str, entries: list[tuple[int, str]], since: int | None, limit: int | None) -> HistoryPage:
    """Build a page from ``entries`` (offset, member), oldest first, all after ``since`` when it is given."""
    complete = True
    if since is not None:
        # Every publication after ``since`` is there when the oldest one kept is the next one.
        complete = since <= offset and (entries[0][0] == since + 1 if entries else since == offset)
        if limit is not None:
            entries = entries[:limit]
    elif limit is not None:
        entries = entries[len(entries) - limit :] if limit else []
    publications = [Publication(entry_offset, *split_member(member)) for entry_offset, member in entries]
    return HistoryPage(publications, offset, epoch, complete)


class History:
    """Where the publications of channels with history are kept (the interface both stores provide)."""

    publishes: ClassVar[bool] = False
    """Whether ``append`` also publishes the frame; otherwise the layer publishes it right after."""

    async def start(self) -> None:
        """Connect to the store, if it has a server."""

    async def stop(self) -> None:
        """Disconnect from the store."""

    async def append(self, topic: str, member: str, retention: Retention, *, head: str, channel: str) -> Position:
        """Give ``member`` the next offset of ``topic``'s stream and keep it; return its position.

        A store that ``publishes`` also publishes the frame ``render_publication(head, ...)`` on the backend
        ``channel``, in the same step, so that subscribers receive publications in offset order.
        """
        raise NotImplementedError

    async def read(
        self, topic: str, retention: Retention, *, since: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """Return the kept publications of ``topic``: after ``since`` (the first ``limit``), else the last ``limit``."""
        raise NotImplementedError


@dataclass
class _Stream:
    epoch: str
    entries: deque[tuple[int, float, str]]
    top: int = 0
    touched: float = field(default_factory=time.monotonic)
    ttl: float | None = None


class MemoryHistory(History):
    """Keep history in this process's memory (for ``memory://``, which serves one process).

    Each stream keeps at most its ``size`` publications; a publication older than the ``ttl`` is dropped; a
    stream nobody published to for ``meta_ttl`` seconds (or its ``ttl``, for its publications) is dropped, and
    one that was only read, ``pending_ttl`` seconds after the first read. Stopping the app drops everything, as
    a restart would: clients then resume into a new epoch.
    """

    def __init__(self, *, meta_ttl: float = HISTORY_META_TTL, pending_ttl: float = HISTORY_PENDING_TTL) -> None:
        self.meta_ttl = meta_ttl
        self.pending_ttl = pending_ttl
        self._streams: dict[str, _Stream] = {}
        self._swept = time.monotonic()

    async def stop(self) -> None:
        """Forget every stream."""
        self._streams.clear()

    async def append(self, topic: str, member: str, retention: Retention, *, head: str, channel: str) -> Position:
        """Keep ``member`` as the next publication of ``topic``; the layer publishes its frame."""
        now = time.monotonic()
        stream = self._stream(topic, retention, now)
        stream.top += 1
        stream.entries.append((stream.top, now, member))
        stream.touched = now
        stream.ttl = retention.ttl
        return Position(stream.top, stream.epoch)

    async def read(
        self, topic: str, retention: Retention, *, since: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """Return the kept publications of ``topic`` (see ``History.read``)."""
        stream = self._stream(topic, retention, time.monotonic())
        kept, top = stream.entries, stream.top
        complete = True
        if since is None:
            count = len(kept) if limit is None else min(limit, len(kept))
            chosen = islice(kept, len(kept) - count, None)
        else:
            # Offsets are consecutive from the oldest kept one to the top: skip to since + 1 without a comparison.
            oldest = kept[0][0] if kept else top + 1
            skip = max(0, since + 1 - oldest)
            chosen = islice(kept, skip, None if limit is None else skip + limit)
            complete = since <= top and (since == top or oldest <= since + 1)
        publications = [Publication(offset, *split_member(member)) for offset, _, member in chosen]
        return HistoryPage(publications, top, stream.epoch, complete)

    def held(self) -> int:
        """Return how many publications the store holds, in all streams."""
        return sum(len(stream.entries) for stream in self._streams.values())

    def _stream(self, topic: str, retention: Retention, now: float) -> _Stream:
        if now - self._swept >= SWEEP_INTERVAL:
            self._sweep(now)
        stream = self._streams.get(topic)
        if stream is None:
            stream = self._streams[topic] = _Stream(new_epoch(), deque(maxlen=retention.size), touched=now)
        elif stream.entries.maxlen != retention.size:
            stream.entries = deque(stream.entries, maxlen=retention.size)
        if retention.ttl is not None:
            oldest = now - retention.ttl
            entries = stream.entries
            while entries and entries[0][1] <= oldest:
                entries.popleft()
        return stream

    def _sweep(self, now: float) -> None:
        """Drop the streams, and the publications, that would have expired in Redis."""
        self._swept = now
        for topic, stream in list(self._streams.items()):
            idle = now - stream.touched
            # A stream only read (top 0) holds no publication: keep its epoch briefly, for a first one.
            if idle > (max(self.meta_ttl, stream.ttl or 0.0) if stream.top else self.pending_ttl):
                del self._streams[topic]
            elif stream.ttl is not None and idle > stream.ttl:
                stream.entries.clear()


# KEYS: stream, meta. ARGV: member, size, ttl ms (0: none), stream expiry ms, meta expiry ms, a new epoch,
# frame head, backend channel ('' publishes nothing), deadline ms of Redis's clock (0: none).
# Returns {offset, epoch, now}; {-1, '', now} without doing anything when Redis runs it after the deadline.
# The frame is built as protocol.render_publication builds it: head .. offset .. ',"epoch":"' .. epoch .. '",'
# .. member .. '}'.
_APPEND = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local deadline = tonumber(ARGV[9])
if deadline > 0 and now > deadline then return {-1, '', now} end
local stream, meta = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  -- A new stream (or one whose epoch was lost): nothing kept before belongs to it.
  epoch = ARGV[6]
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', epoch, 'top', 0)
end
local offset = string.format('%d', redis.call('HINCRBY', meta, 'top', 1))
redis.call('XADD', stream, 'MAXLEN', ARGV[2], '*', 'o', offset, 'm', ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('XTRIM', stream, 'MINID', now - ttl) end
redis.call('PEXPIRE', stream, ARGV[4])
redis.call('PEXPIRE', meta, ARGV[5])
if ARGV[8] ~= '' then
  redis.call('PUBLISH', ARGV[8], ARGV[7] .. offset .. ',"epoch":"' .. epoch .. '",' .. ARGV[1] .. '}')
end
return {offset, epoch, now}
"""

# KEYS: stream, meta. ARGV: a new epoch, its expiry ms until a first publication, since (-1: none), how many
# of the newest to read (-1: all), how many of the first after since to return (-1: all).
# Returns {top, epoch, now, entries newest first}.
_READ = """
local stream, meta = KEYS[1], KEYS[2]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  -- Created on first read, so that a client joining before the first publication can resume from it; kept
  -- briefly unless a publication comes, so that reading names never fills Redis.
  epoch = ARGV[1]
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', epoch, 'top', 0)
  redis.call('PEXPIRE', meta, ARGV[2])
end
local top = redis.call('HGET', meta, 'top')
local since, count, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local skip = 0
if since >= 0 then
  count = math.max(0, tonumber(top) - since)
  -- Offsets are consecutive up to the top: the i-th newest entry is top - i + 1, so skipping count - limit
  -- of the newest leaves the first limit after since.
  if limit == 0 then count = 0 elseif limit > 0 and limit < count then skip = count - limit end
end
local entries = {}
if count < 0 then
  entries = redis.call('XREVRANGE', stream, '+', '-')
elseif count > 0 then
  entries = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', count)
end
if skip > 0 then
  local kept = {}
  for i = skip + 1, #entries do kept[#kept + 1] = entries[i] end
  entries = kept
end
return {top, epoch, now, entries}
"""


class RedisHistory(History):
    """Keep history in Redis, shared by every process of the app (for ``redis://`` and ``rediss://``).

    Keys are ``<namespace>:history:stream:<topic>`` (a Redis stream) and ``<namespace>:history:meta:<topic>``
    (its epoch and last offset). A stream is trimmed to its ``size`` on every publication, and to its ``ttl``
    too when it has one; its keys expire ``ttl`` (else ``meta_ttl``) seconds after its last publication, its
    epoch ``meta_ttl`` seconds after (a stream only read: ``pending_ttl`` seconds after its first read). Appending
    also publishes the frame, from the same Lua script, unless
    Redis gets to it later than ``publish_deadline`` seconds after it was sent (then it does nothing).

    Args:
        url: The Redis server, the one the app broadcasts through.
        namespace: The app's namespace: apps sharing one Redis server keep apart.
        meta_ttl: Seconds a stream's epoch and last offset outlive its last publication.
        pending_ttl: Seconds the epoch of a stream that was only read is kept for its first publication.
    """

    publishes: ClassVar[bool] = True
    publish_deadline = 1.0
    """Seconds after sending after which Redis drops an append instead of running it."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "fastapi-channels",
        meta_ttl: float = HISTORY_META_TTL,
        pending_ttl: float = HISTORY_PENDING_TTL,
    ) -> None:
        self.url = url
        self.prefix = f"{namespace}:history"
        self.meta_ttl = meta_ttl
        self.pending_ttl = pending_ttl
        self._redis: Redis | None = None
        self._append: Any = None
        self._read: Any = None
        # Redis's clock minus our monotonic clock, in milliseconds: turns a deadline of ours into one of Redis's.
        # Measured on first use: an app whose channels keep no history never talks to Redis about it.
        self._clock_offset: float | None = None

    def keys(self, topic: str) -> list[str]:
        """Return the keys of ``topic``'s stream and of its epoch and last offset."""
        return [f"{self.prefix}:stream:{topic}", f"{self.prefix}:meta:{topic}"]

    async def start(self) -> None:
        """Prepare the connection pool; connections open when a channel with history first needs one."""
        self._redis = redis_client(self.url)
        self._append = self._redis.register_script(_APPEND)
        self._read = self._redis.register_script(_READ)
        self._clock_offset = None

    async def stop(self) -> None:
        """Close the connections; the history stays in Redis."""
        redis, self._redis = self._redis, None
        if redis is not None:
            await redis.aclose()

    async def append(self, topic: str, member: str, retention: Retention, *, head: str, channel: str) -> Position:
        """Keep ``member`` as the next publication of ``topic`` and publish its frame on ``channel``, atomically.

        Raises:
            redis.exceptions.TimeoutError: Redis got to it later than ``publish_deadline`` and dropped it.
        """
        if self._redis is None:
            raise HistoryUnavailable("History is not running: the app's lifespan has not started.")
        ttl_ms = _milliseconds(retention.ttl) if retention.ttl is not None else 0
        args: list[str | int] = [member, retention.size, ttl_ms, _milliseconds(retention.stream_ttl(self.meta_ttl))]
        args += [_milliseconds(max(self.meta_ttl, retention.ttl or 0.0)), new_epoch(), head, channel]
        if self._clock_offset is None:
            seconds, microseconds = await self._redis.time()
            self._clock_offset = seconds * 1000 + microseconds / 1000 - time.monotonic() * 1000
        sent = time.monotonic()
        for _ in range(2):
            deadline = int((sent + self.publish_deadline) * 1000 + self._clock_offset)
            offset, epoch, now = await self._append(keys=self.keys(topic), args=[*args, deadline])
            # Redis read its clock before we read the answer, so the offset can only come out too small: Redis
            # then drops a late append slightly early, never runs one after we gave up.
            self._clock_offset = now - time.monotonic() * 1000
            if int(offset) >= 0:
                return Position(int(offset), _text(epoch))
            # Dropped although answered in time: Redis's clock jumped ahead since the offset was measured. The
            # offset is fresh now, so try once more against the same give-up time.
            if time.monotonic() - sent >= self.publish_deadline:
                break
        raise RedisTimeoutError(
            f"Redis at {redact(self.url)!r} got to a publication later than publish_deadline "
            f"({self.publish_deadline} s) after it was sent, and dropped it"
        )

    async def read(
        self, topic: str, retention: Retention, *, since: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """Return the kept publications of ``topic`` (see ``History.read``).

        Raises:
            HistoryUnavailable: Redis cannot be reached, or did not answer within 5 seconds.
        """
        if self._redis is None:
            raise HistoryUnavailable("History is not running: the app's lifespan has not started.")
        count = -1 if limit is None or since is not None else limit
        first = limit if since is not None and limit is not None else -1
        args = [new_epoch(), _milliseconds(self.pending_ttl), since if since is not None else -1, count, first]
        top, epoch, now, raw = await self._guard(self._read(keys=self.keys(topic), args=args))
        oldest = now - _milliseconds(retention.ttl) if retention.ttl is not None else 0
        entries: list[tuple[int, str]] = []
        for entry_id, fields in reversed(raw):
            # An entry past its ttl that no publication has trimmed yet is gone all the same.
            if int(entry_id.split(b"-", 1)[0]) >= oldest:
                values = dict(zip(fields[::2], fields[1::2], strict=True))
                entries.append((int(values[b"o"]), _text(values[b"m"])))
        return _page(int(top), _text(epoch), entries, since, limit)

    async def _guard(self, pending: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(pending, OPERATION_TIMEOUT)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise HistoryUnavailable(f"Redis at {redact(self.url)!r} cannot be reached: {exc!r}") from exc


def _milliseconds(seconds: float) -> int:
    # At least 1: Redis reads an expiry of 0 as "now".
    return max(1, int(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
