"""The channels a connection is in besides its own: join them, leave them, and leave them all exactly once.

A connection keeps the channel it connected to for its whole life. Server code (``BaseChannel.join`` and
``leave``, in actions or anywhere else) and, where the channel object allows it, the client (the built-in
``subscribe`` and ``unsubscribe`` frames) add and remove others. A join is checked and admitted like a connection
to that channel: the channel object's permission and ``join_permission``, its ``max_connection`` across
processes; then the channel's lifespan enters and its join handlers run, and a channel with history sends what
the client missed and its resume frame. Joins and leaves of one connection take turns; a join or leave handler
(or lifespan) that joins or leaves channels of the same connection does so within the turn that runs it.

When the connection ends it leaves every channel in the fan-out at once; then the leave handlers of the channels
it joined run, the last joined first, each followed by the exit of that channel's lifespan, and those of its own
channel run last.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.websockets import WebSocket

from fastapi_channels.backends import is_unreachable
from fastapi_channels.exceptions import BackendUnavailable, ConnectionLimitExceeded, WebSocketException
from fastapi_channels.history import HistoryPage, Position, Retention
from fastapi_channels.layers import ChannelLayer
from fastapi_channels.lifespan import ChannelEvents
from fastapi_channels.outbox import Connection
from fastapi_channels.permission import PermissionLike
from fastapi_channels.protocol import channel_of, channel_reply, check_channel_name
from fastapi_channels.resume import Resumption, frame_position
from fastapi_channels.stepping import run_to_the_end

__all__ = [
    "JoinableChannel",
    "Membership",
    "Memberships",
    "JOIN_ACTION",
    "DEFAULT_MAX_CHANNELS_PER_CONNECTION",
    "check_max_channels",
]

logger = logging.getLogger("fastapi_channels.memberships")

# The turns the running code is within: a handler of a join or leave, and tasks it started meanwhile, go on.
_turns_held: contextvars.ContextVar[tuple[object, ...]] = contextvars.ContextVar(
    "fastapi_channels_turns_held", default=()
)

JOIN_ACTION = "join"
"""The ``action`` permissions are asked about when a connection joins another channel."""

DEFAULT_MAX_CHANNELS_PER_CONNECTION = 100
"""How many channels one connection may be in at once, its own included, unless its channel object says."""


class JoinableChannel(Protocol):
    """What joining one of its channels needs from a channel object (``BaseChannel`` provides all of it)."""

    max_connection: int | None
    join_permission: PermissionLike
    events: ChannelEvents
    retention: Retention | None

    def topic(self, channel: str) -> str:
        """Return what the channel layer and presence file ``channel`` under."""

    async def check_permissions(
        self, websocket: WebSocket, action: str | None, channel: str, permission: PermissionLike = None
    ) -> None:
        """Raise ``PermissionDenied`` unless the client may join (``action`` None) or run ``action``."""


@dataclass(eq=False)
class Membership:
    """One channel a connection joined besides its own."""

    owner: JoinableChannel
    channel: str
    topic: str
    joined: bool = False
    """Whether its join handlers ran: then its leave handlers run when the connection leaves it."""
    resumption: Resumption | None = None
    """How the connection caught up with the channel's history (channels with history, once caught up)."""
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def run_leave(self, websocket: WebSocket) -> None:
        """Run the leave handlers (if the join handlers ran), then exit the channel's lifespan."""
        try:
            if self.joined:
                await self.owner.events.run_leave(websocket, self.channel)
        finally:
            try:
                await self.stack.aclose()
            except Exception:
                logger.exception("The lifespan of a connection to %r failed on exit", self.channel)


class Memberships:
    """The channels one connection joined besides its own, in join order.

    Args:
        websocket: The connection's websocket.
        connection: Its outbox, which the channel layer files it by.
        layer: The app's channel layer.
        limit: How many channels the connection may be in, its own included.
        buffer_bytes: Characters of live publications held for it while it catches up with a channel's history.
    """

    def __init__(
        self, websocket: WebSocket, connection: Connection, layer: ChannelLayer, *, limit: int, buffer_bytes: int
    ) -> None:
        self.websocket = websocket
        self.connection = connection
        self.limit = limit
        self.closed = False
        """Set when the connection ends: it joins nothing more."""
        self._layer = layer
        self._buffer_bytes = buffer_bytes
        # By topic, in join order; a join in progress holds its place (a join handler joining it again is a no-op).
        self._by_topic: dict[str, Membership] = {}
        self._lock = asyncio.Lock()
        # The turn (of a join or leave) now holding the lock, matched against those the running context holds.
        self._turn_now: object | None = None

    def names(self) -> list[str]:
        """Return the names of the channels joined, in join order."""
        return [membership.channel for membership in self._by_topic.values()]

    async def join(
        self, owner: JoinableChannel, channel: str, *, since: Position | None = None, reply: str | None = None
    ) -> bool:
        """Join ``owner``'s ``channel``; return False when the connection is in it already.

        ``since`` is where a client resumes a channel with history; ``reply`` is sent once the join handlers
        have run, before what the client missed.

        Raises:
            ParseError: ``channel`` is not a name (a non-empty string of at most ``MAX_NAME_LENGTH`` characters).
            WebSocketException: The connection is closing, is in as many channels as it may be, or is in another
                channel of the same name.
            PermissionDenied: The channel's permission or ``join_permission`` refuses.
            ConnectionLimitExceeded: The channel holds ``max_connection`` connections.
            BackendUnavailable: Presence or history cannot be reached.
        """
        channel = check_channel_name(channel)
        topic = owner.topic(channel)
        async with self._turn():
            self._check_open()
            if topic == self.connection.topic or topic in self._by_topic:
                if reply is not None:
                    self.connection.reply(reply)
                return False
            self._check_room(channel)
            await owner.check_permissions(self.websocket, JOIN_ACTION, channel, owner.join_permission)
            self._check_open()  # the permission check may have waited
            membership = self._by_topic[topic] = Membership(owner, channel, topic)
            try:
                await self._enter(membership, since, reply)
            except BaseException:
                if self._by_topic.get(topic) is membership:  # a join handler may have left it already
                    del self._by_topic[topic]
                    await run_to_the_end(self._part(membership))
                raise
            return True

    async def leave(self, owner: JoinableChannel, channel: str) -> bool:
        """Leave ``owner``'s ``channel``, running its leave handlers; return False when the connection was not in it.

        Raises:
            ParseError: ``channel`` is not a name.
            ValueError: ``channel`` is the connection's own channel.
        """
        channel = check_channel_name(channel)
        topic = owner.topic(channel)
        if topic == self.connection.topic:
            raise ValueError(
                f"A connection cannot leave its own channel {channel!r}: close it instead (room.close(websocket))."
            )
        async with self._turn():
            membership = self._by_topic.pop(topic, None)
            if membership is None:
                return False
            await run_to_the_end(self._part(membership))
            return True

    async def close(self) -> list[Membership]:
        """Refuse joins from now on; return the memberships to leave, the last joined first, and forget them.

        The caller takes the connection out of the fan-out, then calls each one's ``run_leave``.
        """
        self.closed = True
        async with self._turn():  # a join in progress in another task finishes first
            parting = list(reversed(self._by_topic.values()))
            self._by_topic.clear()
        return parting

    def resumption(self, channel: str) -> Resumption | None:
        """Return the catch-up of the joined channel with history named ``channel``, if there is one."""
        for membership in self._by_topic.values():
            if membership.channel == channel:
                return membership.resumption
        return None

    # -- the built-in frames ---------------------------------------------------------------------------

    async def subscribe(self, owner: JoinableChannel, frame: Mapping[str, Any], request_id: int | str | None) -> None:
        """Answer a ``subscribe`` frame: join its channel (of ``owner``), resuming from its position if it names one."""
        channel = channel_of(frame)
        since = frame_position(frame)
        await self.join(owner, channel, since=since, reply=channel_reply("subscribe", request_id, channel))

    async def unsubscribe(self, owner: JoinableChannel, frame: Mapping[str, Any], request_id: int | str | None) -> None:
        """Answer an ``unsubscribe`` frame: leave its channel (of ``owner``)."""
        channel = channel_of(frame)
        if owner.topic(channel) == self.connection.topic:
            raise WebSocketException(
                error_msg=f"A connection cannot leave its own channel {channel!r}: close the socket instead.",
                close=False,
            )
        await self.leave(owner, channel)
        written = self.connection.write(channel_reply("unsubscribe", request_id, channel))
        if written is not None:
            await written

    # -- inside ----------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Wait for the connection's other joins and leaves; within its own (a join or leave handler joining), go on."""
        turn = self._turn_now
        if turn is not None and turn in _turns_held.get():
            yield  # within the turn: its own task, or one it started (a clean-up run to the end)
            return
        async with self._lock:
            turn = self._turn_now = object()
            # Tasks started from here on copy the context: work done on behalf of this turn goes on too.
            token = _turns_held.set((*_turns_held.get(), turn))
            try:
                yield
            finally:
                _turns_held.reset(token)
                self._turn_now = None

    def _check_open(self) -> None:
        connection = self.connection
        if self.closed or connection.closing or connection.closed or not self._layer.holds(connection):
            # Not admitted to its own channel yet, or on its way out: a channel joined now could be left behind.
            raise WebSocketException(
                error_msg="The connection is not in its channel (it is closing): it joins no more channels.",
                close=False,
            )

    def _check_room(self, channel: str) -> None:
        if len(self._by_topic) + 1 >= self.limit:
            raise WebSocketException(
                error_msg=f"A connection may be in at most {self.limit} channels, its own included: leave one first.",
                close=False,
            )
        if channel == self.connection.channel or channel in self.names():
            # Broadcast frames name the channel: two of one name could not be told apart.
            raise WebSocketException(
                error_msg=f"The connection is already in another channel named {channel!r}.", close=False
            )

    async def _enter(self, membership: Membership, since: Position | None, reply: str | None) -> None:
        """Admit the connection to the channel, run the lifespan and join handlers, reply, then catch up."""
        owner, websocket, connection, channel = membership.owner, self.websocket, self.connection, membership.channel
        resumption = self._resumption(membership, since)
        try:
            admitted = await self._layer.join(
                connection, membership.topic, channel, max_connections=owner.max_connection, resumption=resumption
            )
        except Exception as exc:
            if is_unreachable(exc):  # subscribing failed: Redis went away after presence admitted
                raise BackendUnavailable(error_msg="The channel cannot be joined right now. Try again later.") from exc
            raise
        if not admitted:
            raise ConnectionLimitExceeded(close=False)  # the connection stays in its other channels
        if resumption is not None:
            # Read now, with live publications held, so that those of the join handlers reach the client too.
            await resumption.prepare()
        await membership.stack.enter_async_context(owner.events.open_lifespan(owner, websocket, channel))
        membership.joined = True
        try:
            await owner.events.run_join(websocket, channel)
        except Exception:
            membership.joined = False  # a join handler refused: no leave handler runs for it
            raise
        if reply is not None:
            connection.reply(reply)
        if resumption is not None:
            await resumption.catch_up()
            membership.resumption = resumption

    async def _part(self, membership: Membership) -> None:
        await self._layer.leave(self.connection, membership.topic)
        await membership.run_leave(self.websocket)

    def _resumption(self, membership: Membership, since: Position | None) -> Resumption | None:
        retention = membership.owner.retention
        if retention is None:
            return None  # a position given for a channel without history is of no use: it is ignored
        layer, topic = self._layer, membership.topic

        async def read(since: int | None, limit: int | None) -> HistoryPage:
            return await layer.read_history(topic, retention, since, limit)

        return Resumption(self.connection, membership.channel, read=read, since=since, buffer_bytes=self._buffer_bytes)


def check_max_channels(value: Any) -> int:
    """Return ``value`` if it is a valid ``max_channels_per_connection``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"max_channels_per_connection must be a positive integer (1: no channel besides its own), not {value!r}."
        )
    return value
