"""``ChannelCommunicator``: one websocket client that talks to an app in the test's own event loop.

It speaks ASGI to the app directly (no server, no thread, no network): the test and the app share one event
loop, so an async test awaits the app's answers as it would await anything else, and two communicators on
one app talk to each other through the app's channel layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from starlette.authentication import AuthCredentials, BaseUser, SimpleUser
from starlette.types import ASGIApp, Message, Scope

from fastapi_channels.testing.frames import DEFAULT_TIMEOUT, NOTHING_TIMEOUT, Inbox, describe, describe_all
from fastapi_channels.testing.lifespan import Lease, acquire_lifespan
from fastapi_channels.testing.listener import ChannelListener

if TYPE_CHECKING:
    from fastapi_channels.channels import BaseChannel

__all__ = ["ChannelCommunicator", "HandshakeRefused"]

T = TypeVar("T")

_NOT_CONNECTED = "This communicator is not connected: use `async with ChannelCommunicator(...)`."
_NO_ANSWER_HINT = "\nAn action that returns None sends no answer: call it with send_action(), then read what it sends."


class HandshakeRefused(AssertionError):
    """The app closed the connection instead of accepting it: ``code`` and ``reason`` are those of its close.

    Channels accept a client they refuse, so that it can read why, and close it after an error frame: only
    a refusal before the handshake completes (a foreign ``Origin``, a path no route serves) raises this.
    """

    def __init__(self, path: str, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        said = f" {reason!r}" if reason else ""
        hint = " (does a websocket route serve this path?)" if code == 1000 and not reason else ""
        super().__init__(f"The app refused the connection to {path!r} with close code {code}{said}{hint}.")


class ChannelCommunicator:
    """Connect to ``path`` of ``app`` as one websocket client, in process; use it as ``async with``.

    Entering the block starts the app's lifespan when it is not running yet (shared by every communicator on
    the app, and shut down after the last), connects, and waits until the app accepts. Leaving it disconnects
    with code 1000 and waits until the app has finished with the connection, leave handlers included; an
    exception the app raised is raised in the test. Every wait fails the test with an ``AssertionError``
    after ``timeout`` seconds, naming what it waited for and what the app sent meanwhile.

    Args:
        app: The ASGI app, usually your FastAPI app.
        path: The path to connect to, with its query string if any: ``"/room?token=abc"``.
        headers: Handshake headers (``Host`` is ``testserver`` unless given). No ``Origin`` by default, as
            from a program rather than a browser.
        user: Who the connection is logged in as, without a real login: a Starlette ``BaseUser`` or a name
            (a ``SimpleUser``). It becomes ``scope["user"]``, as ``AuthenticationMiddleware`` would set it; an
            app with that middleware authenticates the connection itself (then pass what it reads instead).
        subprotocols: The subprotocols the client offers.
        client: The client's ``(host, port)``; anonymous rate limits count per host.
        timeout: Seconds each wait may take before the test fails.

    Raises:
        HandshakeRefused: On entering, when the app closes the connection instead of accepting it.
    """

    def __init__(
        self,
        app: ASGIApp,
        path: str = "/",
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        user: BaseUser | str | None = None,
        subprotocols: Sequence[str] = (),
        client: tuple[str, int] = ("testclient", 50000),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.app = app
        self.path = path
        self.timeout = timeout
        """Seconds each wait may take; change it for the rest of the test if needed."""
        self.user: BaseUser | None = SimpleUser(user) if isinstance(user, str) else user
        self.scope: Scope = _websocket_scope(path, headers, self.user, subprotocols, client)
        """The connection's ASGI scope, as the app sees it (``scope["user"]``, what the app added)."""
        self.subprotocol: str | None = None
        """The subprotocol the app accepted the connection with, if any."""
        self._incoming: asyncio.Queue[Message] = asyncio.Queue()
        self._inbox: Inbox[Message] = Inbox()
        self._task: asyncio.Task[None] | None = None
        self._lease: Lease | None = None
        self._closed = False  # the app sent its close
        self._left = False  # the client disconnected
        self._disconnect_queued = False
        self._crash_reported = False
        self._last_request_id = 0

    # -- connecting and leaving ------------------------------------------------------------------------

    async def __aenter__(self) -> ChannelCommunicator:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.disconnect()

    async def connect(self) -> None:
        """Start the app's lifespan if needed, connect, and wait until the app accepts the connection.

        Raises:
            HandshakeRefused: The app closed the connection instead of accepting it.
        """
        if self._task is not None:
            raise RuntimeError("This communicator has connected already: make a new one for another connection.")
        self._lease = await acquire_lifespan(self.app, self.timeout)
        self.scope["state"] = dict(self._lease.state)
        self._task = asyncio.create_task(self._serve(), name=f"fastapi-channels-test:{self.path}")
        self._task.add_done_callback(lambda _: self._inbox.wake())
        self._incoming.put_nowait({"type": "websocket.connect"})
        try:
            answer = await self._wait_for("the app to accept the connection", self._handshake_answer)
            if answer["type"] == "websocket.close":
                raise HandshakeRefused(self.path, answer.get("code", 1000), answer.get("reason") or "")
            self.subprotocol = answer.get("subprotocol")
            if self.user is not None and self.scope.get("user") is not self.user:
                raise RuntimeError(
                    "The app's own authentication (AuthenticationMiddleware) replaced user=: pass what it reads "
                    "instead (headers=, a token in the path), or test the channel in an app without it."
                )
        except BaseException:
            with contextlib.suppress(Exception):
                await self.disconnect()
            await self._release()
            raise

    async def disconnect(self, code: int = 1000, reason: str = "") -> None:
        """Leave with ``code``, wait until the app has finished with the connection, and raise what it raised.

        Leave handlers have run when this returns. Leaving the ``async with`` block does it with code 1000;
        calling it again does nothing more.
        """
        if self._task is None:
            raise RuntimeError(_NOT_CONNECTED)
        try:
            if not self._left:
                self._left = True
                self._queue_disconnect(code, reason)
            done, _ = await asyncio.wait({self._task}, timeout=self.timeout)
            if not done:
                self._task.cancel()
                # Bounded too: an app that holds on after its cancellation must fail the test, not hang it.
                await asyncio.wait({self._task}, timeout=self.timeout)
                if self._task.done() and not self._task.cancelled():
                    self._task.exception()  # seen: what fails the test is that the app did not finish in time
                raise AssertionError(
                    f"The app did not finish with the connection to {self.path!r} within {self.timeout} s after "
                    "the client left: its endpoint, a leave handler or a lifespan still waits for something."
                )
            self._raise_crash()
        finally:
            await self._release()

    # -- sending ---------------------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        """Send a text frame."""
        self._check_open()
        self._incoming.put_nowait({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary frame."""
        self._check_open()
        self._incoming.put_nowait({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any) -> None:
        """Send ``data`` as a JSON text frame."""
        await self.send_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False))

    async def send_action(self, name: str, /, **payload: Any) -> None:
        """Send the frame ``{"action": name, **payload}``."""
        await self.send_json({"action": name, **payload})

    async def request(self, name: str, /, **payload: Any) -> dict[str, Any]:
        """Call the action ``name`` with a fresh ``request_id`` and return its answer: reply or error frame.

        Frames that arrive before the answer stay queued, in order, for ``receive_json``.
        """
        if "request_id" in payload:
            raise TypeError("request() gives each call a fresh request_id: to choose your own, use send_action().")
        self._last_request_id += 1
        request_id = self._last_request_id
        await self.send_action(name, request_id=request_id, **payload)

        def answer() -> dict[str, Any] | None:
            items = self._inbox.items
            for index, message in enumerate(items):
                if message["type"] == "websocket.close":
                    raise AssertionError(
                        f"The app closed the connection ({describe(message)}) before answering {name!r} "
                        f"(request_id {request_id}). It sent:{describe_all(list(items)[:index])}"
                    )
                frame = _json_object(message)
                if frame is not None and _same_id(frame.get("request_id"), request_id):
                    del items[index]
                    return frame
            return None

        return await self._wait_for(f"the answer to {name!r} (request_id {request_id})", answer, _NO_ANSWER_HINT)

    # -- receiving -------------------------------------------------------------------------------------

    async def receive_text(self, timeout: float | None = None) -> str:
        """Return the next frame, a text frame; fail if the app sent something else (it stays queued)."""

        def text() -> str | None:
            message = self._first()
            if message is None:
                return None
            if message["type"] == "websocket.send" and message.get("text") is not None:
                self._inbox.items.popleft()
                return str(message["text"])
            raise AssertionError(f"Expected a text frame from the app, got {describe(message)}.")

        return await self._wait_for("a text frame", text, timeout=timeout)

    async def receive_json(self, timeout: float | None = None) -> Any:
        """Return the next frame decoded from JSON."""
        text = await self.receive_text(timeout)
        try:
            return json.loads(text)
        except ValueError:
            raise AssertionError(f"Expected a JSON frame from the app, got {describe(text)}.") from None

    async def receive_close(self, timeout: float | None = None) -> tuple[int, str]:
        """Return ``(code, reason)`` of the app's close; fail if a frame comes first (it stays queued)."""

        def close() -> tuple[int, str] | None:
            message = self._first()
            if message is None:
                return None
            if message["type"] == "websocket.close":
                self._inbox.items.popleft()
                return int(message.get("code", 1000)), str(message.get("reason") or "")
            raise AssertionError(f"Expected the app to close the connection, got {describe(message)}.")

        return await self._wait_for("the app to close the connection", close, timeout=timeout)

    async def assert_nothing(self, timeout: float = NOTHING_TIMEOUT) -> None:
        """Fail if the app sends anything (a frame or a close) within ``timeout`` seconds, or sent it already."""
        if self._task is None:
            raise RuntimeError(_NOT_CONNECTED)
        if not self._inbox.items and not self._app_ended():
            await self._inbox.wait(timeout)
        self._raise_crash()
        if self._inbox.items:
            raise AssertionError(f"Expected nothing from the app, but it sent:{describe_all(self._inbox.items)}")

    def listen(self, channel_object: BaseChannel, channel: str | None = None) -> ChannelListener:
        """Return a ``ChannelListener`` for what this app broadcasts to ``channel`` of ``channel_object``."""
        return ChannelListener(self.app, channel_object, channel, timeout=self.timeout)

    # -- the app's side --------------------------------------------------------------------------------

    async def _serve(self) -> None:
        await self.app(self.scope, self._receive, self._send)

    async def _receive(self) -> Message:
        message = await self._incoming.get()
        if message["type"] == "websocket.disconnect":
            self._incoming.put_nowait(message)  # as from a server: every later receive sees the disconnect too
        return message

    async def _send(self, message: Message) -> None:
        # A plain coroutine function that never waits: the outbox writes through it as it does through a server's.
        if self._left or self._closed:
            return  # a server drops what is sent to a client that has gone
        self._inbox.put(message)
        if message["type"] == "websocket.close":
            self._closed = True
            # A server tells the app that the client has gone once the app closed the connection.
            self._queue_disconnect(message.get("code", 1000), message.get("reason") or "")

    def _queue_disconnect(self, code: int, reason: str) -> None:
        if not self._disconnect_queued:
            self._disconnect_queued = True
            self._incoming.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})

    # -- waiting ---------------------------------------------------------------------------------------

    async def _wait_for(
        self, what: str, find: Callable[[], T | None], hint: str = "", *, timeout: float | None = None
    ) -> T:
        """Return what ``find`` finds among the queued messages, waiting for more until the deadline."""
        if self._task is None:
            raise RuntimeError(_NOT_CONNECTED)
        timeout = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = find()
            if found is not None:
                return found
            self._raise_crash()
            if self._app_ended():
                raise AssertionError(f"Expected {what}, but the app has finished with the connection{self._why()}.")
            if not await self._inbox.wait(deadline - loop.time()):
                raise AssertionError(
                    f"Waited {timeout} s for {what}; the app sent:{describe_all(self._inbox.items)}{hint}"
                )

    def _handshake_answer(self) -> Message | None:
        message = self._first()
        if message is None:
            return None
        if message["type"] in ("websocket.accept", "websocket.close"):
            return self._inbox.items.popleft()
        raise AssertionError(f"Expected the app to accept or refuse the connection, got {describe(message)}.")

    def _first(self) -> Message | None:
        return self._inbox.items[0] if self._inbox.items else None

    def _app_ended(self) -> bool:
        return self._task is not None and self._task.done()

    def _why(self) -> str:
        if self._left:
            return " (the client has disconnected)"
        if self._crash_reported:
            return " (it raised an exception)"
        return " (it returned without closing it)" if not self._closed else ""

    def _raise_crash(self) -> None:
        """Raise, once, the exception the app raised while serving the connection."""
        task = self._task
        if task is None or not task.done() or task.cancelled() or self._crash_reported:
            return
        crash = task.exception()
        if crash is not None:
            self._crash_reported = True
            raise crash

    def _check_open(self) -> None:
        if self._task is None:
            raise RuntimeError(_NOT_CONNECTED)
        if self._left:
            raise RuntimeError("This communicator has disconnected: make a new one to connect again.")

    async def _release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.release(self.timeout)


def _websocket_scope(
    path: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
    user: BaseUser | None,
    subprotocols: Sequence[str],
    client: tuple[str, int],
) -> Scope:
    """Build the ASGI scope of a websocket handshake to ``path``, as a server would."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/"):
        raise ValueError(f"Pass the path to connect to, such as '/room?token=abc', not {path!r}.")
    pairs = list((headers.items() if isinstance(headers, Mapping) else headers) or ())
    raw_headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs]
    names = {name for name, _ in raw_headers}
    defaults = [(b"host", b"testserver"), (b"connection", b"upgrade"), (b"upgrade", b"websocket")]
    raw_headers = [(name, value) for name, value in defaults if name not in names] + raw_headers
    raw_headers.append((b"sec-websocket-version", b"13"))
    if subprotocols:
        raw_headers.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode("latin-1")))
    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": client,
        "root_path": "",
        "path": unquote(parts.path),
        "raw_path": parts.path.encode("latin-1"),
        "query_string": parts.query.encode("latin-1"),
        "headers": raw_headers,
        "subprotocols": list(subprotocols),
        "state": {},
        "extensions": {},
    }
    if user is not None:
        scope["user"] = user
        scope["auth"] = AuthCredentials(["authenticated"] if user.is_authenticated else [])
    return scope


def _json_object(message: Message) -> dict[str, Any] | None:
    text = message.get("text") if message["type"] == "websocket.send" else None
    if text is None:
        return None
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


def _same_id(value: Any, request_id: int) -> bool:
    return type(value) is int and value == request_id
