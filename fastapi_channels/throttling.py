"""Rate limits for actions and channels, built on fastapi-limiter's ``WebSocketRateLimiter`` and pyrate-limiter.

Every limit keeps one small token bucket per key (``channel:action:client``), in memory or in Redis
(a hash that expires by itself, updated atomically by pyrate-limiter's Lua script). Checks never block:
a request over the limit is refused at once with the time the client should wait.
"""

from __future__ import annotations

import inspect
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import HTTPException
from fastapi_limiter.depends import WebSocketRateLimiter
from pyrate_limiter import (
    AbstractBucket,
    BucketFactory,
    InMemoryStateStore,
    Limiter,
    MonotonicClock,
    Rate,
    RateItem,
    RedisStateStore,
    StateBucket,
    TokenBucket,
    WallClock,
    validate_rate_list,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette import status
from starlette.websockets import WebSocket

from fastapi_channels.exceptions import BackendUnavailable, RateLimitExceeded
from fastapi_channels.identity import user_of

__all__ = [
    "limiter",
    "RateSpec",
    "Identifier",
    "WsCallback",
    "default_identifier",
    "ChannelRateLimiter",
    "LimiterBackend",
    "LimitHandled",
    "call_fastapi_limiter",
]

F = TypeVar("F", bound=Callable[..., Any])

LIMITS_ATTR = "__fastapi_channels_limits__"

Identifier = Callable[[WebSocket], "str | Awaitable[str]"]
"""Names whose budget a request spends: ``(websocket) -> str``, sync or async."""
WsCallback = Callable[[WebSocket, int], Any]
"""Answers a refused request instead of ``RateLimitExceeded``: ``(websocket, retry_after_ms)``."""

# Buckets kept per limit before the least recently used are forgotten: in memory only once they have fully
# refilled, so a limit keeps every key active within its longest period; Redis state outlives its handle.
MAX_CACHED_BUCKETS = 10_000


def default_identifier(websocket: WebSocket) -> str:
    """Identify the client: its authenticated user where there is one, else its peer address.

    ``X-Forwarded-For`` is never read: behind a trusted proxy, run uvicorn with ``--proxy-headers`` and
    ``--forwarded-allow-ips`` so that the peer address is the real client's.
    """
    user = user_of(websocket)
    if user is not None:
        return f"user:{user}"
    client = websocket.client
    return f"ip:{client.host}" if client is not None else "ip:unknown"


@dataclass(frozen=True)
class RateSpec:
    """A rate limit of ``times`` requests per ``milliseconds``; decorate an action or list it in throttle_classes."""

    times: int
    milliseconds: int
    identifier: Identifier | None = None
    ws_callback: WsCallback | None = None

    def rate(self) -> Rate:
        """Return the pyrate-limiter rate: ``times`` per period, bursting up to ``times``."""
        return Rate(self.times, self.milliseconds)

    def __call__(self, func: F) -> F:
        """Attach this limit to an action function (before or after ``@action``) and return it."""
        if not callable(func):
            raise TypeError(f"@limiter decorates functions, not {func!r}.")
        limits: tuple[RateSpec, ...] = getattr(func, LIMITS_ATTR, ())
        combined = (*limits, self)
        _validate([spec for spec in combined if spec.identifier is self.identifier])
        setattr(func, LIMITS_ATTR, combined)
        return func

    def __str__(self) -> str:
        return f"{self.times}/{self.milliseconds}ms"


def limiter(
    times: int = 1,
    *,
    milliseconds: int = 0,
    seconds: int = 0,
    minutes: int = 0,
    hours: int = 0,
    identifier: Identifier | None = None,
    ws_callback: WsCallback | None = None,
) -> RateSpec:
    """Limit an action to ``times`` calls per period, per client (see ``default_identifier``).

    Use it as a decorator above or below ``@action`` / ``room.action(...)``, or pass it in a channel's
    ``throttle_classes`` for a limit shared by all the channel's actions.

    Args:
        times: Requests allowed per period (and the largest burst).
        milliseconds: Milliseconds of the period (all four period keywords are added together).
        seconds: Seconds of the period.
        minutes: Minutes of the period.
        hours: Hours of the period.
        identifier: ``(websocket) -> str``, sync or async, naming whose budget a request spends.
        ws_callback: ``(websocket, retry_after_ms)`` called instead of sending ``RateLimitExceeded``;
            the action is not run either way.
    """
    period = milliseconds + 1000 * (seconds + 60 * minutes + 3600 * hours)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise ValueError(f"limiter(times=...) must be a positive integer, not {times!r}.")
    if period <= 0:
        raise ValueError("limiter() needs a period: pass milliseconds=, seconds=, minutes= or hours=.")
    return RateSpec(times=times, milliseconds=period, identifier=identifier, ws_callback=ws_callback)


def check_throttle_like(throttles: Any) -> None:
    """Raise TypeError at definition time unless ``throttles`` is a sequence of limits."""
    if throttles is None:
        return
    if isinstance(throttles, RateSpec | str) or not isinstance(throttles, list | tuple):
        raise TypeError(f"throttle_classes must be a list of limiter(...) or WebSocketRateLimiter, not {throttles!r}.")
    for throttle in throttles:
        if not (isinstance(throttle, RateSpec | WebSocketRateLimiter) or callable(throttle)):
            raise TypeError(f"{throttle!r} in throttle_classes is neither limiter(...) nor a WebSocketRateLimiter.")


def get_limits(func: Any) -> tuple[RateSpec, ...]:
    """Return the limits ``@limiter`` attached to ``func``."""
    return tuple(getattr(func, LIMITS_ATTR, ()))


def _validate(specs: list[RateSpec]) -> None:
    rates = sorted((spec.rate() for spec in specs), key=lambda rate: rate.interval)
    if not validate_rate_list(rates):
        raise ValueError(
            f"These limits contradict each other: {', '.join(map(str, specs))}. Each longer period must allow "
            "more requests than a shorter one, at the same or a lower rate (e.g. 5 per second with 100 per minute)."
        )


class KeyedBucketFactory(BucketFactory):
    """Give every key its own constant-size token bucket, so one client never spends another's budget."""

    def __init__(self, rates: list[Rate], *, redis: Redis | None = None, prefix: str = "fastapi-channels") -> None:
        self.rates = rates
        self.redis = redis
        self.prefix = prefix
        # Redis state is compared across hosts, so it needs wall-clock time.
        self.clock = WallClock() if redis is not None else MonotonicClock()
        # Least recently used first, so eviction looks only at the oldest.
        self.buckets: OrderedDict[str, StateBucket] = OrderedDict()
        # Keys between their check and its retry-after: their buckets are never evicted.
        self.in_use: Counter[str] = Counter()

    def wrap_item(self, name: str, weight: int = 1) -> RateItem:
        """Stamp the request with the current time."""
        return RateItem(name, self.clock.now(), weight=weight)

    def get(self, item: RateItem) -> AbstractBucket:
        """Return the bucket of the request's key, creating it on first use."""
        return self.bucket_for(item.name)

    def bucket_for(self, key: str) -> StateBucket:
        """Return (and mark as recently used) the bucket of ``key``."""
        bucket = self.buckets.get(key)
        if bucket is not None:
            self.buckets.move_to_end(key)
            return bucket
        store = (
            RedisStateStore(self.redis, key=f"{self.prefix}:limit:{key}")
            if self.redis is not None
            else InMemoryStateStore()
        )
        bucket = StateBucket(self.rates, algorithm=TokenBucket(), store=store, clock=self.clock)
        self.buckets[key] = bucket
        self._evict()
        return bucket

    @contextmanager
    def using(self, key: str) -> Iterator[None]:
        """Keep the bucket of ``key`` cached while a check of it is under way."""
        self.in_use[key] += 1
        try:
            yield
        finally:
            self.in_use[key] -= 1
            if not self.in_use[key]:
                del self.in_use[key]

    def _evict(self) -> None:
        """Forget the least recently used buckets beyond ``MAX_CACHED_BUCKETS`` that nobody would miss."""
        # At least one stays: the newest, which the caller is about to use.
        while len(self.buckets) > max(MAX_CACHED_BUCKETS, 1):
            key, bucket = next(iter(self.buckets.items()))
            if key in self.in_use or not self._forgettable(bucket):
                # Stopping at the oldest keeps checks O(1) amortised (each bucket is forgotten once); the next
                # new key tries again.
                return
            del self.buckets[key]

    def _forgettable(self, bucket: StateBucket) -> bool:
        """Return whether a fresh bucket would decide exactly as ``bucket`` does from now on."""
        if self.redis is not None:
            # The state lives in Redis under a key that expires by itself; the local object is only a handle.
            return True
        # In memory the bucket *is* its state. Owing nothing means every rate has fully refilled, as in a fresh
        # bucket. A bucket refills at most one longest period (rounded up to the microsecond per request) after
        # its last use, so when the oldest still owes, it and every newer one were used within that period.
        return bucket.count() == 0

    async def retry_after_ms(self, key: str) -> int:
        """Milliseconds until ``key`` may spend one more request."""
        bucket = self.bucket_for(key)
        wait: Any = bucket.waiting(self.wrap_item(key))
        if inspect.isawaitable(wait):
            wait = await wait
        return max(0, int(wait))


class ChannelRateLimiter(WebSocketRateLimiter):
    """fastapi-limiter's ``WebSocketRateLimiter`` over per-key buckets that never blocks and reports retry-after."""

    def __init__(
        self,
        rates: list[Rate],
        *,
        redis: Redis | None = None,
        prefix: str = "fastapi-channels",
        identifier: Identifier | None = None,
        ws_callback: WsCallback | None = None,
    ) -> None:
        self.buckets = KeyedBucketFactory(rates, redis=redis, prefix=prefix)
        super().__init__(
            limiter=Limiter(self.buckets),
            identifier=identifier or default_identifier,
            callback=ws_callback or _raise_rate_limit_exceeded,
            blocking=False,
        )

    async def __call__(self, ws: WebSocket, context_key: str = "") -> None:
        """Spend one request of this client's budget for ``context_key``, or call the callback."""
        identity = self.identifier(ws)
        if inspect.isawaitable(identity):
            identity = await identity
        key = f"{context_key}:{identity}"
        try:
            # The retry-after comes from the bucket the check just used, so it must still be cached.
            with self.buckets.using(key):
                if await self.limiter.try_acquire_async(key, blocking=False):
                    return
                retry_after_ms = await self.buckets.retry_after_ms(key)
        except (RedisError, OSError) as exc:
            # Fail closed: a limit that cannot be checked does not let the request through.
            raise BackendUnavailable(error_msg="Rate limits cannot be checked right now. Try again later.") from exc
        result = self.callback(ws, retry_after_ms)
        if inspect.isawaitable(result):
            await result
        # A callback that returns instead of raising still must not let the action run.
        raise LimitHandled


class LimitHandled(Exception):
    """The request was over its limit and the user's ``ws_callback`` answered it: drop it silently."""


async def call_fastapi_limiter(throttle: Callable[..., Any], websocket: WebSocket, context_key: str) -> None:
    """Call a fastapi-limiter ``WebSocketRateLimiter``, turning its HTTP 429 into ``RateLimitExceeded``."""
    try:
        await throttle(websocket, context_key=context_key)
    except HTTPException as exc:
        # fastapi-limiter's default callback raises the HTTP exception, which means nothing on a websocket.
        if exc.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
            raise RateLimitExceeded() from None
        raise


def _raise_rate_limit_exceeded(websocket: WebSocket, retry_after_ms: int) -> None:
    raise RateLimitExceeded(retry_after=retry_after_ms / 1000)


@dataclass
class LimiterBackend:
    """Build rate limiters for one app: in memory, or in Redis when ``limiter_url`` is a redis URL."""

    redis: Redis | None = None
    prefix: str = "fastapi-channels"
    built: dict[Any, ChannelRateLimiter] = field(default_factory=dict, init=False)

    def limiter_for(self, owner: Any, specs: tuple[RateSpec, ...]) -> list[ChannelRateLimiter]:
        """Return the limiters for ``specs`` (one per identifier), built once per ``owner``."""
        groups: dict[Any, list[RateSpec]] = {}
        for spec in specs:
            groups.setdefault((spec.identifier, spec.ws_callback), []).append(spec)
        limiters = []
        for (identifier, ws_callback), group in groups.items():
            cache_key = (owner, identifier, ws_callback, tuple(group))
            built = self.built.get(cache_key)
            if built is None:
                built = ChannelRateLimiter(
                    [spec.rate() for spec in group],
                    redis=self.redis,
                    prefix=self.prefix,
                    identifier=identifier,
                    ws_callback=ws_callback,
                )
                self.built[cache_key] = built
            limiters.append(built)
        return limiters

    async def aclose(self) -> None:
        """Forget the limiters built so far and close the Redis connection."""
        self.built.clear()
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
