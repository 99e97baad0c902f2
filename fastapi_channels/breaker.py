"""A circuit breaker: once a backend is known to be down, fail at once instead of waiting on it again.

Closed, every call goes through. After ``failure_threshold`` failures in a row it opens: calls are refused
without touching the backend for ``reset_timeout`` seconds. Then it is half-open: one call goes through as a
probe while the others are still refused; a success closes the breaker, a failure opens it again. A probe
that ends without a verdict (cancelled, or failed in a way that says nothing about the backend) lets the
next probe through ``reset_timeout`` seconds later, so the breaker can never stay shut for good. Every
step is O(1) and no background task is needed: time is read from a monotonic clock when a call asks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

__all__ = ["CircuitBreaker"]

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Refuse calls for ``reset_timeout`` seconds after ``failure_threshold`` failures in a row, then probe once.

    Args:
        failure_threshold: Failures in a row that open the breaker.
        reset_timeout: Seconds the breaker refuses calls before it lets one probe through.
        clock: Monotonic seconds (``time.monotonic``); tests pass their own.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 1,
        reset_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(failure_threshold, int) or isinstance(failure_threshold, bool) or failure_threshold < 1:
            raise ValueError(f"failure_threshold must be a whole number of at least 1, not {failure_threshold!r}.")
        if not isinstance(reset_timeout, int | float) or isinstance(reset_timeout, bool) or reset_timeout <= 0:
            raise ValueError(f"reset_timeout must be a positive number of seconds, not {reset_timeout!r}.")
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self._clock = clock
        self._failures = 0
        # None while closed; else the time before which calls are refused (while open, or while a probe runs).
        self._refuse_until: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        """Return ``"closed"``, ``"open"`` (refusing) or ``"half-open"`` (a probe may go, or is under way)."""
        if self._refuse_until is None:
            return "closed"
        if self._probing or self._clock() >= self._refuse_until:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """Return whether a call may go through now; when half-open, the caller that gets True is the probe."""
        if self._refuse_until is None:
            return True
        now = self._clock()
        if now < self._refuse_until:
            return False
        # This caller probes; the others stay refused until it reports, or for another reset_timeout at most.
        self._refuse_until = now + self.reset_timeout
        self._probing = True
        return True

    def record_success(self) -> None:
        """Close the breaker: the backend answered."""
        self._failures = 0
        self._refuse_until = None
        self._probing = False

    def record_failure(self) -> None:
        """Count a failure that says the backend cannot be reached; open at the threshold, or when a probe failed."""
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._refuse_until = self._clock() + self.reset_timeout
            self._probing = False
