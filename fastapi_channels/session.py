"""One object per connection: admit, accept, join, receive frames, answer errors, leave.

A ``Session`` owns what belongs to one connection (the websocket, its channel, the app configuration, its
codec, its outbox, the frame being handled) and runs the connection's life as one readable dispatch, calling the hooks
of the channel object it serves. A connection that is admitted always leaves exactly once, even when its
task is cancelled; each frame has one error boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar, Protocol

from starlette import status
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketState

from fastapi_channels.auth import SUBPROTOCOL_KEY
from fastapi_channels.codecs import SUBPROTOCOL_PREFIX, Codec, negotiate
from fastapi_channels.config import FastAPIChannel
from fastapi_channels.exceptions import ConnectionLimitExceeded, ParseError, RateLimitExceeded, WebSocketException
from fastapi_channels.handlers import lookup_exception_handler
from fastapi_channels.history import HistoryPage, Position
from fastapi_channels.identity import user_of
from fastapi_channels.memberships import JoinableChannel, Memberships
from fastapi_channels.origin import origin_allowed
from fastapi_channels.outbox import SEND_KEY, Connection
from fastapi_channels.protocol import MAX_NAME_LENGTH, Frame, internal_error_payload, render
from fastapi_channels.resume import Resumption, resume_point
from fastapi_channels.stepping import resume, run_to_the_end
from fastapi_channels.throttling import LimitHandled
from fastapi_channels.timeouts import PING_FRAME, Watchdog

__all__ = ["Session", "ChannelHooks", "FrameHandler", "SESSION_KEY", "current_config", "session_of"]

logger = logging.getLogger("fastapi_channels.session")

FrameHandler = Callable[[Any], Coroutine[Any, Any, None]]
"""Handles one frame of a connection (its text; its bytes where the channel reads binary frames); a channel object
builds one per connection."""

SESSION_KEY = "fastapi_channels.session"
"""The websocket scope key under which a connection's ``Session`` is found while it is served."""

current_config: contextvars.ContextVar[FastAPIChannel] = contextvars.ContextVar("fastapi_channels_config")
"""The configuration of the connection being served, so that broadcasts from its handlers reach its own app."""


class ChannelHooks(JoinableChannel, Protocol):
    """What a session needs from the channel object it serves (``BaseChannel`` provides all of it)."""

    endpoint: str
    allowed_origins: Sequence[str] | None
    codecs: Sequence[Codec]
    speaks_json: ClassVar[bool]
    max_channels_per_connection: int

    async def handle_exception(self, connection: Connection, exc: Exception) -> None:
        """Answer ``exc``, raised while the connection joined or handled a frame."""

    def frame_handler(self, session: Session) -> FrameHandler:
        """Return what handles each frame of ``session``."""


class Session:
    """Serve one websocket in one channel for a channel object, from the handshake to the last leave handler.

    ``codec`` is the codec the connection speaks, chosen from the subprotocols its client offered, and
    ``subprotocol`` the one it is accepted with (see ``fastapi_channels.codecs``).
    """

    __slots__ = (
        "owner",
        "websocket",
        "channel",
        "config",
        "connection",
        "codec",
        "subprotocol",
        "action",
        "request_id",
        "resumption",
        "_memberships",
        "_user",
        "_task",
        "_read_ahead",
        "_interruptible",
        "_gone",
        "_watchdog",
    )

    def __init__(self, owner: ChannelHooks, websocket: WebSocket, channel: str, config: FastAPIChannel) -> None:
        self.owner = owner
        self.websocket = websocket
        self.channel = channel
        self.config = config
        self.codec, self.subprotocol = _negotiate(owner.codecs, websocket)
        self.connection = Connection(
            websocket,
            channel,
            send_queue_size=config.send_queue_size,
            send_queue_bytes=config.send_queue_bytes,
            write_timeout=config.write_timeout,
            endpoint=owner.endpoint,
            topic=owner.topic(channel),
            metrics=config.metrics,
            encode_frame=None if self.codec.passes_json_text else self.codec.message,
        )
        # The frame being handled, for the error frame that answers it.
        self.action: str | None = None
        self.request_id: int | str | None = None
        self.resumption: Resumption | None = None
        """How the connection catches up with its channel's history (channels with history only)."""
        # The channels it joined besides its own: made by the first join, so a connection that joins none pays nothing.
        self._memberships: Memberships | None = None
        self._user = websocket.scope.get("user")
        self._task: asyncio.Task[Any] | None = None
        # A message read while an action waited, so that a disconnect is seen (and the action cancelled) at once.
        self._read_ahead: asyncio.Future[Message] | None = None
        # Whether the task waits for the client or for an action now: only then may a disconnect cancel it.
        self._interruptible = False
        self._gone = False
        self._watchdog: Watchdog | None = None

    async def run(self) -> None:
        """Admit, accept and serve the connection until it ends; always clean up after it."""
        websocket, connection, layer = self.websocket, self.connection, self.config.layer
        allowed = self.owner.allowed_origins
        if not origin_allowed(websocket.headers, allowed if allowed is not None else self.config.allowed_origins):
            # Refused before the handshake completes: the page of another site gets HTTP 403, never a socket.
            await websocket.close(status.WS_1008_POLICY_VIOLATION)
            return
        layer.track(connection)
        websocket.scope[SESSION_KEY] = self
        token = current_config.set(self.config)
        admitted = served = False
        try:
            # Join the channel before the handshake completes: a client that sees the socket open misses nothing.
            admitted = await self._admit()
            if websocket.application_state == WebSocketState.CONNECTING:
                await websocket.accept(subprotocol=self.subprotocol)
            send = websocket.scope.get(SEND_KEY)
            if send is not None and websocket.application_state is WebSocketState.CONNECTED:
                connection.write_through(send)
            if admitted:
                served = True
                self.config.metrics.connection_opened(type(self.owner).__name__)
                await self._serve()
        finally:
            current_config.reset(token)
            if served:
                self.config.metrics.connection_closed(type(self.owner).__name__, connection.close_code or 1000)
            try:
                if admitted and not served:
                    await run_to_the_end(layer.discard(connection))
                connection.close()
                await connection.flush()
            finally:
                layer.untrack(connection)
                if websocket.scope.get(SESSION_KEY) is self:
                    del websocket.scope[SESSION_KEY]

    async def _admit(self) -> bool:
        websocket = self.websocket
        try:
            if self.config.draining:
                raise WebSocketException(
                    status.WS_1012_SERVICE_RESTART, error_msg="The server is restarting: connect again shortly."
                )
            if len(self.channel) > MAX_NAME_LENGTH:
                # Often taken from the URL: a client must not make every log line and count key huge.
                raise WebSocketException(error_msg=f"A channel name must be at most {MAX_NAME_LENGTH} characters.")
            await self.owner.check_permissions(websocket, None, self.channel)
            layer = self.config.layer
            resumption = self._resumption()
            if not await layer.add(self.connection, max_connections=self.owner.max_connection, resumption=resumption):
                raise ConnectionLimitExceeded()
            if resumption is not None:
                # Read now, with live publications held, so that those of the join handlers reach the client too.
                try:
                    await resumption.prepare()
                except BaseException:
                    await run_to_the_end(layer.discard(self.connection))
                    raise
        except Exception as exc:
            if isinstance(exc, WebSocketException):
                # A connection that may not join never stays open.
                exc.close = True
            if websocket.application_state == WebSocketState.CONNECTING:
                # Accepted so that the client reads why, rather than a bare handshake failure.
                await websocket.accept(subprotocol=self.subprotocol)
            await self.fail(exc)
            return False
        return True

    def _resumption(self) -> Resumption | None:
        """Prepare the catch-up of a channel with history, from the position the query string names, if any."""
        retention = self.owner.retention
        if retention is None:
            return None
        since: Position | None = None
        problem: ParseError | None = None
        try:
            since = resume_point(self.websocket.query_params)
        except ParseError as exc:
            problem = exc
        layer, topic = self.config.layer, self.connection.topic

        async def read(since: int | None, limit: int | None) -> HistoryPage:
            return await layer.read_history(topic, retention, since, limit)

        self.resumption = Resumption(
            self.connection,
            self.channel,
            read=read,
            since=since,
            problem=problem,
            buffer_bytes=self.config.send_queue_bytes,
        )
        return self.resumption

    async def _catch_up(self, resumption: Resumption) -> bool:
        """Send the client what it missed, then live publications; return whether the connection goes on."""
        try:
            if resumption.problem is not None:
                await self.fail(resumption.problem)
            await resumption.catch_up()
        except Exception as exc:
            if isinstance(exc, WebSocketException):
                # A client that cannot catch up would go on without what it missed: it reconnects instead.
                exc.close = True
            await self.fail(exc)
        return not (self.connection.closing or self.connection.closed)

    async def _serve(self) -> None:
        """Join, handle the client's frames until the connection ends, and leave exactly once.

        The frame loop is written out here rather than in a method of its own: every frame resumes each
        coroutine that awaits the loop, so one level fewer is paid on every frame.
        """
        websocket, connection, scope = self.websocket, self.connection, self.websocket.scope
        metrics, receive = self.config.metrics, websocket.receive
        stack = contextlib.AsyncExitStack()
        joined = False
        try:
            joined = await self._join(stack)
            if not joined or (self.resumption is not None and not await self._catch_up(self.resumption)):
                return
            # A join handler may have logged the client in (scope["user"]).
            await self._follow_user()
            handle = self.owner.frame_handler(self)
            # Frames of the usual type are read with one look-up; the other type is read where the channel has a
            # codec for it, and refused otherwise.
            usual, other, reads_other, refused = self._frame_types()
            watchdog = self._start_watching()
            connected = WebSocketState.CONNECTED
            # The task may be interrupted (a cut, an expiry, a disconnect seen during an action) while it waits for
            # the client or for an action: anywhere in this loop but where it says otherwise.
            self._interruptible = True
            while not (connection.closing or connection.closed):
                if connection.backlogged:
                    # The client's own answers are waiting for it: read nothing more until it has taken them.
                    # A cut wakes this wait itself, so it is not interrupted.
                    self._interruptible = False
                    await connection.drained()
                    self._interruptible = True
                    continue
                # The next message: the one read ahead while an action waited, else a fresh one.
                reading, self._read_ahead = self._read_ahead, None
                try:
                    message = await (reading if reading is not None else receive())
                except asyncio.CancelledError:
                    if not self._gone:
                        raise
                    _uncancel(self._task)  # cut or expired while waiting: leave
                    connection.closed = True
                    return
                frame = message.get(usual)
                if frame is None and message["type"] == "websocket.disconnect":
                    if connection.close_code is None:
                        connection.close_code = message.get("code", status.WS_1005_NO_STATUS_RCVD)
                    connection.closed = True
                    return
                metrics.frames_in += 1
                if watchdog is not None:
                    watchdog.seen()
                self.action = self.request_id = None
                try:
                    if frame is None:
                        frame = message.get(other) if reads_other else None
                        if frame is None:
                            raise ParseError(status.WS_1003_UNSUPPORTED_DATA, error_msg=refused)
                    running = handle(frame)
                    try:
                        waiting_on = running.send(None)
                    except StopIteration:
                        pass  # done without waiting: the usual case, with no watcher needed
                    else:
                        await self._finish_action(running, waiting_on)
                except LimitHandled:
                    metrics.rate_limit_refusals += 1
                except asyncio.CancelledError:
                    if not self._gone:
                        raise
                    # The client went away mid-action, and the action was cancelled: leave at once.
                    _uncancel(self._task)
                    connection.closed = True
                    return
                except Exception as exc:
                    self._interruptible = False  # answering must not be cut short
                    await self.fail(exc)
                    self._interruptible = True
                if scope.get("user") is not self._user:
                    # The action logged the client in or out: address it by its new name from now on.
                    self._interruptible = False
                    await self._follow_user()
                    self._interruptible = True
                if websocket.application_state is not connected:
                    # The handler closed the socket itself.
                    connection.closed = True
                    return
        finally:
            self._interruptible = False
            self.connection.stop_waiting = None
            if self._watchdog is not None:
                self._watchdog.stop()
            if self._read_ahead is not None:
                self._read_ahead.cancel()
            # Leaving runs to the end even when this task is cancelled (server shutdown, a test client exiting).
            await run_to_the_end(self._leave(stack, joined=joined))

    async def _join(self, stack: contextlib.AsyncExitStack) -> bool:
        """Enter the connection's lifespan and run the join handlers; return whether the client may stay."""
        websocket, channel, events = self.websocket, self.channel, self.owner.events
        try:
            await stack.enter_async_context(events.open_lifespan(self.owner, websocket, channel))
            await events.run_join(websocket, channel)
        except Exception as exc:
            await self.fail(exc)
            return not (self.connection.closing or self.connection.closed)
        return True

    def _frame_types(self) -> tuple[str, str, bool, str]:
        """Return the message key of the usual frames, of the others, whether those are read, and why they are not."""
        codecs = self.owner.codecs
        reads_text = any(not codec.binary for codec in codecs)
        reads_binary = any(codec.binary for codec in codecs)
        usual, other = ("text", "bytes") if reads_text else ("bytes", "text")
        kind = "Binary" if reads_text else "Text"
        refused = f"{kind} frames are not supported: send {self.codec.description}."
        return usual, other, reads_text and reads_binary, refused

    def _start_watching(self) -> Watchdog | None:
        """Let a cut or an expiry interrupt the session, and start the heartbeat and timeouts, if any."""
        config, connection = self.config, self.connection
        self._task = asyncio.current_task()
        connection.stop_waiting = self._interrupt
        if config.heartbeat_interval or config.idle_timeout or config.max_lifetime:
            self._watchdog = Watchdog(
                # A relay passes raw text on to the room, so its clients get no JSON pings (only the timeouts).
                heartbeat_interval=config.heartbeat_interval if self.owner.speaks_json else None,
                idle_timeout=config.idle_timeout,
                max_lifetime=config.max_lifetime,
                ping=lambda: connection.reply(PING_FRAME),
                expire=self._expire,
            )
        return self._watchdog

    async def _finish_action(self, running: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        """Finish an action that has to wait, cancelling it if the client goes away meanwhile."""
        if self._read_ahead is None:
            # One message is read ahead while the action waits: a disconnect there means nobody awaits the result.
            self._read_ahead = asyncio.ensure_future(self.websocket.receive())
            self._read_ahead.add_done_callback(self._check_read_ahead)
        await resume(running, waiting_on)

    def _check_read_ahead(self, reading: asyncio.Future[Message]) -> None:
        if reading.cancelled() or reading.exception() is not None:
            return
        if reading.result()["type"] == "websocket.disconnect":
            self._interrupt()
        elif self._watchdog is not None:
            self._watchdog.seen()

    def _expire(self, code: int, reason: str) -> None:
        """Close a connection that was idle or lived too long, and stop waiting for it."""
        self.connection.close(code, reason)
        self._interrupt()

    def _interrupt(self) -> None:
        """The client is gone (or cut): stop waiting for it, and cancel the action that is waiting, if any."""
        self._gone = True
        if self._interruptible and self._task is not None:
            self._task.cancel()

    async def _follow_user(self) -> None:
        self._user = self.websocket.scope.get("user")
        await self.config.layer.set_user(self.connection, user_of(self.websocket))

    def memberships(self) -> Memberships:
        """Return the channels the connection joined besides its own (an empty set of them before the first join)."""
        if self._memberships is None:
            self._memberships = Memberships(
                self.websocket,
                self.connection,
                self.config.layer,
                limit=self.owner.max_channels_per_connection,
                buffer_bytes=self.config.send_queue_bytes,
            )
        return self._memberships

    def channels(self) -> list[str]:
        """Return the channels the connection is in: its own, then those it joined, in join order."""
        joined = self._memberships.names() if self._memberships is not None else []
        return [self.channel, *joined]

    def resumption_for(self, frame: Frame) -> Resumption | None:
        """Return the catch-up a ``resume`` frame asks of: that of the joined channel it names, else its own.

        Raises:
            ParseError: The frame names a channel the connection did not join, or one without history.
        """
        name = frame.get("channel")
        if name is None or name == self.channel:
            return self.resumption
        resumption = self._memberships.resumption(name) if self._memberships is not None and type(name) is str else None
        if resumption is None:
            raise ParseError(error_msg='The "channel" to resume must be one with history the connection is in.')
        return resumption

    async def _leave(self, stack: contextlib.AsyncExitStack, *, joined: bool) -> None:
        memberships = self._memberships
        try:
            # No more joins; one in progress in another task ends first, so that nothing is left behind.
            parting = await memberships.close() if memberships is not None else []
            # Leave the fan-out of every channel first, so the leave handlers' broadcasts reach only those who stay.
            await self.config.layer.discard(self.connection)
            for membership in parting:
                await membership.run_leave(self.websocket)
            if joined:
                await self.owner.events.run_leave(self.websocket, self.channel)
        finally:
            try:
                await stack.aclose()
            except Exception:
                logger.exception("The lifespan of a connection to %r failed on exit", self.channel)

    async def fail(self, exc: Exception) -> None:
        """The error boundary: answer ``exc`` through the channel's ``handle_exception``."""
        await self.owner.handle_exception(self.connection, exc)

    async def answer(self, exc: Exception) -> None:
        """Answer a failed frame: through the app's handler for a ``WebSocketException``, else with 1011."""
        websocket = self.websocket
        if isinstance(exc, WebSocketException):
            self.config.metrics.error(exc.code)
            if isinstance(exc, RateLimitExceeded):
                self.config.metrics.rate_limit_refusals += 1
            exc.action = exc.action if exc.action is not None else self.action
            exc.request_id = exc.request_id if exc.request_id is not None else self.request_id
            handler = lookup_exception_handler(websocket, exc)
            try:
                result = handler(websocket, exc)
                if inspect.isawaitable(result):
                    await result
                return
            except Exception as handler_exc:
                exc = handler_exc
        self.config.metrics.error(status.WS_1011_INTERNAL_ERROR)
        logger.error("Error while handling a message on channel %r", self.channel, exc_info=exc)
        self.connection.reply(render(internal_error_payload(action=self.action, request_id=self.request_id)))
        self.connection.close(status.WS_1011_INTERNAL_ERROR, "Internal error")


def _negotiate(codecs: Sequence[Codec], websocket: WebSocket) -> tuple[Codec, str | None]:
    """Return the codec the connection speaks and the subprotocol to accept it with."""
    scope = websocket.scope
    app_choice = scope.get(SUBPROTOCOL_KEY)
    if websocket.application_state is not WebSocketState.CONNECTING:
        # Accepted before connect(), as authenticate_first_message does, with scope[SUBPROTOCOL_KEY]: the codec
        # that subprotocol names, if any, is the one the client was told about.
        return negotiate(codecs, [app_choice]) or codecs[0], None
    chosen = negotiate(codecs, scope.get("subprotocols") or ())
    if chosen is not None:
        # Only one subprotocol can be accepted: the codec's, since the client must know how frames are encoded.
        return chosen, chosen.subprotocol
    if isinstance(app_choice, str) and app_choice.startswith(SUBPROTOCOL_PREFIX):
        app_choice = None  # a codec this channel does not speak: accepting with it would mislead the client
    return codecs[0], app_choice


def _uncancel(task: asyncio.Task[Any] | None) -> None:
    """Forget a cancellation this module asked for, so that the task's later awaits run normally."""
    if task is not None and sys.version_info >= (3, 11):
        task.uncancel()


def session_of(websocket: WebSocket) -> Session | None:
    """Return the session serving ``websocket``, or None when it is not (or no longer) served."""
    session: Any = websocket.scope.get(SESSION_KEY)
    return session if isinstance(session, Session) else None
