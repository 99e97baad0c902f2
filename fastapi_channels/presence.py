"""Who is connected, and where: connection counts, admission under ``max_connection`` and member lists.

``LocalPresence`` knows this process's connections only. ``RedisPresence`` shares them between every process
using one Redis server: each process holds a lease that it renews every third of ``ttl``; a process that
dies without cleaning up (SIGKILL, power loss) stops renewing, and the next reader removes its connections
once the lease has run out. All reads and the admission check run as Lua scripts, so racing processes can
never overfill a channel. Redis's own clock is used, so hosts with skewed clocks agree on leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from fastapi_channels.backends import redact, redis_client

__all__ = ["Member", "Presence", "LocalPresence", "RedisPresence", "DEFAULT_PRESENCE_TTL"]

logger = logging.getLogger("fastapi_channels.presence")

DEFAULT_PRESENCE_TTL = 30.0
"""Seconds after which the connections of a process that stopped renewing its lease no longer count."""

# Seconds a presence operation may take before Redis counts as unreachable.
OPERATION_TIMEOUT = 5.0

# A renewal is one small script call, so renewing often costs little and shortens the gap after a Redis restart.
MAX_RENEW_INTERVAL = 2.0

T = TypeVar("T")

# Removes a process's connections from their channels; every script that drops a process shares it.
_FORGET = """
local function forget(prefix, node)
  local owned = prefix .. ':node:' .. node
  for _, entry in ipairs(redis.call('SMEMBERS', owned)) do
    local space = string.find(entry, ' ', 1, true)
    redis.call('HDEL', prefix .. ':channel:' .. string.sub(entry, space + 1), string.sub(entry, 1, space - 1))
  end
  redis.call('DEL', owned)
end
"""

# Every script but removal first drops the processes whose lease has run out, with their connections.
_PURGE = (
    _FORGET
    + """
local prefix = ARGV[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local nodes = prefix .. ':nodes'
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', now)) do
  forget(prefix, dead)
  redis.call('ZREM', nodes, dead)
end
"""
)

# ARGV: prefix, node, channel, connection id, member JSON, max connections (0: no limit).
# Returns 1 when admitted, 0 when the channel is full, -1 when this process has no lease (Redis lost it).
_ADMIT = (
    _PURGE
    + """
local node, channel, id, member, limit = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
if not redis.call('ZSCORE', nodes, node) then return -1 end
local key = prefix .. ':channel:' .. channel
if limit > 0 and redis.call('HLEN', key) >= limit then return 0 end
redis.call('HSET', key, id, member)
redis.call('SADD', prefix .. ':node:' .. node, id .. ' ' .. channel)
return 1
"""
)

# ARGV: prefix, node, channel, connection id.
_REMOVE = """
local prefix, node, channel, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HDEL', prefix .. ':channel:' .. channel, id)
redis.call('SREM', prefix .. ':node:' .. node, id .. ' ' .. channel)
return 1
"""

# ARGV: prefix, channel, connection id, member JSON. Rewrites a member that is still there.
_UPDATE = """
local key = ARGV[1] .. ':channel:' .. ARGV[2]
if redis.call('HEXISTS', key, ARGV[3]) == 1 then redis.call('HSET', key, ARGV[3], ARGV[4]) end
return 1
"""

# ARGV: prefix, channel. Returns the members of the channel as a flat id, JSON, id, JSON... list.
_MEMBERS = _PURGE + "return redis.call('HGETALL', prefix .. ':channel:' .. ARGV[2])\n"

# ARGV: prefix, channel.
_COUNT = _PURGE + "return redis.call('HLEN', prefix .. ':channel:' .. ARGV[2])\n"

# ARGV: prefix, node, lease milliseconds. Renews the lease; returns 1 when the lease had been lost.
_RENEW = (
    _PURGE
    + """
local lost = redis.call('ZSCORE', nodes, ARGV[2]) == false
redis.call('ZADD', nodes, now + tonumber(ARGV[3]), ARGV[2])
if lost then return 1 end
return 0
"""
)

# ARGV: prefix, node, lease milliseconds, then channel, id, member JSON for each live connection.
# Replaces everything Redis holds for this process with what the process actually holds.
_RESYNC = (
    _PURGE
    + """
local node = ARGV[2]
forget(prefix, node)
redis.call('ZADD', nodes, now + tonumber(ARGV[3]), node)
local owned = prefix .. ':node:' .. node
for index = 4, #ARGV, 3 do
  local channel, id = ARGV[index], ARGV[index + 1]
  redis.call('HSET', prefix .. ':channel:' .. channel, id, ARGV[index + 2])
  redis.call('SADD', owned, id .. ' ' .. channel)
end
return 1
"""
)

# ARGV: prefix, node. Removes this process and its connections at once (graceful shutdown).
_DROP = (
    _FORGET
    + """
local prefix, node = ARGV[1], ARGV[2]
forget(prefix, node)
redis.call('ZREM', prefix .. ':nodes', node)
return 1
"""
)


class PresenceUnavailable(ConnectionError):
    """The shared presence store cannot be reached."""


@dataclasses.dataclass(frozen=True)
class Member:
    """One connection of a channel: its id, its authenticated user (None if anonymous) and its process."""

    connection_id: str
    user: str | None
    node: str
    joined_at: float

    def to_json(self) -> str:
        """Return the member as JSON text."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Member:
        """Read a member written by ``to_json``."""
        fields = json.loads(text)
        return cls(
            connection_id=str(fields["connection_id"]),
            user=fields.get("user"),
            node=str(fields["node"]),
            joined_at=float(fields["joined_at"]),
        )


class Presence:
    """This process's view of who is connected: the base keeps this process's own connections."""

    def __init__(self, *, node: str | None = None) -> None:
        self.node = node or uuid.uuid4().hex
        self._local: dict[str, dict[str, Member]] = {}

    def new_member(self, connection_id: str, user: str | None) -> Member:
        """Describe a connection of this process."""
        return Member(connection_id=connection_id, user=user, node=self.node, joined_at=time.time())

    async def start(self) -> None:
        """Connect to the shared store, if any."""

    async def stop(self) -> None:
        """Forget this process's connections, everywhere, at once."""
        self._local.clear()

    async def add(self, channel: str, member: Member, *, max_connections: int | None = None) -> bool:
        """Admit ``member`` unless ``channel`` already holds ``max_connections``; return whether it was admitted."""
        members = self._local.setdefault(channel, {})
        if max_connections is not None and len(members) >= max_connections:
            return False
        members[member.connection_id] = member
        return True

    async def remove(self, channel: str, connection_id: str) -> None:
        """Remove a connection that left ``channel``."""
        members = self._local.get(channel)
        if members is not None:
            members.pop(connection_id, None)
            if not members:
                del self._local[channel]

    async def set_user(self, channel: str, connection_id: str, user: str | None) -> Member | None:
        """Record that the connection now belongs to ``user`` (it logged in or out); return the new member."""
        members = self._local.get(channel, {})
        member = members.get(connection_id)
        if member is None:
            return None
        members[connection_id] = member = dataclasses.replace(member, user=user)
        return member

    async def count(self, channel: str) -> int:
        """Return how many connections ``channel`` has."""
        return len(self._local.get(channel, ()))

    def held(self) -> int:
        """Return how many entries (a connection in a channel) this process holds, in every channel."""
        return sum(len(members) for members in self._local.values())

    async def members(self, channel: str) -> list[Member]:
        """Return the connections of ``channel``, oldest first."""
        return sorted(self._local.get(channel, {}).values(), key=lambda member: member.joined_at)


class LocalPresence(Presence):
    """Presence within one process: the default with ``memory://`` and any backend without a ``presence_url``."""


class RedisPresence(Presence):
    """Presence shared by every process that uses the same Redis server and ``namespace``.

    Args:
        url: The Redis server (``redis://`` or ``rediss://``).
        namespace: Prefix of the keys; apps sharing one Redis server keep apart with different namespaces.
        ttl: Seconds after which a process that stopped renewing its lease no longer counts.
    """

    def __init__(self, url: str, *, namespace: str = "fastapi-channels", ttl: float = DEFAULT_PRESENCE_TTL) -> None:
        if ttl <= 0:
            raise ValueError(f"presence_ttl must be a positive number of seconds, not {ttl!r}.")
        super().__init__()
        self.url = url
        self.prefix = f"{namespace}:presence"
        self.ttl = ttl
        self._redis: Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._renewer: asyncio.Task[None] | None = None
        # Set when Redis may no longer hold exactly our connections: the next renewal rewrites them.
        self._stale = False
        # A rewrite sends a snapshot of our connections: no admission or removal may slip in between.
        self._writing = asyncio.Lock()

    @property
    def renew_interval(self) -> float:
        """Seconds between lease renewals: a third of the lease, so two may fail before it runs out.

        At most 2 s: after Redis restarts empty, the next renewal writes this process's connections back.
        """
        return min(self.ttl / 3, MAX_RENEW_INTERVAL)

    async def start(self) -> None:
        """Connect, take a lease and start renewing it."""
        self._redis = redis_client(self.url)
        self._scripts = {
            name: self._redis.register_script(source)
            for name, source in (
                ("admit", _ADMIT),
                ("remove", _REMOVE),
                ("update", _UPDATE),
                ("members", _MEMBERS),
                ("count", _COUNT),
                ("renew", _RENEW),
                ("resync", _RESYNC),
                ("drop", _DROP),
            )
        }
        try:
            await self._resync()
        except (RedisError, OSError) as exc:
            await self._redis.aclose()
            self._redis = None
            raise ConnectionError(f"Cannot reach Redis at {redact(self.url)!r} for presence: {exc}") from exc
        self._renewer = asyncio.create_task(self._renew_forever(), name="fastapi-channels-presence")

    async def stop(self) -> None:
        """Stop renewing and remove this process's connections from Redis at once."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        await super().stop()
        if self._redis is not None:
            try:
                await self._scripts["drop"](args=[self.prefix, self.node])
            except (RedisError, OSError) as exc:
                logger.warning("Could not remove this process's connections from Redis (%s); they expire", exc)
            await self._redis.aclose()
            self._redis = None

    async def add(self, channel: str, member: Member, *, max_connections: int | None = None) -> bool:
        """Admit ``member`` atomically across every process; raises ``PresenceUnavailable`` if Redis is down."""
        args: list[str | int] = [self.prefix, self.node, channel, member.connection_id, member.to_json()]
        args.append(max_connections or 0)
        async with self._writing:
            admitted = await self._run("admit", args)
            if admitted == -1:
                # Redis lost our lease (restarted, or we were cut off for longer than the ttl): rewrite it first.
                await self._guard(self._resync())
                admitted = await self._run("admit", args)
            if admitted == 1:
                await super().add(channel, member)
                return True
            return False

    async def remove(self, channel: str, connection_id: str) -> None:
        """Remove a connection; while Redis is down, the next renewal after it returns removes it."""
        async with self._writing:
            await super().remove(channel, connection_id)
            # On failure _guard marks us stale: the next renewal after Redis returns writes the removal.
            with contextlib.suppress(PresenceUnavailable):
                await self._run("remove", [self.prefix, self.node, channel, connection_id])

    async def set_user(self, channel: str, connection_id: str, user: str | None) -> Member | None:
        """Record the connection's new user on every process; while Redis is down, once it is back."""
        async with self._writing:
            member = await super().set_user(channel, connection_id, user)
            if member is not None:
                with contextlib.suppress(PresenceUnavailable):
                    await self._run("update", [self.prefix, channel, connection_id, member.to_json()])
            return member

    async def count(self, channel: str) -> int:
        """Return how many connections ``channel`` has on every process."""
        return int(await self._run("count", [self.prefix, channel]))

    async def members(self, channel: str) -> list[Member]:
        """Return the connections of ``channel`` on every process, oldest first."""
        flat = await self._run("members", [self.prefix, channel])
        members = [Member.from_json(flat[index + 1]) for index in range(0, len(flat), 2)]
        return sorted(members, key=lambda member: member.joined_at)

    async def _run(self, script: str, args: list[str | int]) -> Any:
        if self._redis is None:
            raise PresenceUnavailable("Presence is not running: the app's lifespan has not started.")
        return await self._guard(self._scripts[script](args=args))

    async def _guard(self, pending: Awaitable[T]) -> T:
        try:
            # Bounded: a Redis that stopped answering must not hold a handshake or a leave for long.
            return await asyncio.wait_for(pending, OPERATION_TIMEOUT)
        except asyncio.CancelledError:
            # Cancelled mid-call (a client that left during its join): Redis may have run it all the same.
            self._stale = True
            raise
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            # A write may have been applied before the answer was lost: the next renewal rewrites ours.
            self._stale = True
            raise PresenceUnavailable(f"Redis at {redact(self.url)!r} cannot be reached: {exc!r}") from exc

    async def _resync(self) -> None:
        args: list[str | int] = [self.prefix, self.node, int(self.ttl * 1000)]
        for channel, members in self._local.items():
            for member in members.values():
                args += [channel, member.connection_id, member.to_json()]
        await self._scripts["resync"](args=args)
        self._stale = False

    async def _renew_forever(self) -> None:
        failing = False
        while True:
            # While Redis is away, try every second so presence is back soon after Redis is.
            await asyncio.sleep(min(self.renew_interval, 1.0) if failing else self.renew_interval)
            try:
                async with self._writing:
                    lost = await self._scripts["renew"](args=[self.prefix, self.node, int(self.ttl * 1000)])
                    if lost or self._stale:
                        await self._resync()
                    if lost:
                        logger.warning("Redis had lost this process's presence; rewrote %d connection(s)", self.held())
            except (RedisError, OSError) as exc:
                if not failing:
                    logger.warning("Cannot renew presence in Redis (%s); retrying", exc)
                failing = True
                continue
            if failing:
                logger.warning("Presence in Redis is renewed again")
            failing = False
