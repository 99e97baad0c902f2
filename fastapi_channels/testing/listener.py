"""``ChannelListener``: hear what an app broadcasts to one channel, as its members would, without a socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp

from fastapi_channels.history import Position
from fastapi_channels.protocol import publication_head, publication_position, render_publication, split_member
from fastapi_channels.testing.frames import DEFAULT_TIMEOUT, NOTHING_TIMEOUT, Inbox, describe_all
from fastapi_channels.testing.lifespan import Lease, acquire_lifespan, channel_config

if TYPE_CHECKING:
    from fastapi_channels.channels import BaseChannel

__all__ = ["ChannelListener"]


class ChannelListener:
    """Subscribe to ``channel`` of ``channel_object`` on ``app``'s channel layer; use it as ``async with``.

    It hears every broadcast to the channel from the moment the block is entered, on every process that
    shares the backend, like a client connected there (Phoenix's ``subscribe`` before ``assert_broadcast``).
    It starts the app's lifespan if needed, as ``ChannelCommunicator`` does, and shares it with them.

    On a channel with history, broadcasts go out as publication frames; the listener hears the message each
    one carries (as it was broadcast), and keeps the place of the last one it returned in ``position``.

    Args:
        app: The ASGI app, usually your FastAPI app.
        channel_object: The channel object whose broadcasts to hear (``Room(...)``): its group is part of the topic.
        channel: The channel name; the object's own ``channel`` by default.
        timeout: Seconds each wait may take before the test fails.
    """

    def __init__(
        self, app: ASGIApp, channel_object: BaseChannel, channel: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.app = app
        self.channel_object = channel_object
        self.channel = channel if channel is not None else channel_object.channel
        self.timeout = timeout
        self.position: Position | None = None
        """Where the last broadcast returned stands in the channel's history (None: no history, or none yet)."""
        self._inbox: Inbox[_Heard] = Inbox()
        self._head = publication_head(self.channel) if channel_object.retention is not None else None
        self._lease: Lease | None = None
        self._subscription: contextlib.AbstractAsyncContextManager[Any] | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ChannelListener:
        self._lease = await acquire_lifespan(self.app, self.timeout)
        try:
            config = channel_config(self.app)
            if config is None or not config.started:
                raise RuntimeError("This app has no channels running: call add_channel(app) when you create it.")
            topic = config.layer.prefix + self.channel_object.topic(self.channel)
            self._subscription = config.broadcast.subscribe(topic)
            subscriber = await self._subscription.__aenter__()
            self._reader = asyncio.create_task(self._read(subscriber), name=f"fastapi-channels-listener:{self.channel}")
            self._reader.add_done_callback(lambda _: self._inbox.wake())
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self._close()

    async def receive_text(self, timeout: float | None = None) -> str:
        """Return the next broadcast heard, as its text."""
        return await self._wait_for("a broadcast", lambda text: True, timeout)

    async def receive_json(self, timeout: float | None = None) -> Any:
        """Return the next broadcast heard, decoded from JSON."""
        text = await self.receive_text(timeout)
        try:
            return json.loads(text)
        except ValueError:
            raise AssertionError(f"Expected a JSON broadcast on {self.channel!r}, heard {text!r}.") from None

    async def assert_broadcast(self, message: Any, timeout: float | None = None) -> Any:
        """Wait for a broadcast equal to ``message`` (its text, for a ``str``; else decoded JSON) and return it.

        Broadcasts heard before it that differ stay queued, in order.
        """
        if isinstance(message, str):
            text = await self._wait_for(f"the broadcast {message!r}", lambda heard: heard == message, timeout)
            return text
        found = await self._wait_for(f"the broadcast {message!r}", lambda heard: _decoded(heard) == message, timeout)
        return json.loads(found)

    async def assert_nothing(self, timeout: float = NOTHING_TIMEOUT) -> None:
        """Fail if anything is broadcast to the channel within ``timeout`` seconds, or was already."""
        if not self._inbox.items:
            await self._inbox.wait(timeout)
        self._raise_failure()
        if self._inbox.items:
            heard_texts = (heard.text for heard in self._inbox.items)
            raise AssertionError(f"Expected no broadcast on {self.channel!r}, but heard:{describe_all(heard_texts)}")

    async def _wait_for(self, what: str, matches: Callable[[str], bool], timeout: float | None) -> str:
        if self._reader is None:
            raise RuntimeError("This listener is not listening: use `async with ChannelListener(...)`.")
        timeout = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index, heard in enumerate(self._inbox.items):
                if matches(heard.text):
                    del self._inbox.items[index]
                    self.position = heard.position
                    return heard.text
            self._raise_failure()
            if not await self._inbox.wait(deadline - loop.time()):
                heard_texts = (heard.text for heard in self._inbox.items)
                raise AssertionError(
                    f"Waited {timeout} s for {what} on {self.channel!r}; heard:{describe_all(heard_texts)}"
                )

    async def _read(self, subscriber: Any) -> None:
        async for event in subscriber:
            if event is not None:
                self._inbox.put(_unwrapped(event.message, self._head))

    def _raise_failure(self) -> None:
        reader = self._reader
        if reader is not None and reader.done() and not reader.cancelled():
            failure = reader.exception()
            if failure is not None:
                raise AssertionError(f"Listening to {self.channel!r} failed: {failure!r}") from failure
            raise AssertionError(f"The subscription to {self.channel!r} ended: the app's channel layer stopped.")

    async def _close(self) -> None:
        subscription, self._subscription = self._subscription, None
        reader, self._reader = self._reader, None
        lease, self._lease = self._lease, None
        try:
            if subscription is not None:
                await subscription.__aexit__(None, None, None)
            if reader is not None:
                done, _ = await asyncio.wait({reader}, timeout=self.timeout)
                if not done:
                    reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
        finally:
            if lease is not None:
                await lease.release(self.timeout)


@dataclass(frozen=True)
class _Heard:
    """A broadcast heard: the message as it was broadcast, and its place in the channel's history if it has one."""

    text: str
    position: Position | None = None


def _unwrapped(text: str, head: str | None) -> _Heard:
    """Return the message a publication frame (one that starts with ``head``) carries; other text as it is."""
    position = publication_position(text, head) if head is not None else None
    if head is None or position is None:
        return _Heard(text)
    offset, epoch = position
    # The frame is head, position, member and a closing brace: the member starts where an empty one would.
    start = len(render_publication(head, offset, epoch, "")) - 1
    message, _ = split_member(text[start:-1])
    return _Heard(message, Position(offset, epoch))


def _decoded(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _UNDECODABLE


_UNDECODABLE = object()
