"""What arrived for a test, in order, and waiting for more with a deadline."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from starlette.types import Message

__all__ = ["DEFAULT_TIMEOUT", "NOTHING_TIMEOUT", "Inbox", "describe", "describe_all"]

DEFAULT_TIMEOUT = 5.0
"""Seconds the test helpers wait for a frame (or a close, a reply, the app) before failing the test."""

NOTHING_TIMEOUT = 0.1
"""Seconds ``assert_nothing`` watches for a frame (or a broadcast) that must not come."""

T = TypeVar("T")

_SHOWN = 200  # characters of a frame an error message shows


class Inbox(Generic[T]):
    """What arrived and was not taken yet, in order; waiters wake when something arrives or ``wake`` is called."""

    def __init__(self) -> None:
        self.items: deque[T] = deque()
        self._waiters: set[asyncio.Future[None]] = set()

    def put(self, item: T) -> None:
        """Keep ``item`` behind the others and wake whoever waits."""
        self.items.append(item)
        self.wake()

    def wake(self) -> None:
        """Wake whoever waits, for example because nothing more can arrive."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """Wait until something arrives (or ``wake``) within ``timeout`` seconds; return whether it did."""
        if timeout <= 0:
            return False
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
            return bool(done)
        finally:
            self._waiters.discard(waiter)
            waiter.cancel()


def describe(item: Message | str) -> str:
    """Return a short description of an ASGI message (or a heard text) for an error message."""
    if isinstance(item, str):
        return _shorten(item)
    kind = item.get("type")
    if kind == "websocket.send":
        text = item.get("text")
        return _shorten(text) if text is not None else f"bytes {_shorten(repr(item.get('bytes')))}"
    if kind == "websocket.close":
        reason = item.get("reason") or ""
        return f"close {item.get('code', 1000)}" + (f" {reason!r}" if reason else "")
    return _shorten(repr(item))


def describe_all(items: Iterable[Any]) -> str:
    """Return what is queued, one item a line, for an error message."""
    shown = [f"\n  {describe(item)}" for item in items]
    return "".join(shown) if shown else " nothing"


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + f"... ({len(text)} characters)"
