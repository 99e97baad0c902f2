"""The circuit breaker: its states on a clock of the test's own, and how the channel layer's publishing uses it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from broadcaster import Broadcast

from fastapi_channels import layers
from fastapi_channels.breaker import CircuitBreaker
from fastapi_channels.exceptions import BackendUnavailable
from fastapi_channels.layers import ChannelLayer
from tests.apps.backends import CountingMemoryBackend


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def open_breaker(clock: Clock, *, reset_timeout: float = 5.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=reset_timeout, clock=clock)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    return breaker


def test_breaker_closed_lets_every_call_through_until_the_threshold_of_failures_in_a_row() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=5, clock=clock)
    assert breaker.state == "closed"
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed"
    # A success in between starts the count again.
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()


def test_breaker_open_refuses_every_call_until_reset_timeout_then_lets_exactly_one_probe_through() -> None:
    clock = Clock()
    breaker = open_breaker(clock)
    clock.advance(4.999)
    assert [breaker.allow() for _ in range(100)] == [False] * 100
    clock.advance(0.001)
    assert breaker.state == "half-open"
    assert breaker.allow()  # the probe
    # While the probe is under way, everyone else is still refused.
    clock.advance(1)
    assert breaker.state == "half-open"
    assert [breaker.allow() for _ in range(10)] == [False] * 10


def test_breaker_probe_that_succeeds_closes_the_breaker() -> None:
    clock = Clock()
    breaker = open_breaker(clock)
    clock.advance(5)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(10))
    # Closed again means one failure (the threshold) opens it again.
    breaker.record_failure()
    assert breaker.state == "open"


def test_breaker_probe_that_fails_opens_it_for_another_reset_timeout() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=5, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(5)
    assert breaker.allow()
    clock.advance(0.5)
    # One failed probe is enough, whatever the threshold.
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(4.999)
    assert not breaker.allow()
    clock.advance(0.001)
    assert breaker.allow()


def test_breaker_probe_that_never_reports_lets_the_next_probe_through_after_reset_timeout() -> None:
    clock = Clock()
    breaker = open_breaker(clock)
    clock.advance(5)
    assert breaker.allow()  # this probe is cancelled, or fails in a way that says nothing about the backend
    clock.advance(4.999)
    assert not breaker.allow()
    clock.advance(0.001)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be a whole number of at least 1"),
        ({"failure_threshold": 1.5}, "failure_threshold must be a whole number of at least 1"),
        ({"failure_threshold": True}, "failure_threshold must be a whole number of at least 1"),
        ({"reset_timeout": 0}, "reset_timeout must be a positive number of seconds"),
        ({"reset_timeout": -1.0}, "reset_timeout must be a positive number of seconds"),
        ({"reset_timeout": "1"}, "reset_timeout must be a positive number of seconds"),
    ],
)
def test_breaker_with_a_bad_setting_raises_value_error_naming_it(keywords: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**keywords)


# -- in the channel layer -----------------------------------------------------------------------------------


class FlakyBackend(CountingMemoryBackend):
    """An in-process backend that fails every publish with ``failure`` while it is set, counting the attempts."""

    def __init__(self, url: str = "flaky-memory://") -> None:
        super().__init__(url)
        self.failure: Exception | None = None
        self.attempts = 0

    async def publish(self, channel: str, message: Any) -> None:
        self.attempts += 1
        if self.failure is not None:
            raise self.failure
        await super().publish(channel, message)


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[Broadcast, FlakyBackend]]:
    """A connected ``Broadcast`` on a ``FlakyBackend``; each test builds its layer after changing the settings."""
    backend = FlakyBackend()
    broadcast = Broadcast(backend=backend)
    await broadcast.connect()
    try:
        yield broadcast, backend
    finally:
        await broadcast.disconnect()


async def publish_until_it_works(layer: ChannelLayer, channel: str, text: str, *, within: float) -> None:
    """Publish ``text`` until the layer takes it; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            await layer.publish(channel, text)
            return
        except BackendUnavailable:
            assert time.monotonic() < deadline, f"publishing did not work again within {within} s"
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("failure", [ConnectionError("refused"), TimeoutError(), OSError("unreachable")])
async def test_layer_publish_after_the_backend_was_unreachable_fails_at_once_without_trying_the_backend(
    monkeypatch: pytest.MonkeyPatch, flaky: tuple[Broadcast, FlakyBackend], channel_name: str, failure: Exception
) -> None:
    monkeypatch.setattr(layers, "BREAKER_RESET_TIMEOUT", 3600.0)  # nothing in this test waits for a probe
    broadcast, backend = flaky
    layer = ChannelLayer(broadcast)
    backend.failure = failure
    with pytest.raises(BackendUnavailable) as first:
        await layer.publish(channel_name, "lost")
    assert first.value.__cause__ is failure
    backend.failure = None
    for text in ("refused", "refused too"):
        with pytest.raises(BackendUnavailable) as refused:
            await layer.publish(channel_name, text)
        assert (refused.value.code, refused.value.close, refused.value.error_msg) == (
            first.value.code,
            first.value.close,
            first.value.error_msg,
        )
        with pytest.raises(BackendUnavailable):
            await layer.send_direct(text, user="alice")
    # Only the first publish reached the backend.
    assert backend.attempts == 1
    assert backend.published == []


async def test_layer_publish_probes_after_the_reset_timeout_and_works_again_once_the_backend_does(
    monkeypatch: pytest.MonkeyPatch, flaky: tuple[Broadcast, FlakyBackend], channel_name: str
) -> None:
    monkeypatch.setattr(layers, "BREAKER_RESET_TIMEOUT", 0.05)
    broadcast, backend = flaky
    layer = ChannelLayer(broadcast)
    backend.failure = ConnectionError("refused")
    with pytest.raises(BackendUnavailable):
        await layer.publish(channel_name, "lost")
    backend.failure = None
    await publish_until_it_works(layer, channel_name, "back", within=5)
    assert backend.published == [(layer.prefix + channel_name, "back")]
    await layer.publish(channel_name, "and again")
    assert backend.published[-1] == (layer.prefix + channel_name, "and again")


async def test_layer_publish_the_backend_refuses_fails_alone_and_leaves_publishing_open(
    flaky: tuple[Broadcast, FlakyBackend], channel_name: str
) -> None:
    broadcast, backend = flaky
    layer = ChannelLayer(broadcast)
    # A backend that answered but refused this one message (too large, a server-side error) is not down.
    backend.failure = ValueError("payload string too long")
    with pytest.raises(BackendUnavailable) as refused:
        await layer.publish(channel_name, "x" * 10_000)
    assert isinstance(refused.value.__cause__, ValueError)
    backend.failure = None
    await layer.publish(channel_name, "next")
    assert backend.published == [(layer.prefix + channel_name, "next")]


async def test_layer_publish_cancelled_while_probing_never_leaves_publishing_shut(
    monkeypatch: pytest.MonkeyPatch, channel_name: str
) -> None:
    monkeypatch.setattr(layers, "BREAKER_RESET_TIMEOUT", 0.05)

    class StallingBackend(FlakyBackend):
        """Publishes hang while ``stall`` is set, like a server that accepted the connection and went quiet."""

        stall = False

        async def publish(self, channel: str, message: Any) -> None:
            if self.stall:
                self.attempts += 1
                await asyncio.Event().wait()
            await super().publish(channel, message)

    backend = StallingBackend()
    broadcast = Broadcast(backend=backend)
    await broadcast.connect()
    try:
        layer = ChannelLayer(broadcast)
        backend.failure = ConnectionError("refused")
        with pytest.raises(BackendUnavailable):
            await layer.publish(channel_name, "lost")
        backend.failure, backend.stall = None, True
        prober = asyncio.create_task(publish_until_it_works(layer, channel_name, "probe", within=5))
        deadline = time.monotonic() + 5
        while backend.attempts < 2:
            assert time.monotonic() < deadline, "no probe was let through"
            await asyncio.sleep(0.01)
        # The probe's client goes away: its publish is cancelled, and says nothing about the backend.
        prober.cancel()
        with pytest.raises(asyncio.CancelledError):
            await prober
        backend.stall = False
        await publish_until_it_works(layer, channel_name, "after", within=5)
        assert backend.published == [(layer.prefix + channel_name, "after")]
    finally:
        await broadcast.disconnect()
