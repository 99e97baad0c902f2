"""Topic patterns: what ``BaseChannel.listen`` hears, every channel whose name matches, as in MQTT.

Channel names are read as dot-separated segments. In a pattern, ``+`` stands for exactly one segment and
``#``, only as the last segment, for any number of them (none included): ``sensors.+.temp`` matches
``sensors.kitchen.temp``, and ``sensors.#`` matches ``sensors``, ``sensors.kitchen`` and
``sensors.kitchen.temp``. A pattern without wildcards matches its one channel.

The backend is asked for a glob that matches at least every name the pattern matches (Redis ``PSUBSCRIBE``,
whose ``*`` spans dots too); each message is then matched exactly here. A ``TopicSubscription`` holds at most
``queue_size`` messages for its reader: when a slow reader lets more wait, the oldest are dropped and counted
in ``dropped``, so that a subscription never grows the server's memory.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from typing import Any, NamedTuple

from pydantic_core import from_json

from fastapi_channels.protocol import MAX_NAME_LENGTH

__all__ = ["TopicPattern", "TopicMessage", "TopicSubscription", "DEFAULT_TOPIC_QUEUE_SIZE"]

logger = logging.getLogger("fastapi_channels.topics")

DEFAULT_TOPIC_QUEUE_SIZE = 1000
"""Messages a topic subscription holds for its reader before it drops the oldest."""

_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


class TopicPattern:
    """A validated MQTT-style pattern over channel names: ``+`` one segment, ``#`` the rest.

    Raises:
        ValueError: The pattern is empty, too long, or has a wildcard that is not a whole segment (``#`` only
            as the last one).
    """

    __slots__ = ("pattern", "_regex", "_glob")

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"A topic pattern must be a non-empty string such as 'sensors.+.temp', not {pattern!r}.")
        if len(pattern) > MAX_NAME_LENGTH:
            raise ValueError(f"A topic pattern must be at most {MAX_NAME_LENGTH} characters.")
        segments = pattern.split(".")
        regex: list[str] = []
        glob: list[str] = []
        for index, segment in enumerate(segments):
            last = index == len(segments) - 1
            if "#" in segment and (segment != "#" or not last):
                raise ValueError(f"In {pattern!r}, '#' must be the whole last segment, as in 'sensors.#'.")
            if "+" in segment and segment != "+":
                raise ValueError(f"In {pattern!r}, '+' must be a whole segment, as in 'sensors.+.temp'.")
            if segment == "#":
                # "a.#" also matches "a" itself: the dot before it is optional.
                regex.append(r"(?:\..*)?" if index else ".*")
                glob.append("*")
                continue
            separator = r"\." if index else ""
            regex.append(separator + ("[^.]*" if segment == "+" else re.escape(segment)))
            glob.append(("." if index else "") + ("*" if segment == "+" else _GLOB_SPECIAL.sub(r"\\\1", segment)))
        self.pattern = pattern
        self._regex = re.compile("".join(regex), re.S)
        self._glob = "".join(glob)

    def matches(self, name: str) -> bool:
        """Return whether the channel ``name`` matches the pattern."""
        return self._regex.fullmatch(name) is not None

    def glob(self, prefix: str) -> str:
        """Return a glob (Redis ``PSUBSCRIBE`` syntax) for the backend names ``prefix + name`` of matching channels.

        It may match more names than the pattern does (``*`` spans dots): match each message with ``matches``.
        """
        return _GLOB_SPECIAL.sub(r"\\\1", prefix) + self._glob

    def __repr__(self) -> str:
        return f"TopicPattern({self.pattern!r})"


class TopicMessage(NamedTuple):
    """One message a topic subscription received: the channel it was broadcast to, and the message."""

    channel: str
    """The channel's name, as ``connect`` and ``broadcast_to_channel`` name it."""
    message: Any
    """The message decoded from JSON, or its text when it is not JSON."""


class TopicSubscription:
    """The messages of every channel a pattern matches, oldest first: iterate it with ``async for``.

    The iteration ends when the subscription is left (its ``async with`` block ends) or the app stops.
    """

    def __init__(self, pattern: TopicPattern, *, prefix: str, queue_size: int, publications: bool) -> None:
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be a positive number of messages, not {queue_size!r}.")
        self.pattern = pattern
        self.dropped = 0
        """Messages dropped, the oldest first, because ``queue_size`` of them were already waiting."""
        self.queue_size = queue_size
        self._prefix = prefix
        # Channels with history broadcast publication frames: the message is their "data" (or "text").
        self._publications = publications
        self._queue: deque[tuple[str, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def offer(self, backend_channel: str, text: str) -> None:
        """Take a message the backend received on ``backend_channel``, if the pattern matches its channel."""
        if self._closed or not backend_channel.startswith(self._prefix):
            return
        name = backend_channel[len(self._prefix) :]
        if not self.pattern.matches(name):
            return
        if len(self._queue) >= self.queue_size:
            self._queue.popleft()
            if not self.dropped:
                logger.warning(
                    "The reader of the topic subscription %r is too slow: dropping its oldest messages",
                    self.pattern.pattern,
                )
            self.dropped += 1
        self._queue.append((name, text))
        self._wake()

    def close(self) -> None:
        """End the iteration once the messages already received have been read."""
        self._closed = True
        self._wake()

    def __aiter__(self) -> TopicSubscription:
        return self

    async def __anext__(self) -> TopicMessage:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        name, text = self._queue.popleft()
        return TopicMessage(name, self._decode(text))

    def _decode(self, text: str) -> Any:
        try:
            decoded = from_json(text, allow_inf_nan=False)
        except ValueError:
            return text
        if self._publications and isinstance(decoded, dict):
            return decoded["data"] if "data" in decoded else decoded.get("text")
        return decoded

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
