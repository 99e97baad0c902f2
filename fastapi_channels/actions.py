"""A channel's actions prepared for one app: what each frame needs, resolved once instead of on every frame.

Preparing an action binds its handler, decides whether its permission check can be skipped (everyone is
allowed and ``check_permissions`` is not overridden), builds its rate limiters in the app's limiter store and
picks how to call it (with a payload validation only when the handler has typed parameters, through its
dependency plan only when it has dependencies). A frame then costs one registry lookup, the checks that can say
no, and the call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.websockets import WebSocket

from fastapi_channels.decorators import RegisteredAction
from fastapi_channels.dependencies import Dependency, DependencyPlan
from fastapi_channels.payloads import Payload
from fastapi_channels.permission import PermissionLike
from fastapi_channels.signatures import HANDLER_KEYWORDS
from fastapi_channels.throttling import LimiterBackend, RateSpec, call_fastapi_limiter, get_limits

__all__ = ["PreparedAction", "PreparedChannel", "Throttle", "prepare_action", "prepare_throttles"]

Throttle = Callable[[WebSocket, str], Awaitable[None]]
"""One rate limit ready to spend a request: ``(websocket, context_key)``."""


@dataclass(frozen=True)
class PreparedAction:
    """One action as a frame runs it."""

    name: str
    handler: Callable[..., Any]
    keywords: tuple[tuple[str, int], ...]
    is_async: bool
    deprecated: bool
    permission: PermissionLike
    check_permission: bool
    limits: tuple[RateSpec, ...]
    throttles: tuple[Throttle, ...]
    payload: Payload | None
    """Validates the payload for the handler's typed parameters; None when it has none."""
    reply: Callable[[int | str | None, Any], str]
    """Renders what the handler returns as the reply frame: ``reply(request_id, value)``."""
    dependencies: DependencyPlan | None = None
    """Runs the channel's and the action's dependencies before the handler; None when there are none."""
    invoke: Callable[[WebSocket, str, dict[str, Any], Any], Any] = field(init=False, repr=False, compare=False)
    """``call``, ``call_typed`` for a handler with typed parameters, or ``call_with_dependencies`` for an action
    with dependencies: chosen once, not on every frame."""
    checked: bool = field(init=False, repr=False, compare=False)
    """Whether a frame must be checked before the call: deprecated, a permission to ask, or limits to spend."""

    def __post_init__(self) -> None:
        if self.dependencies is not None:
            invoke = self.call_with_dependencies
        else:
            invoke = self.call if self.payload is None else self.call_typed
        object.__setattr__(self, "invoke", invoke)
        object.__setattr__(self, "checked", self.deprecated or self.check_permission or bool(self.throttles))

    def call(self, websocket: WebSocket, channel: str, data: dict[str, Any], request_id: Any) -> Any:
        """Call the handler with the keywords it names; return what it returns (a coroutine if it is async)."""
        available = (websocket, channel, data, self.name, request_id)
        return self.handler(**{key: available[index] for key, index in self.keywords})

    def call_typed(self, websocket: WebSocket, channel: str, data: dict[str, Any], request_id: Any) -> Any:
        """Validate the payload, then call the handler with it and the keywords it names.

        Raises:
            ValidationFailed: The payload does not fit the handler's typed parameters.
        """
        arguments = self.payload.arguments(data) if self.payload is not None else {}
        available = (websocket, channel, data, self.name, request_id)
        for key, index in self.keywords:
            arguments[key] = available[index]
        return self.handler(**arguments)

    def call_with_dependencies(
        self, websocket: WebSocket, channel: str, data: dict[str, Any], request_id: Any
    ) -> Awaitable[Any]:
        """Run the dependencies, then validate the payload and call the handler; return what it returns, awaited.

        The code after ``yield`` in the dependencies runs once the handler is over, before the reply is sent.

        Raises:
            ValidationFailed: The payload does not fit the handler's typed parameters.
        """
        available = (websocket, channel, data, self.name, request_id)
        plan = cast(DependencyPlan, self.dependencies)
        return plan.run(available, functools.partial(self._call_with, available))

    def _call_with(self, available: tuple[Any, ...], arguments: dict[str, Any]) -> Any:
        """Call the handler with the ``arguments`` its dependencies fill, its payload and its keywords."""
        if self.payload is not None:
            arguments.update(self.payload.arguments(available[2]))  # the frame, ``data``
        for key, index in self.keywords:
            arguments[key] = available[index]
        return self.handler(**arguments)

    async def run(self, websocket: WebSocket, channel: str, data: dict[str, Any], request_id: Any) -> Any:
        """Call the handler, await it when it is async, and return what it returns."""
        result = self.invoke(websocket, channel, data, request_id)
        if self.is_async or inspect.isawaitable(result):
            result = await result
        return result


def prepare_action(
    owner: Any,
    entry: RegisteredAction,
    limiters: LimiterBackend,
    *,
    channel_allows_everyone: bool,
    action_allows_everyone: bool,
    dependencies: tuple[Dependency, ...] = (),
) -> PreparedAction:
    """Bind ``entry`` to ``owner`` and build its rate limiters in ``limiters``; ``dependencies`` run before it."""
    handler = entry.function(owner)
    limits = get_limits(handler)
    throttles: tuple[Throttle, ...] = tuple(limiters.limiter_for((owner, entry.spec.name), limits)) if limits else ()
    plan = entry.dependencies.around(dependencies) if entry.dependencies else DependencyPlan.of(dependencies, ())
    return PreparedAction(
        name=entry.spec.name,
        handler=handler,
        # Each parameter filled from the keywords, with the place of its value in what ``call`` has at hand.
        keywords=tuple((parameter, HANDLER_KEYWORDS.index(keyword)) for parameter, keyword in entry.keywords),
        is_async=inspect.iscoroutinefunction(handler),
        deprecated=entry.spec.deprecated,
        permission=entry.spec.permission,
        check_permission=not (channel_allows_everyone and action_allows_everyone),
        limits=limits,
        throttles=throttles,
        payload=entry.payload,
        reply=entry.reply.render,
        dependencies=plan,
    )


def prepare_throttles(owner: Any, throttles: tuple[Any, ...], limiters: LimiterBackend) -> tuple[Throttle, ...]:
    """Return a channel's channel-wide limits ready to spend: ``limiter(...)`` specs and fastapi-limiter objects."""
    prepared: list[Throttle] = []
    for throttle in throttles:
        if isinstance(throttle, RateSpec):
            # Each entry is a limit of its own: a request refused by a later one has still spent the earlier ones.
            prepared.extend(limiters.limiter_for((owner, "*"), (throttle,)))
        else:
            prepared.append(_fastapi_limiter(throttle))
    return tuple(prepared)


def _fastapi_limiter(throttle: Callable[..., Any]) -> Throttle:
    async def spend(websocket: WebSocket, context_key: str) -> None:
        await call_fastapi_limiter(throttle, websocket, context_key)

    return spend


@dataclass(frozen=True)
class PreparedChannel:
    """A channel object's actions and channel-wide limits, prepared for one run of one app."""

    generation: int
    version: int
    actions: dict[str, PreparedAction]
    throttles: tuple[Throttle, ...]
