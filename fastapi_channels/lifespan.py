"""Join/leave handlers and the per-connection lifespan, merged into one async context manager."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

from starlette.websockets import WebSocket

__all__ = ["ChannelEvents", "EventHandler", "Lifespan", "EVENT_TYPES"]

logger = logging.getLogger("fastapi_channels.lifespan")

EventHandler = Callable[[WebSocket, str], Any]
"""A join or leave handler: ``(websocket, channel)``, sync or async."""
Lifespan = Callable[..., contextlib.AbstractAsyncContextManager[Any]]
"""A per-connection lifespan: ``(websocket, channel)`` or ``(channel_object, websocket, channel)`` -> async CM."""
EventType = Literal["join", "leave"]
EVENT_TYPES: tuple[str, ...] = ("join", "leave")
"""The event types handlers can be registered for."""


class ChannelEvents:
    """Run a channel's lifespan and its join handlers when a client joins, and undo them when it leaves."""

    def __init__(
        self,
        *,
        on_join: Sequence[EventHandler] | None = None,
        on_leave: Sequence[EventHandler] | None = None,
        lifespan: Lifespan | None = None,
    ) -> None:
        self.handlers: dict[str, list[EventHandler]] = {
            "join": list(on_join or ()),
            "leave": list(on_leave or ()),
        }
        if lifespan is not None and not callable(lifespan):
            raise TypeError("lifespan must be a callable returning an async context manager.")
        self.lifespan = lifespan

    def add_event_handler(self, event_type: str, func: EventHandler) -> None:
        """Register ``func(websocket, channel)``, sync or async, for ``"join"`` or ``"leave"``."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"Unknown event type {event_type!r}: use 'join' or 'leave'.")
        if not callable(func):
            raise TypeError(f"Event handlers must be callables taking (websocket, channel), not {func!r}.")
        self.handlers[event_type].append(func)

    def on_event(self, event_type: str) -> Callable[[EventHandler], EventHandler]:
        """Register the decorated function for ``"join"`` or ``"leave"``."""

        def decorator(func: EventHandler) -> EventHandler:
            self.add_event_handler(event_type, func)
            return func

        return decorator

    def open_lifespan(
        self, owner: Any, websocket: WebSocket, channel: str
    ) -> contextlib.AbstractAsyncContextManager[Any]:
        """Return the lifespan context of one connection (a no-op when there is no lifespan)."""
        if self.lifespan is None:
            return contextlib.nullcontext()
        return _open_lifespan(self.lifespan, owner, websocket, channel)

    async def run_join(self, websocket: WebSocket, channel: str) -> None:
        """Run the join handlers in order; the first exception propagates."""
        for handler in self.handlers["join"]:
            await _call(handler, websocket, channel)

    async def run_leave(self, websocket: WebSocket, channel: str) -> None:
        """Run every leave handler; a failing one is logged and does not stop the rest."""
        for handler in self.handlers["leave"]:
            try:
                await _call(handler, websocket, channel)
            except Exception:
                logger.exception("Leave handler %r failed on channel %r", handler, channel)


def _open_lifespan(
    lifespan: Lifespan, owner: Any, websocket: WebSocket, channel: str
) -> contextlib.AbstractAsyncContextManager[Any]:
    # A plain function written as ``lifespan(self, websocket, channel)`` also gets the channel object.
    if not inspect.ismethod(lifespan) and _positional_count(lifespan) >= 3:
        return lifespan(owner, websocket, channel)
    return lifespan(websocket, channel)


def _positional_count(func: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 2
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for parameter in parameters if parameter.kind in kinds)


async def _call(handler: EventHandler, websocket: WebSocket, channel: str) -> None:
    result = handler(websocket, channel)
    if inspect.isawaitable(result):
        await result
