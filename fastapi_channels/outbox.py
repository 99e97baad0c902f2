"""A connection's outbox: every frame for one websocket, in order, without letting a slow client hold up others.

A frame is written at once, in the caller's task, when nothing is waiting before it and the server can take
it without waiting (the usual case: uvicorn only waits while a client's socket buffer is full). Only when a
write has to wait does the connection get a writer task, which finishes that write and then the frames queued
behind it. A fan-out therefore costs one write per recipient and no task switch.

What waits is bounded in size (``send_queue_bytes``, 16 MiB of text by default, and optionally a number of
frames). Broadcasts that would go past the bound mark the client as too slow: it is cut. The connection's own
replies never cut it: past ``REPLY_BACKLOG_BYTES`` (1 MiB) its session reads no more of the client's frames
until the backlog has drained. A write
that cannot finish within ``write_timeout`` (a client that stopped reading) cuts the client too. Cutting tries
to send close 1013 for a second, then aborts the TCP connection, so a stuck client holds nothing for long.

Frames are JSON text. A connection whose codec sends something else (``encode_frame``) converts each frame as
it is written. A frame that cannot be converted or written (a bug in what was sent) is logged and skipped, written
at once or queued alike: the frames behind it still go out, and a reply waiting on it is released. Only a client
that has gone ends the writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from starlette import status
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from fastapi_channels.identity import user_of
from fastapi_channels.metrics import ChannelMetrics, utf8_size
from fastapi_channels.stepping import resume, within

__all__ = [
    "Connection",
    "SendCapture",
    "CONNECTION_KEY",
    "SEND_KEY",
    "DEFAULT_SEND_QUEUE_SIZE",
    "DEFAULT_SEND_QUEUE_BYTES",
    "DEFAULT_WRITE_TIMEOUT",
    "REPLY_BACKLOG_BYTES",
    "CLOSE_TIMEOUT",
    "FLUSH_TIMEOUT",
]

logger = logging.getLogger("fastapi_channels.outbox")

DEFAULT_SEND_QUEUE_SIZE: int | None = None
"""Frames that may wait for one connection; None: only ``DEFAULT_SEND_QUEUE_BYTES`` bounds them."""
DEFAULT_SEND_QUEUE_BYTES = 16 * 1024 * 1024
"""Bytes of text (UTF-8) that may wait for one connection before a broadcast cuts it as too slow.

Broadcast text is one string shared by every recipient, so this bounds how far behind the others a client may
fall more than what it costs: an unpaced burst of 3,000 frames of 8 KB to 50 clients that read fits."""
REPLY_BACKLOG_BYTES = 1024 * 1024
"""Bytes of text waiting for a client above which its session reads none of its frames until half is gone.

A connection's own answers are text of its own, so the client that asks for them is slowed down early."""
DEFAULT_WRITE_TIMEOUT = 10.0
"""Seconds one write may wait for a client to read before the client counts as stuck and is cut."""
CLOSE_TIMEOUT = 1.0
"""Seconds a cut client gets to take its close frame before its TCP connection is aborted."""
FLUSH_TIMEOUT = 5.0
"""Seconds a closing connection may take to write its queued frames before it is aborted."""
CONNECTION_KEY = "fastapi_channels.connection"
"""The websocket scope key under which a connection's outbox is found while it is in its channel."""
SEND_KEY = "fastapi_channels.send"
"""The websocket scope key under which ``SendCapture`` keeps the ASGI ``send`` it was called with."""

SLOW_CLIENT_REASON = "Send queue full: the client is not reading."
STUCK_CLIENT_REASON = "The client stopped reading."

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

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Note ``send`` in a websocket's scope, then call the app."""
        if scope["type"] == "websocket":
            scope[SEND_KEY] = send
        # Returned, not awaited: every resumption of a connection's task walks each coroutine frame that awaits
        # it, and a middleware that only notes something in the scope need not be one of them.
        return self.app(scope, receive, send)


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


def _size(item: _Item) -> int:
    if type(item) is str:
        return utf8_size(item)
    return utf8_size(item.text) if isinstance(item, _Tracked) else 0


class Connection:
    """One websocket's outbox, with what the channel layer addresses it by: id, channel, topic, user and endpoint."""

    __slots__ = (
        "id",
        "websocket",
        "channel",
        "user",
        "endpoint",
        "topic",
        "closed",
        "closing",
        "close_code",
        "metrics",
        "write_timeout",
        "stop_waiting",
        "backlogged",
        "_backlog_limit",
        "_max_frames",
        "_max_bytes",
        "_queued_bytes",
        "_queue",
        "_writer",
        "_drained",
        "_send_message",
        "_server_send",
        "_encode_frame",
    )

    def __init__(
        self,
        websocket: WebSocket,
        channel: str,
        *,
        send_queue_size: int | None = DEFAULT_SEND_QUEUE_SIZE,
        send_queue_bytes: int = DEFAULT_SEND_QUEUE_BYTES,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        endpoint: str | None = None,
        topic: str | None = None,
        metrics: ChannelMetrics | None = None,
        encode_frame: Callable[[str], Message] | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.websocket = websocket
        self.channel = channel
        self.user = user_of(websocket)
        self.endpoint = endpoint
        # What the channel layer files the connection under: its channel, within its channel object's group.
        self.topic = topic if topic is not None else channel
        self.closed = False
        self.closing = False
        self.close_code: int | None = None
        """The code this side closed with, when it did (for the metrics of closes by code)."""
        self.metrics = metrics if metrics is not None else ChannelMetrics()
        self.write_timeout = write_timeout
        self.stop_waiting: Callable[[], None] | None = None
        """Called when this side gives up on the client (cut, drained), so that whoever waits on it stops."""
        self.backlogged = False
        """Whether so much waits for the client that its session should read none of its frames for now."""
        self._max_frames = send_queue_size
        self._max_bytes = send_queue_bytes
        self._backlog_limit = min(REPLY_BACKLOG_BYTES, send_queue_bytes)
        self._queued_bytes = 0
        self._queue: deque[_Item] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        # What turns the JSON text of a frame into the message of a codec that does not send JSON text as it is.
        self._encode_frame = encode_frame
        self._send_message = _encoding(websocket.send, encode_frame)
        self._server_send: Any = None

    # -- sending ---------------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        """Send a broadcast: now, or behind earlier frames; a client that lets too much wait is cut."""
        if self.closed or self.closing:
            return
        self.metrics.frames_out += 1
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
        elif self._fits(len(text)):
            self._enqueue(text)
        else:
            self.cut(SLOW_CLIENT_REASON)

    def reply(self, text: str) -> None:
        """Send one of the connection's own answers; it never cuts the client (see ``backlogged``)."""
        if self.closed or self.closing:
            return
        self.metrics.frames_out += 1
        if self._writer is None:
            self._write_now(text)
        else:
            self._enqueue(text)

    async def deliver(self, text: str) -> None:
        """Send ``text`` and wait until it has been written, or the connection has ended."""
        written = self.write(text)
        if written is not None:
            await written

    def write(self, text: str) -> asyncio.Future[None] | None:
        """Send ``text``; return None once written (or dropped), else a future settled when it is."""
        if self.closed or self.closing:
            return None
        self.metrics.frames_out += 1
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
        tracked = _Tracked(text, asyncio.get_running_loop().create_future())
        self._enqueue(tracked)
        return tracked.written

    def close(self, code: int = status.WS_1000_NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the socket once the frames already queued have been written."""
        if self.closed or self.closing:
            return
        self.closing = True
        self.close_code = code
        if self._writer is None:
            self._write_now(_Close(code, reason))
        else:
            self._queue.append(_Close(code, reason))

    # -- backpressure and slow clients -----------------------------------------------------------------

    async def drained(self) -> None:
        """Wait until the backlog is down to half of ``REPLY_BACKLOG_BYTES``, or the connection has ended."""
        while self.backlogged and not self.closed:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def cut(self, reason: str) -> None:
        """Give up on a client that is too slow or stuck: drop what waits, close with 1013, else abort."""
        if self.closed:
            return
        logger.warning("Cutting connection %s on %r: %s", self.id, self.channel, reason)
        self.metrics.slow_client_cuts += 1
        if self.close_code is None:
            self.close_code = status.WS_1013_TRY_AGAIN_LATER
        self.closing = True
        self._drop_queue()
        self._wake_drained()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
        self._writer = asyncio.ensure_future(self._close_or_abort(writer, reason))
        if self.stop_waiting is not None:
            self.stop_waiting()

    def write_through(self, send: Send) -> None:
        """Write frames with the ASGI ``send`` itself from now on (the socket has been accepted)."""
        self._server_send = send
        # Frames are written by stepping the coroutine ``send`` returns: anything else keeps Starlette's send.
        if inspect.iscoroutinefunction(send):
            self._send_message = _encoding(send, self._encode_frame)

    async def flush(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Wait (at most ``timeout`` seconds) for queued frames to be written; abort a client that takes longer."""
        writer = self._writer
        if writer is not None:
            if not self.closed:
                await asyncio.wait({writer}, timeout=timeout)
            if not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
                self._abort()
        self.closed = True
        self._drop_queue()

    # -- the writer ------------------------------------------------------------------------------------

    def _fits(self, size: int) -> bool:
        if self._queued_bytes + size > self._max_bytes:
            return False
        return self._max_frames is None or len(self._queue) < self._max_frames

    def _enqueue(self, item: _Item) -> None:
        size = _size(item)
        self._queue.append(item)
        self._queued_bytes += size
        self.metrics.queue_bytes += size
        if self._queued_bytes > self._backlog_limit or not self._fits(0):
            self.backlogged = True

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
        self._writer = asyncio.ensure_future(self._write_queued(item, resume(sending, waiting_on), written))
        return written

    async def _write_queued(self, first: _Item, pending: Awaitable[None], first_written: asyncio.Future[None]) -> None:
        item, writing = first, pending
        try:
            while True:
                try:
                    await within(self.write_timeout, writing)
                except TimeoutError:
                    raise
                except Exception as exc:
                    # One frame that cannot be sent is logged and skipped, and the frames behind it still go out;
                    # a client that has gone closes the outbox, which ends the loop.
                    self._failed(item, exc)
                else:
                    self._written(item)
                if not first_written.done():
                    first_written.set_result(None)
                if not self._queue or self.closed:
                    break
                item = self._queue.popleft()
                size = _size(item)
                self._queued_bytes -= size
                self.metrics.queue_bytes -= size
                self._wake_drained()
                writing = self._send(item)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            if self._writer is asyncio.current_task():
                self._writer = None
            self.cut(STUCK_CLIENT_REASON)
        finally:
            if not first_written.done():
                first_written.set_result(None)
            if isinstance(item, _Tracked):
                item.settle()
            if self._writer is asyncio.current_task():
                self._writer = None
            if self.closed:
                self._drop_queue()
            self._wake_drained()

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
            self._wake_drained()
            return
        # One frame the server cannot write (a bug in what was sent) must not end the connection.
        logger.error("A frame for connection %s on %r could not be sent", self.id, self.channel, exc_info=exc)

    async def _close_or_abort(self, writer: asyncio.Task[None] | None, reason: str) -> None:
        try:
            if writer is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            if self.websocket.application_state == WebSocketState.CONNECTED:
                try:
                    await within(CLOSE_TIMEOUT, self.websocket.close(status.WS_1013_TRY_AGAIN_LATER, reason))
                except Exception:
                    self._abort()  # the client does not even take its close frame
        finally:
            self.closed = True
            self._wake_drained()

    def _abort(self) -> None:
        """Abort the TCP connection, when the server lets us reach it (uvicorn does, through its ``send``)."""
        transport = getattr(getattr(self._server_send, "__self__", None), "transport", None)
        abort = getattr(transport, "abort", None)
        if callable(abort):
            abort()

    def _drop_queue(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Tracked):
                item.settle()
        self.metrics.queue_bytes -= self._queued_bytes
        self._queued_bytes = 0

    def _wake_drained(self) -> None:
        if not self.backlogged:
            return
        if self.closed or (self._queued_bytes <= self._backlog_limit // 2 and self._fits(0)):
            self.backlogged = False
            drained = self._drained
            if drained is not None and not drained.done():
                drained.set_result(None)


def _encoding(
    send: Callable[[Message], Coroutine[Any, Any, None]], encode_frame: Callable[[str], Message] | None
) -> Callable[[Message], Coroutine[Any, Any, None]]:
    """Return ``send`` itself, or, for a codec that converts JSON text, ``send`` of each frame converted."""
    if encode_frame is None:
        return send  # JSON text: every frame is sent as it is, at no cost per frame

    def send_encoded(message: Message) -> Coroutine[Any, Any, None]:
        try:
            encoded = encode_frame(message["text"])
        except Exception as exc:
            # Raised when the write is stepped, so that the frame is dropped (and logged) like any unsendable one.
            return _unsendable(exc)
        return send(encoded)

    return send_encoded


async def _unsendable(exc: Exception) -> None:
    raise ValueError("The frame could not be encoded in the connection's codec.") from exc
