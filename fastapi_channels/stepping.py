"""Run a coroutine by hand up to its first wait, and finish it later inside a task.

Most writes to a socket and most actions complete without ever waiting. Stepping their coroutine once, by
hand, finishes them with no task and no trip through the event loop; only one that does have to wait is
handed on (``resume``) to the task that awaits it.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["resume"]


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
