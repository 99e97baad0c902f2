"""Run an app's lifespan in the test's own event loop for as long as any test helper on the app needs it.

The first helper to need an app that is not running starts its lifespan through the ASGI lifespan protocol
(``lifespan.startup``), which starts the channel layer; the others share that run, so they talk to each
other through one layer; the last to leave shuts it down. An app whose channels already run (the test
started its lifespan itself) is used as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.types import ASGIApp, Message

from fastapi_channels.config import STATE_KEY, FastAPIChannel
from fastapi_channels.testing.frames import Inbox, describe

__all__ = ["Lease", "acquire_lifespan", "channel_config"]

# The runs started here, by app, while some helper uses them.
_running: dict[int, _Run] = {}


def channel_config(app: Any) -> FastAPIChannel | None:
    """Return the configuration ``add_channel`` gave ``app`` (or the app an ASGI middleware wraps), if any."""
    current = app
    for _ in range(32):  # a chain of middleware, each holding the next in ``.app``
        config = getattr(getattr(current, "state", None), STATE_KEY, None)
        if isinstance(config, FastAPIChannel):
            return config
        current = getattr(current, "app", None)
        if current is None:
            break
    return None


class _Run:
    """One run of an app's lifespan: started once, stopped when its last user lets go."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.users = 0
        self.state: dict[str, Any] = {}
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stopped: asyncio.Future[None] | None = None
        self._incoming: asyncio.Queue[Message] = asyncio.Queue()
        self._answers: Inbox[Message] = Inbox()
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def start(self, timeout: float) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        self._task = asyncio.create_task(self._serve(scope), name="fastapi-channels-test-lifespan")
        self._task.add_done_callback(lambda _: self._answers.wake())
        self._incoming.put_nowait({"type": "lifespan.startup"})
        answer = await self._answer("start (lifespan.startup)", timeout)
        if answer is None:
            # The app ended without answering (a bare ASGI app may even raise on the unknown scope type): it does
            # not speak the lifespan protocol, and needs no startup. Servers go on without it too.
            if not self._task.cancelled():
                self._task.exception()
            self._supported = False
            return
        if answer["type"] != "lifespan.startup.complete":
            await self._ended(timeout)
            raise RuntimeError(f"The app failed to start: {answer.get('message') or describe(answer)}")

    async def stop(self, timeout: float) -> None:
        if not self._supported or self._task is None:
            return
        self._incoming.put_nowait({"type": "lifespan.shutdown"})
        answer = await self._answer("shut down (lifespan.shutdown)", timeout)
        await self._ended(timeout)
        if answer is not None and answer["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(f"The app failed to shut down: {answer.get('message') or describe(answer)}")

    async def _serve(self, scope: dict[str, Any]) -> None:
        await self.app(scope, self._incoming.get, self._send)

    async def _send(self, message: Message) -> None:
        self._answers.put(message)

    async def _answer(self, what: str, timeout: float) -> Message | None:
        """Return the app's next lifespan message; None if it ended without one (raising what it raised then)."""
        assert self._task is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._answers.items:
            if self._task.done():
                return None
            if not await self._answers.wait(deadline - loop.time()):
                await self._cancel()
                raise AssertionError(f"The app did not {what} within {timeout} s.")
        return self._answers.items.popleft()

    async def _ended(self, timeout: float) -> None:
        """Wait for the lifespan task to end; raise what it raised."""
        assert self._task is not None
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        if not done:
            await self._cancel()
            raise AssertionError(f"The app's lifespan did not end within {timeout} s.")
        self._task.result()

    async def _cancel(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


class Lease:
    """A helper's hold on an app's lifespan: ``release`` it when done; ``state`` goes into its scopes."""

    def __init__(self, run: _Run | None) -> None:
        self._run = run
        self.state: dict[str, Any] = run.state if run is not None else {}

    async def release(self, timeout: float) -> None:
        """Let go of the app; shut its lifespan down if this was the last hold on a run started here."""
        run, self._run = self._run, None
        if run is None:
            return
        run.users -= 1
        if run.users:
            return
        run.stopped = asyncio.get_running_loop().create_future()
        try:
            await run.stop(timeout)
        finally:
            del _running[id(run.app)]
            run.stopped.set_result(None)


async def acquire_lifespan(app: ASGIApp, timeout: float) -> Lease:
    """Make sure ``app``'s lifespan runs until the returned lease is released, starting it if needed."""
    key = id(app)  # the run holds the app, so no other app gets its id while the run is known
    if (run := _running.get(key)) is not None and run.loop is not asyncio.get_running_loop():
        del _running[key]  # left behind by a test whose event loop is gone, without leaving its communicators
    while (run := _running.get(key)) is not None and run.stopped is not None:
        await asyncio.shield(run.stopped)  # the last user is shutting it down: start afresh after it
    if run is not None:
        run.users += 1
        try:
            await asyncio.shield(run.started)
        except BaseException:
            run.users -= 1
            raise
        return Lease(run)
    config = channel_config(app)
    if config is not None and config.started:
        return Lease(None)  # the test runs the app's lifespan itself
    run = _running[key] = _Run(app)
    run.users = 1
    try:
        await run.start(timeout)
    except BaseException as exc:
        del _running[key]
        run.started.set_exception(exc if isinstance(exc, Exception) else RuntimeError("The app did not start."))
        run.started.exception()  # retrieved: whoever waited on it has seen it too
        raise
    run.started.set_result(None)
    return Lease(run)
