"""Heartbeats and timeouts of one connection: ping a silent client, close an idle or too old one.

A ``Watchdog`` keeps one timer per connection and reschedules it lazily: a frame only stores the time it
arrived, so a busy connection costs one clock read per frame and no timer churn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette import status

__all__ = ["Watchdog", "IDLE_CLOSE_CODE", "LIFETIME_CLOSE_CODE", "PING_FRAME", "check_timeout"]

IDLE_CLOSE_CODE = 4408
"""The close code of a connection that sent nothing for ``idle_timeout`` seconds (408 is HTTP's timeout)."""
LIFETIME_CLOSE_CODE = status.WS_1001_GOING_AWAY
"""The close code of a connection that reached ``max_lifetime``: the client should reconnect, at once."""
PING_FRAME = '{"type":"ping"}'
"""What the server sends a client that has been silent for ``heartbeat_interval`` seconds; answer with any
frame, for example ``{"action": "pong"}`` (which every ``Channel`` accepts silently)."""


def check_timeout(name: str, value: object) -> float | None:
    """Return ``value`` as seconds, or None; raise ``ValueError`` for anything but a positive number or None."""
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds or None, not {value!r}.")
    return float(value)


class Watchdog:
    """Time one connection: ``ping`` it when silent, ``expire(code, reason)`` it when idle or too old."""

    def __init__(
        self,
        *,
        heartbeat_interval: float | None,
        idle_timeout: float | None,
        max_lifetime: float | None,
        ping: Callable[[], None],
        expire: Callable[[int, str], None],
    ) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.idle_timeout = idle_timeout
        self.max_lifetime = max_lifetime
        self._ping = ping
        self._expire = expire
        self._loop = asyncio.get_running_loop()
        self.last_seen = self._started = self._loop.time()
        self._pinged_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._schedule()

    def seen(self) -> None:
        """Note that the client sent a frame now."""
        self.last_seen = self._loop.time()

    def stop(self) -> None:
        """Stop timing: the connection has ended."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        deadlines = []
        if self.idle_timeout is not None:
            deadlines.append(self.last_seen + self.idle_timeout)
        if self.heartbeat_interval is not None:
            deadlines.append(max(self.last_seen, self._pinged_at) + self.heartbeat_interval)
        if self.max_lifetime is not None:
            deadlines.append(self._started + self.max_lifetime)
        if deadlines:
            self._timer = self._loop.call_at(min(deadlines), self._check)

    def _check(self) -> None:
        self._timer = None
        now = self._loop.time()
        if self.max_lifetime is not None and now >= self._started + self.max_lifetime:
            self._expire(LIFETIME_CLOSE_CODE, "Connection lifetime reached: reconnect.")
            return
        if self.idle_timeout is not None and now >= self.last_seen + self.idle_timeout:
            self._expire(IDLE_CLOSE_CODE, f"No frame for {self.idle_timeout:g} seconds.")
            return
        if (
            self.heartbeat_interval is not None
            and now >= max(self.last_seen, self._pinged_at) + self.heartbeat_interval
        ):
            self._pinged_at = now
            self._ping()
        self._schedule()
