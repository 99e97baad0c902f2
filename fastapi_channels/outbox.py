"""A connection's outbox: every frame for one websocket, in order, without letting a slow client hold up others.

A frame is written at once, in the caller's task, when nothing is waiting before it and the server can take
it without waiting (the usual case: uvicorn only waits while a client's socket buffer is full). Only when a
write has to wait does the connection get a writer task, which finishes that write and then the frames queued
behind it. A fan-out therefore costs one write per recipient and no task switch, while a client that stops
reading fills its own queue; when that holds ``send_queue_size`` frames it is closed with 1013 (try again later).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import types
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any

from starlette import status
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from fastapi_channels.identity import user_of

__all__ = ["Connection", "SendCapture", "CONNECTION_KEY", "SEND_KEY", "DEFAULT_SEND_QUEUE_SIZE", "FLUSH_TIMEOUT"]

logger = logging.getLogger("fastapi_channels.outbox")

DEFAULT_SEND_QUEUE_SIZE = 256
"""Frames buffered per connection before a client that stops reading is closed with 1013."""
FLUSH_TIMEOUT = 5.0
"""Seconds a closing connection may take to write its queued frames to a slow client."""
CONNECTION_KEY = "fastapi_channels.connection"
"""The websocket scope key under which a connection's outbox is found while it is in its channel."""
SEND_KEY = "fastapi_channels.send"
"""The websocket scope key under which ``SendCapture`` keeps the ASGI ``send`` it was called with."""

# Seconds the forced close of a client that stopped reading may take.
_FORCED_CLOSE_TIMEOUT = 10.0
# A write that fails with one of these means the client has gone; anything else is a bug worth logging.
_GONE = (WebSocketDisconnect, OSError, RuntimeError)


class SendCapture:
    """ASGI middleware that keeps each websocket's ``send`` in its scope, for the outbox to write frames with.

    ``add_channel`` puts it inside every middleware of the app, so frames still pass through all of them.
    Writing through it skips, once per frame and recipient, Starlette's checks of the handshake state and
    two wrappers that only track HTTP responses: the outbox knows its state itself, and a broadcast to many
    clients is mostly this per-frame work. Opening and closing still go through Starlette's ``WebSocket``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Note ``send`` in a websocket's scope, then call the app."""
        if scope["type"] == "websocket":
            scope[SEND_KEY] = send
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


@dataclass(frozen=True)
class _Tracked:
    """A frame whose sender waits until it has been written (or dropped)."""

    text: str
    written: asyncio.Future[None]

    def settle(self) -> None:
        if not self.written.done():
            self.written.set_result(None)


_Item = str | _Tracked | _Close


class Connection:
    """One websocket's outbox, with what the channel layer addresses it by: id, channel, user and endpoint."""

    __slots__ = (
        "id",
        "websocket",
        "channel",
        "user",
        "endpoint",
        "closed",
        "closing",
        "_limit",
        "_queue",
        "_writer",
        "_send_message",
    )

    def __init__(
        self,
        websocket: WebSocket,
        channel: str,
        *,
        send_queue_size: int = DEFAULT_SEND_QUEUE_SIZE,
        endpoint: str | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.websocket = websocket
        self.channel = channel
        self.user = user_of(websocket)
        self.endpoint = endpoint
        self.closed = False
        self.closing = False
        self._limit = send_queue_size
        self._queue: deque[_Item] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._send_message: Callable[[Message], Coroutine[Any, Any, None]] = websocket.send

    def send(self, text: str) -> None:
        """Write ``text`` now or queue it behind earlier frames; a no-op once the connection is closing or closed."""
        if self.closed or self.closing:
            return
        if self._writer is None:
            # _write_now, inlined: this runs once per recipient of every broadcast.
            sending = self._send_message({"type": "websocket.send", "text": text})
            try:
                waiting_on = sending.send(None)
            except StopIteration:
                return
            except Exception as exc:
                self._failed(text, exc)
                return
            self._finish_later(text, sending, waiting_on)
        elif len(self._queue) < self._limit:
            self._queue.append(text)
        else:
            self._overflow()

    async def deliver(self, text: str) -> None:
        """Send ``text`` and wait until it has been written, or the connection has ended."""
        written = self.write(text)
        if written is not None:
            await written

    def write(self, text: str) -> asyncio.Future[None] | None:
        """Send ``text``; return None once written (or dropped), else a future settled when it is."""
        if self.closed or self.closing:
            return None
        if self._writer is None:
            # _write_now, inlined as in send: every reply to an action comes through here.
            sending = self._send_message({"type": "websocket.send", "text": text})
            try:
                waiting_on = sending.send(None)
            except StopIteration:
                return None
            except Exception as exc:
                self._failed(text, exc)
                return None
            return self._finish_later(text, sending, waiting_on)
        if len(self._queue) >= self._limit:
            self._overflow()
            return None
        tracked = _Tracked(text, asyncio.get_running_loop().create_future())
        self._queue.append(tracked)
        return tracked.written

    def close(self, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the socket once the frames already queued have been written."""
        if self.closed or self.closing:
            return
        self.closing = True
        if self._writer is None:
            self._write_now(_Close(code, reason))
        else:
            self._queue.append(_Close(code, reason))

    async def flush(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Wait (at most ``timeout`` seconds) for queued frames to be written; then stop writing for good."""
        writer = self._writer
        if writer is not None:
            if not self.closed:
                await asyncio.wait({writer}, timeout=timeout)
            if not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        self.closed = True
        self._drop_queue()

    def _write_now(self, item: _Item) -> asyncio.Future[None] | None:
        """Write ``item``; return None when done, else a future that a new writer task settles when it is."""
        # Run the ASGI send up to its first wait; most writes finish right there, with no task switch.
        sending = self._send(item)
        try:
            waiting_on = sending.send(None)
        except StopIteration:
            self._written(item)
            return None
        except Exception as exc:
            self._failed(item, exc)
            return None
        return self._finish_later(item, sending, waiting_on)

    def _finish_later(self, item: _Item, sending: Coroutine[Any, Any, None], waiting_on: Any) -> asyncio.Future[None]:
        """Start the writer task: it finishes this write, then writes the frames queued meanwhile."""
        written = asyncio.get_running_loop().create_future()
        self._writer = asyncio.ensure_future(self._write_queued(item, _resume(sending, waiting_on), written))
        return written

    async def _write_queued(self, first: _Item, pending: Any, first_written: asyncio.Future[None]) -> None:
        item = first
        try:
            await pending
            self._written(item)
            first_written.set_result(None)
            while self._queue and not self.closed:
                item = self._queue.popleft()
                await self._send(item)
                self._written(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(item, exc)
        finally:
            if not first_written.done():
                first_written.set_result(None)
            if isinstance(item, _Tracked):
                item.settle()
            if self._writer is asyncio.current_task():
                self._writer = None
            if self.closed:
                self._drop_queue()

    def write_through(self, send: Send) -> None:
        """Write frames with the ASGI ``send`` itself from now on (the socket has been accepted)."""
        # Frames are written by stepping the coroutine ``send`` returns: anything else keeps Starlette's send.
        if inspect.iscoroutinefunction(send):
            self._send_message = send

    def _send(self, item: _Item) -> Coroutine[Any, Any, None]:
        if isinstance(item, _Close):
            # Through Starlette's WebSocket, which must know that the socket is closed.
            return self.websocket.send({"type": "websocket.close", "code": item.code, "reason": item.reason})
        text = item.text if isinstance(item, _Tracked) else item
        return self._send_message({"type": "websocket.send", "text": text})

    def _written(self, item: _Item) -> None:
        if type(item) is str:
            return
        if isinstance(item, _Tracked):
            item.settle()
        elif isinstance(item, _Close):
            self.closed = True

    def _failed(self, item: _Item, exc: Exception) -> None:
        if isinstance(item, _Tracked):
            item.settle()
        if isinstance(exc, _GONE) or isinstance(item, _Close):
            # The client went away mid-send; the receive loop sees the disconnect.
            self.closed = True
            self._drop_queue()
            return
        # One frame the server cannot write (a bug in what was sent) must not end the connection.
        logger.error("A frame for connection %s on %r could not be sent", self.id, self.channel, exc_info=exc)

    def _overflow(self) -> None:
        logger.warning("Closing connection %s on %r: the client is not reading fast enough", self.id, self.channel)
        self.closing = True
        self._drop_queue()
        writer, self._writer = self._writer, None
        if writer is not None:
            # The writer is stuck on a client that does not read: stop it and close from a task of its own.
            writer.cancel()
        self._writer = asyncio.ensure_future(self._close_stuck(writer))

    async def _close_stuck(self, writer: asyncio.Task[None] | None) -> None:
        try:
            if writer is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            if self.websocket.application_state == WebSocketState.CONNECTED:
                reason = "Send queue full: the client is not reading."
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        self.websocket.close(status.WS_1013_TRY_AGAIN_LATER, reason), _FORCED_CLOSE_TIMEOUT
                    )
        finally:
            self.closed = True

    def _drop_queue(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Tracked):
                item.settle()


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, Any, None]:
    """Finish, inside a task, a coroutine that was run by hand until it had to wait on ``waiting_on``."""
    while True:
        try:
            value = yield waiting_on
        except BaseException as exc:  # the task was cancelled: pass it on to the write
            try:
                waiting_on = coroutine.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting_on = coroutine.send(value)
            except StopIteration:
                return
