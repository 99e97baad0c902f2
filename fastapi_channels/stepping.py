"""Run a coroutine by hand up to its first wait, and finish it later inside a task.

Most writes to a socket and most actions complete without ever waiting. Stepping their coroutine once, by
hand, finishes them with no task and no trip through the event loop; only one that does have to wait is
handed on (``resume``) to the task that awaits it. Clean-ups that must finish even when their task is
cancelled run to the end in a task of their own (``run_to_the_end``); waits with a deadline use ``within``.
"""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

__all__ = ["resume", "run_to_the_end", "within"]


@types.coroutine
def resume(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """Finish, inside the awaiting task, a coroutine that was stepped by hand until it waited on ``waiting_on``.

    Cancelling the awaiting task cancels the coroutine at the point where it waits.
    """
    while True:
        try:
            value = yield waiting_on
        except BaseException as exc:  # the awaiting task was cancelled, or a wait failed: pass it on
            try:
                waiting_on = coroutine.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coroutine.send(value)
            except StopIteration as stop:
                return stop.value


async def run_to_the_end(cleanup: Coroutine[Any, Any, None]) -> None:
    """Await ``cleanup`` to its end even if this task is cancelled meanwhile; then pass the cancellation on."""
    task = asyncio.ensure_future(cleanup)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            # anyio cancel scopes cancel again at every await until the task leaves them: wait on regardless.
            cancelled = exc
    if cancelled is not None:
        raise cancelled
    task.result()


async def within(seconds: float | None, awaitable: Awaitable[Any]) -> None:
    """Await ``awaitable``, raising ``TimeoutError`` after ``seconds`` (None: no limit)."""
    if seconds is None:
        await awaitable
    elif sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            await awaitable
    else:  # pragma: no cover - Python 3.10
        try:
            await asyncio.wait_for(awaitable, seconds)
        except asyncio.TimeoutError:
            raise TimeoutError from None
