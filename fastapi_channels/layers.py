"""The channel layer: publish through broadcaster, one subscription per channel per process, local fan-out.

Messages for one connection or one user travel on one extra channel, ``<namespace>.direct``, that every
process subscribes to; each process hands them to its own matching connections. Who is connected, and
admission under ``max_connection``, is the job of ``presence``; each connection's outbox (``outbox``) keeps
a client that stops reading from holding up the others.

Channels with history publish through the history store (``history``), which gives each publication its
offset; a connection that joins such a channel sees live publications through its ``Resumption`` (``resume``)
until it has caught up.

A connection is in its own channel and may join others (``join``/``leave``). From its first join on, it gets
the plain broadcasts of each of its channels wrapped in broadcast frames that name the channel; publication
frames name theirs already. A connection that never joins another channel costs nothing more per message.

Topic subscriptions (``subscribe_pattern``) hear every channel whose name matches a pattern, through the
backend's glob subscriptions, one per glob per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from broadcaster import Broadcast
from starlette.websockets import WebSocket

# create_broadcast and DEFAULT_SEND_QUEUE_SIZE lived here before (as did Connection): the old paths still work.
from fastapi_channels.backends import PatternBackend, backend_of, create_broadcast, is_unreachable  # noqa: F401
from fastapi_channels.breaker import CircuitBreaker
from fastapi_channels.exceptions import BackendUnavailable, PermissionDenied
from fastapi_channels.history import History, HistoryPage, HistoryUnavailable, Position, Retention
from fastapi_channels.metrics import ChannelMetrics
from fastapi_channels.outbox import CONNECTION_KEY, DEFAULT_SEND_QUEUE_SIZE, Connection  # noqa: F401
from fastapi_channels.presence import LocalPresence, Presence, PresenceUnavailable
from fastapi_channels.protocol import (
    broadcast_head,
    publication_head,
    publication_member,
    render_broadcast,
    render_publication,
)
from fastapi_channels.resume import Resumption
from fastapi_channels.topics import DEFAULT_TOPIC_QUEUE_SIZE, TopicPattern, TopicSubscription

__all__ = ["ChannelLayer", "PUBLISH_TIMEOUT", "BREAKER_FAILURE_THRESHOLD", "BREAKER_RESET_TIMEOUT"]

logger = logging.getLogger("fastapi_channels.layers")

PUBLISH_TIMEOUT = 1.0
"""Seconds after which a publish that has not gone through fails with ``BackendUnavailable`` (never a hang)."""

BREAKER_FAILURE_THRESHOLD = 1
"""Publishes in a row that fail because the backend cannot be reached before publishing fails fast."""

BREAKER_RESET_TIMEOUT = 1.0
"""Seconds publishing fails fast, without trying the backend, before one publish probes it again."""

_NOT_SENT = "The message could not be sent: the backend cannot be reached."
_NO_HISTORY = (
    "This app keeps no history: channels with history_size need add_channel(url=...) with memory:// (one process) "
    "or redis:// / rediss:// (several)."
)


_NO_PATTERNS = (
    "Topic subscriptions need a backend that subscribes to patterns: add_channel(url=...) with memory://, redis:// "
    "or rediss://, or a backend= with psubscribe() and punsubscribe()."
)


@dataclass
class _Group:
    # The channel's name as clients know it, for the broadcast frames that wrap its messages.
    name: str = ""
    # Whether plain messages are wrapped for connections in several channels: publication frames never are.
    wraps: bool = True
    # The connections sent each message as it is...
    members: set[Connection] = field(default_factory=set)
    # ...and those in several channels, sent it wrapped in a broadcast frame (disjoint from members).
    wrapped: set[Connection] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pump: asyncio.Task[None] | None = None
    # Connections still catching up with the channel's history: each live frame goes through their resumption.
    resuming: dict[Connection, Resumption] = field(default_factory=dict)
    # The start of the broadcast frames that wrap its messages, built once rather than on every message.
    head: str = field(init=False)
    # On a channel with history, the last frame delivered: what a resume frame's answer names.
    last: str | None = None

    def __post_init__(self) -> None:
        self.head = broadcast_head(self.name)

    def last_delivered(self) -> str | None:
        return self.last

    def holds(self, connection: Connection) -> bool:
        return connection in self.members or connection in self.wrapped

    def size(self) -> int:
        return len(self.members) + len(self.wrapped)


class ChannelLayer:
    """Publish to channels and fan incoming messages out to this process's connections.

    Args:
        broadcast: The connected ``Broadcast`` every process shares.
        presence: Who is connected (``LocalPresence`` by default: this process only).
        namespace: Names the channel that carries messages for one connection or one user.
        metrics: The app's counters (publish failures are counted here).
        history: Where channels with history keep their publications (None: no channel may have history).
    """

    def __init__(
        self,
        broadcast: Broadcast,
        *,
        presence: Presence | None = None,
        namespace: str = "fastapi-channels",
        metrics: ChannelMetrics | None = None,
        history: History | None = None,
    ) -> None:
        self.broadcast = broadcast
        self.history = history
        self.metrics = metrics if metrics is not None else ChannelMetrics()
        self.presence = presence or LocalPresence()
        self.direct_channel = f"{namespace}.direct"
        # Every other topic goes to the backend as "<namespace>:<topic>": apps that share a Redis server, but not
        # a namespace, never hear each other, and no name a client chooses reaches the direct channel.
        self.prefix = f"{namespace}:"
        self._groups: dict[str, _Group] = {}
        self._by_id: dict[str, Connection] = {}
        self._by_user: dict[str, set[Connection]] = {}
        self._direct = _Group()
        # The other channels each connection joined (topics, in join order): present from its first join on.
        self._joined: dict[Connection, list[str]] = {}
        # The history each group of channel objects keeps, and the first object used that said so (see claim_group).
        self._retention_of_group: dict[str, tuple[Retention | None, str]] = {}
        # Topic subscriptions by the glob the backend matches for them.
        self._patterns: dict[str, set[TopicSubscription]] = {}
        self._patterns_lock = asyncio.Lock()
        # The settings are read here, so changes made before add_channel builds the layer apply to it.
        self._breaker = CircuitBreaker(failure_threshold=BREAKER_FAILURE_THRESHOLD, reset_timeout=BREAKER_RESET_TIMEOUT)

    def claim_group(self, group: str, retention: Retention | None, owner: str) -> None:
        """Record that ``owner``, a channel object of ``group``, keeps ``retention`` history (None: none).

        Raises:
            ValueError: An object of the same group used before keeps other history: the channels they share
                would be one history stream for some connections and a plain fan-out for others.
        """
        claimed = self._retention_of_group.setdefault(group, (retention, owner))
        if claimed[0] != retention:
            raise ValueError(
                f"{owner} and {claimed[1]} share the group {group!r} (its channels) but keep different history "
                f"({_describe(retention)} and {_describe(claimed[0])}): give them the same history_size and "
                "history_ttl, or different groups."
            )

    async def start(self) -> None:
        """Start presence and listen for messages addressed to this process's connections and users."""
        self._retention_of_group.clear()  # objects are used afresh in a new run
        # A new run starts trusting the backend again, whatever the last run learnt about it.
        self._breaker = CircuitBreaker(failure_threshold=BREAKER_FAILURE_THRESHOLD, reset_timeout=BREAKER_RESET_TIMEOUT)
        await self.presence.start()
        try:
            if self.history is not None:
                await self.history.start()
            try:
                async with self._direct.lock:
                    await self._start_pump(self.direct_channel, self._direct, deliver=self._deliver_direct)
            except BaseException:
                if self.history is not None:
                    await self.history.stop()
                raise
        except BaseException:
            await self.presence.stop()
            raise

    async def stop(self) -> None:
        """Stop listening for direct messages and remove this process's connections from presence."""
        for subscriptions in self._patterns.values():
            for subscription in subscriptions:
                subscription.close()  # their readers' iterations end
        self._patterns.clear()
        pump, self._direct.pump = self._direct.pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        if self.history is not None:
            try:
                await self.history.stop()
            except Exception:
                logger.exception("Stopping the history store failed")
        await self.presence.stop()

    async def publish(self, channel: str, text: str) -> None:
        """Send ``text`` to every connection of ``channel`` on every process sharing the backend.

        Raises:
            BackendUnavailable: The backend refused the message, did not take it within ``PUBLISH_TIMEOUT``, or
                is known to be down: then it fails at once for ``BREAKER_RESET_TIMEOUT`` s before one tries again.
            PermissionDenied: ``channel`` is the reserved channel of direct messages.
        """
        self.check_channel(channel)
        await self._publish(self.prefix + channel, text)

    async def _publish(self, channel: str, text: str) -> None:
        # While the backend is known to be down, fail at once: waiting on it again would only build a backlog.
        breaker = self._breaker
        if not breaker.allow():
            self.metrics.publish_failures += 1
            raise BackendUnavailable(error_msg=_NOT_SENT)
        try:
            if sys.version_info >= (3, 11):
                # Unlike wait_for, a timeout scope starts no extra task: publishing is on every message's path.
                async with asyncio.timeout(PUBLISH_TIMEOUT):
                    await self.broadcast.publish(channel, text)
            else:
                await asyncio.wait_for(self.broadcast.publish(channel, text), PUBLISH_TIMEOUT)
        except Exception as exc:
            raise self._failed(breaker, channel, exc) from exc
        self._succeeded(breaker)

    async def publish_to_history(
        self, channel: str, name: str, text: str, *, is_json: bool, retention: Retention
    ) -> Position:
        """Keep ``text`` in the history of ``channel`` and send its publication frame to every connection of it.

        ``name`` is the channel's name as clients know it (publication frames carry it); ``is_json`` says
        whether ``text`` is JSON (sent as the frame's ``"data"``) or any other text (sent as ``"text"``).
        Returns the publication's offset and epoch.

        Raises:
            BackendUnavailable: As ``publish``.
            PermissionDenied: ``channel`` is the reserved channel of direct messages.
            RuntimeError: The app keeps no history (its broadcast URL is neither memory:// nor redis://).
        """
        self.check_channel(channel)
        store = self._history_store()
        breaker = self._breaker
        if not breaker.allow():
            self.metrics.publish_failures += 1
            raise BackendUnavailable(error_msg=_NOT_SENT)
        target, head, member = self.prefix + channel, publication_head(name), publication_member(text, is_json=is_json)
        try:
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(PUBLISH_TIMEOUT):
                    position = await self._append(store, channel, retention, target, head, member)
            else:
                position = await asyncio.wait_for(
                    self._append(store, channel, retention, target, head, member), PUBLISH_TIMEOUT
                )
        except Exception as exc:
            raise self._failed(breaker, target, exc) from exc
        self._succeeded(breaker)
        return position

    async def _append(
        self, store: History, channel: str, retention: Retention, target: str, head: str, member: str
    ) -> Position:
        position = await store.append(channel, member, retention, head=head, channel=target)
        if not store.publishes:
            # Nothing awaits between the offset and the publish (the memory store's append never waits), so
            # publications go out in offset order.
            await self.broadcast.publish(target, render_publication(head, position.offset, position.epoch, member))
        return position

    async def read_history(
        self, channel: str, retention: Retention, since: int | None = None, limit: int | None = None
    ) -> HistoryPage:
        """Return the kept publications of ``channel``: after ``since`` (the first ``limit``), else the last ``limit``.

        Raises:
            BackendUnavailable: The history store cannot be reached.
            RuntimeError: The app keeps no history.
        """
        try:
            return await self._history_store().read(channel, retention, since=since, limit=limit)
        except HistoryUnavailable as exc:
            logger.warning("Reading the history of %r failed: %s", channel, exc)
            raise BackendUnavailable(
                error_msg="The channel's history cannot be read right now. Try again later."
            ) from exc

    def _history_store(self) -> History:
        if self.history is None:
            raise RuntimeError(_NO_HISTORY)
        return self.history

    def _failed(self, breaker: CircuitBreaker, channel: str, exc: Exception) -> BackendUnavailable:
        """Count and log a publish that failed; return the error for the caller."""
        self.metrics.publish_failures += 1
        # A backend that answered but refused this one message is not down: only "unreachable" counts.
        was_closed = breaker.state == "closed"
        if is_unreachable(exc):
            breaker.record_failure()
        # Failed probes are not logged: a long outage must not flood the log.
        if was_closed:
            logger.warning("Publishing to %r failed: %s: %s", channel, type(exc).__name__, exc)
            if breaker.state != "closed":
                logger.warning("Publishes fail at once now; one tries again every %s s", breaker.reset_timeout)
        return BackendUnavailable(error_msg=_NOT_SENT)

    @staticmethod
    def _succeeded(breaker: CircuitBreaker) -> None:
        if breaker.state != "closed":
            logger.warning("Publishing works again")
        breaker.record_success()

    async def send_direct(
        self,
        text: str,
        *,
        connection_id: str | None = None,
        user: str | None = None,
        channel: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Send ``text`` to one connection, or to every connection of ``user``.

        With ``channel`` only connections to that channel receive it; with ``endpoint`` only connections
        served by that channel object (``BaseChannel.endpoint``).
        """
        if (connection_id is None) == (user is None):
            raise ValueError("Address a direct message to exactly one of connection_id= and user=.")
        envelope = {"connection": connection_id, "user": user, "channel": channel, "endpoint": endpoint, "text": text}
        await self._publish(self.direct_channel, json.dumps(envelope, separators=(",", ":")))

    def check_channel(self, channel: str) -> None:
        """Refuse the channel that carries direct messages: whoever joined it could read and forge them.

        Raises:
            PermissionDenied: ``channel`` is ``<namespace>.direct``.
        """
        if channel == self.direct_channel:
            raise PermissionDenied(error_msg=f"The channel name {channel!r} is reserved.")

    @staticmethod
    def connection_for(websocket: WebSocket) -> Connection | None:
        """Return the live connection of ``websocket``, if it is being served on this process."""
        connection = websocket.scope.get(CONNECTION_KEY)
        return connection if isinstance(connection, Connection) else None

    @staticmethod
    def track(connection: Connection) -> None:
        """Make ``connection`` reachable through its websocket (for personal messages and error frames)."""
        connection.websocket.scope[CONNECTION_KEY] = connection

    @staticmethod
    def untrack(connection: Connection) -> None:
        """Forget ``connection``: messages for its websocket are dropped from now on."""
        scope = connection.websocket.scope
        if scope.get(CONNECTION_KEY) is connection:
            del scope[CONNECTION_KEY]

    def local_connections(self) -> list[Connection]:
        """Return every connection this process holds, in any channel."""
        return list(self._by_id.values())

    def count(self, channel: str) -> int:
        """Return how many connections this process holds in the topic ``channel`` (``presence`` counts all)."""
        group = self._groups.get(channel)
        return group.size() if group else 0

    def connections(self, channel: str) -> list[Connection]:
        """Return this process's connections in ``channel``."""
        group = self._groups.get(channel)
        return [*group.members, *group.wrapped] if group else []

    def topics(self) -> list[str]:
        """Return the topics this process holds connections in (and so is subscribed to)."""
        return list(self._groups)

    def holds(self, connection: Connection) -> bool:
        """Return whether ``connection`` is in its own channel on this process (admitted, and not gone yet)."""
        return self._by_id.get(connection.id) is connection

    def joined(self, connection: Connection) -> list[str]:
        """Return the topics ``connection`` joined besides its own, in join order."""
        return list(self._joined.get(connection, ()))

    async def add(
        self, connection: Connection, *, max_connections: int | None = None, resumption: Resumption | None = None
    ) -> bool:
        """Admit ``connection`` to its channel unless it is full; subscribe the process on first use.

        With ``resumption``, live frames of the channel go through it until it is done (channels with history).

        Raises:
            BackendUnavailable: Presence is shared through Redis and Redis cannot be reached.
            PermissionDenied: The connection asks for the reserved channel of direct messages.
        """
        self.check_channel(connection.channel)
        if not await self._enter(connection, connection.topic, connection.channel, max_connections, resumption):
            return False
        self._index(connection)
        return True

    async def join(
        self,
        connection: Connection,
        topic: str,
        name: str,
        *,
        max_connections: int | None = None,
        resumption: Resumption | None = None,
    ) -> bool:
        """Admit ``connection``, already in its own channel, to another one unless it is full.

        ``name`` is the channel's name as clients know it (the broadcast frames carry it). From the first join
        on, the connection gets the plain broadcasts of all its channels wrapped in broadcast frames.

        Raises:
            BackendUnavailable: Presence is shared through Redis and Redis cannot be reached.
        """
        joined = self._joined.get(connection)
        first = joined is None
        if joined is None:
            # Marked first, so that it enters the new channel's group as a connection in several channels.
            joined = self._joined[connection] = []
        try:
            admitted = await self._enter(connection, topic, name, max_connections, resumption)
        except BaseException:
            if first:
                self._joined.pop(connection, None)
            raise
        if not admitted:
            if first:
                self._joined.pop(connection, None)
            return False
        joined.append(topic)
        if first:
            # From now on the broadcasts of its own channel say which channel they come from, too.
            group = self._groups.get(connection.topic)
            if group is not None and group.wraps and connection in group.members:
                group.members.discard(connection)
                group.wrapped.add(connection)
        return True

    async def leave(self, connection: Connection, topic: str) -> None:
        """Remove ``connection`` from the channel ``topic`` it joined; its broadcasts stay wrapped."""
        joined = self._joined.get(connection)
        if joined is not None and topic in joined:
            joined.remove(topic)
        await self._exit(connection, topic)

    async def discard(self, connection: Connection) -> None:
        """Remove ``connection`` from its channel and every other it joined; unsubscribe from those left empty."""
        for topic in reversed(self._joined.pop(connection, ())):
            await self._exit(connection, topic)
        group = self._groups.get(connection.topic)
        if group is not None and group.holds(connection):
            self._unindex(connection)
        await self._exit(connection, connection.topic)

    async def _enter(
        self,
        connection: Connection,
        topic: str,
        name: str,
        max_connections: int | None,
        resumption: Resumption | None,
    ) -> bool:
        member = self.presence.new_member(connection.id, connection.user)
        try:
            # The check and the reservation are one step (a Lua script in Redis), so racing joins cannot overfill.
            if not await self.presence.add(topic, member, max_connections=max_connections):
                return False
        except PresenceUnavailable as exc:
            logger.warning("Cannot admit a connection to %r: %s", topic, exc)
            raise BackendUnavailable(error_msg="The channel cannot be joined right now. Try again later.") from exc
        group = self._groups.get(topic)
        if group is None:
            # A channel with history (joined with a resumption) sends publication frames, which name the channel.
            group = self._groups[topic] = _Group(name=name, wraps=resumption is None)
        if resumption is not None:
            resumption.last_delivered = group.last_delivered
            group.resuming[connection] = resumption
        (group.wrapped if group.wraps and connection in self._joined else group.members).add(connection)
        try:
            async with group.lock:
                if group.pump is None or group.pump.done():
                    await self._start_pump(self.prefix + topic, group, deliver=self._deliver_to(group))
        except BaseException:
            await self._exit(connection, topic)
            raise
        return True

    async def _exit(self, connection: Connection, topic: str) -> None:
        group = self._groups.get(topic)
        if group is None or not group.holds(connection):
            return
        group.members.discard(connection)
        group.wrapped.discard(connection)
        group.resuming.pop(connection, None)
        await self.presence.remove(topic, connection.id)
        async with group.lock:
            if group.size() or group.pump is None:
                return
            pump, group.pump = group.pump, None
            pump.cancel()
            try:
                await pump
            except asyncio.CancelledError:
                pass
            except Exception:
                logger.exception("Unsubscribing from %r failed", topic)
            if not group.size() and self._groups.get(topic) is group:
                del self._groups[topic]

    def subscribe_pattern(
        self,
        pattern: TopicPattern,
        *,
        topic_prefix: str = "",
        queue_size: int = DEFAULT_TOPIC_QUEUE_SIZE,
        publications: bool = False,
    ) -> AbstractAsyncContextManager[TopicSubscription]:
        """Hear every channel whose topic is ``topic_prefix`` and a name ``pattern`` matches, on every process.

        Returns an async context manager: within it, the ``TopicSubscription`` it yields receives the messages
        (``publications``: the channels keep history, and their messages come in publication frames).

        Raises:
            RuntimeError: The backend cannot subscribe to patterns.
            ValueError: ``queue_size`` is not a positive integer.
        """
        backend = backend_of(self.broadcast)
        if not isinstance(backend, PatternBackend):
            raise RuntimeError(_NO_PATTERNS)
        prefix = self.prefix + topic_prefix
        subscription = TopicSubscription(pattern, prefix=prefix, queue_size=queue_size, publications=publications)
        return self._listening(backend, pattern.glob(prefix), subscription)

    @contextlib.asynccontextmanager
    async def _listening(
        self, backend: PatternBackend, glob: str, subscription: TopicSubscription
    ) -> AsyncIterator[TopicSubscription]:
        async with self._patterns_lock:
            listeners = self._patterns.get(glob)
            if listeners is None:
                listeners = set()
                try:
                    await backend.psubscribe(glob, _offer_to(listeners))
                except Exception as exc:
                    if not is_unreachable(exc):
                        raise
                    raise BackendUnavailable(error_msg="The backend cannot be reached: subscribe again later.") from exc
                self._patterns[glob] = listeners
            listeners.add(subscription)
        try:
            yield subscription
        finally:
            subscription.close()
            async with self._patterns_lock:
                listeners.discard(subscription)
                if not listeners and self._patterns.get(glob) is listeners:
                    del self._patterns[glob]
                    await backend.punsubscribe(glob)

    async def set_user(self, connection: Connection, user: str | None) -> None:
        """Address ``connection`` as ``user`` from now on: for ``send_to_user`` and in the member lists."""
        if connection.user == user:
            return
        admitted = self._by_id.get(connection.id) is connection
        if admitted:
            self._unindex(connection)
        connection.user = user
        if admitted:
            self._index(connection)
            for topic in [connection.topic, *self._joined.get(connection, ())]:
                await self.presence.set_user(topic, connection.id, user)

    def _index(self, connection: Connection) -> None:
        self._by_id[connection.id] = connection
        if connection.user is not None:
            self._by_user.setdefault(connection.user, set()).add(connection)

    def _unindex(self, connection: Connection) -> None:
        self._by_id.pop(connection.id, None)
        if connection.user is not None:
            same_user = self._by_user.get(connection.user)
            if same_user is not None:
                same_user.discard(connection)
                if not same_user:
                    del self._by_user[connection.user]

    @staticmethod
    def _deliver_to(group: _Group) -> Callable[[str], None]:
        members, wrapped, resuming = group.members, group.wrapped, group.resuming
        keeps_last = not group.wraps  # a channel with history

        def deliver(text: str) -> None:
            if keeps_last:
                group.last = text
            if resuming or wrapped:
                _deliver_mixed(group, text)
                return
            # Sending never awaits nor changes the members, so the set is walked as it is.
            for connection in members:
                connection.send(text)

        return deliver

    def _deliver_direct(self, envelope_text: str) -> None:
        # Only send_direct writes here, but one bad envelope must never end the listener of every direct message.
        try:
            envelope = json.loads(envelope_text)
            text, connection_id, user = envelope["text"], envelope.get("connection"), envelope.get("user")
            channel, endpoint = envelope.get("channel"), envelope.get("endpoint")
            well_formed = isinstance(text, str) and all(
                isinstance(address, str | None) for address in (connection_id, user, channel, endpoint)
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            well_formed = False
        if not well_formed:
            logger.warning("Dropped a malformed direct message on %r", self.direct_channel)
            return
        if connection_id is not None:
            connection = self._by_id.get(connection_id)
            targets = [connection] if connection is not None else []
        else:
            targets = list(self._by_user.get(user, ())) if user is not None else []
        for connection in targets:
            if (channel is None or connection.channel == channel) and (
                endpoint is None or connection.endpoint == endpoint
            ):
                connection.send(text)

    async def _start_pump(self, channel: str, group: _Group, *, deliver: Callable[[str], None]) -> None:
        subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        group.pump = asyncio.create_task(self._pump(channel, deliver, subscribed), name=f"fastapi-channels:{channel}")
        group.pump.add_done_callback(_report_failure)
        await subscribed

    async def _pump(self, channel: str, deliver: Callable[[str], None], subscribed: asyncio.Future[None]) -> None:
        try:
            async with self.broadcast.subscribe(channel) as subscriber:
                subscribed.set_result(None)
                async for event in subscriber:  # type: ignore[union-attr]
                    if event is None:
                        continue
                    # Each outbox writes at once when its client keeps up: no task switch per recipient.
                    deliver(event.message)
        except BaseException as exc:
            if not subscribed.done():
                subscribed.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            raise


def _deliver_mixed(group: _Group, text: str) -> None:
    """Deliver ``text`` to a group some of whose connections catch up with history or are in several channels."""
    if group.resuming:
        _deliver_resuming(group, text)
    else:
        for connection in group.members:
            connection.send(text)
    if group.wrapped:
        # Wrapped once for all of them: one more parse of the message, not one per recipient.
        wrapped = render_broadcast(group.head, text)
        for connection in group.wrapped:
            connection.send(wrapped)


def _deliver_resuming(group: _Group, text: str) -> None:
    """Deliver ``text`` to a group some of whose connections are catching up with history."""
    resuming = group.resuming
    caught_up = False
    for connection in group.members:
        resumption = resuming.get(connection)
        if resumption is None:
            connection.send(text)
            continue
        if resumption.offer(text):
            connection.send(text)
        caught_up = caught_up or resumption.done
    if caught_up:
        for connection in [connection for connection, resumption in resuming.items() if resumption.done]:
            del resuming[connection]


def _describe(retention: Retention | None) -> str:
    if retention is None:
        return "no history"
    ttl = "" if retention.ttl is None else f", history_ttl={retention.ttl}"
    return f"history_size={retention.size}{ttl}"


def _offer_to(listeners: set[TopicSubscription]) -> Callable[[str, str], None]:
    """Return what hands each message of a glob subscription to the topic subscriptions that share it."""

    def offer(channel: str, text: str) -> None:
        for subscription in list(listeners):
            subscription.offer(channel, text)

    return offer


def _report_failure(pump: asyncio.Task[None]) -> None:
    # A subscription that ends by itself leaves its connections deaf: never let that pass silently.
    if not pump.cancelled() and pump.exception() is not None:
        logger.error("The subscription %s failed", pump.get_name(), exc_info=pump.exception())
