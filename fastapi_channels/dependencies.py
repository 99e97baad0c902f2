"""FastAPI's ``Depends`` for actions: each action's dependencies read once, as a plan that every frame runs.

A ``Dependency`` is one ``Depends(...)`` read when its action is registered (or its channel object created):
what it calls, how (a function, a coroutine function, or a generator function that yields its value) and what
fills each of its parameters: a keyword (``websocket``, ``channel``, ``data``, ``action``, ``request_id``), the
socket (a parameter annotated ``WebSocket`` or ``HTTPConnection``) or another dependency. A ``DependencyPlan``
lays out every dependency of one action as the list of calls a frame makes, in order: a dependency that several
parameters share (``use_cache``, the default) has one place in that list, so it runs once per frame. A frame
then only makes the calls, and the code after ``yield`` runs when the action is over, however it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Annotated, Any, NamedTuple, cast, get_args, get_origin

from fastapi import params
from pydantic.fields import FieldInfo
from starlette import status
from starlette.exceptions import HTTPException
from starlette.exceptions import WebSocketException as StarletteWebSocketException
from starlette.requests import HTTPConnection, Request
from starlette.websockets import WebSocket

from fastapi_channels.exceptions import NotFound, PermissionDenied, RateLimitExceeded, WebSocketException
from fastapi_channels.signatures import HANDLER_KEYWORDS, DeclaredDependency, Resolver, declared_dependency
from fastapi_channels.stepping import resume

__all__ = ["Dependency", "DependencyPlan", "declare_dependencies", "read_dependencies", "websocket_exception_of"]

logger = logging.getLogger("fastapi_channels.dependencies")

# How a dependency is called: its value is returned, awaited, or yielded (entered as a context).
_FUNCTION, _COROUTINE, _GENERATOR, _ASYNC_GENERATOR = "function", "coroutine", "generator", "async generator"


@dataclass(frozen=True, eq=False)
class Dependency:
    """One dependency, read once: what it calls, how, and what fills each of its parameters."""

    call: Callable[..., Any]
    use_cache: bool
    """Whether a frame runs it once, however many parameters and dependencies use it."""
    kind: str
    """``"function"``, ``"coroutine"``, ``"generator"`` or ``"async generator"`` (the last two: with ``yield``)."""
    keywords: tuple[tuple[str, int], ...]
    """Each parameter filled from ``HANDLER_KEYWORDS``, with the place of its keyword there: ``("ws", 0)``."""
    dependencies: tuple[tuple[str, Dependency], ...]
    """Each parameter filled by a dependency of its own."""

    @classmethod
    def read(cls, declared: DeclaredDependency, where: str) -> Dependency:
        """Read the dependency ``declared`` for ``where`` (``"the action handler Room.send"``), and its own.

        Raises:
            TypeError: It is not callable, or has a parameter nothing fills (the message names it and the fix).
        """
        return cls._read(declared, where, ())

    @classmethod
    def _read(cls, declared: DeclaredDependency, where: str, within: tuple[Any, ...]) -> Dependency:
        call, name = declared.call, _name_of(declared.call)
        subject = f"The dependency {name} of {where}"
        if not callable(call):
            raise TypeError(f"{subject} is not callable: give Depends a function or a class.")
        try:
            signature = inspect.signature(call)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{subject} has no signature to read ({exc}): depend on a function or a class.") from None
        resolve = Resolver(call, subject)
        keywords: list[tuple[str, int]] = []
        dependencies: list[tuple[str, Dependency]] = []
        for parameter in signature.parameters.values():
            takes, declared_there = _what_fills(parameter, resolve, subject)
            if takes == "depends":
                if any(declared_there.call == outer for outer in (*within, call)):
                    raise TypeError(f"{subject} depends on itself through its parameter {parameter.name!r}.")
                sub = cls._read(declared_there, f"{name} of {where}", (*within, call))
                dependencies.append((parameter.name, sub))
            elif takes is not None:
                keywords.append((parameter.name, HANDLER_KEYWORDS.index(takes)))
        return cls(call, declared.use_cache, _kind(call), tuple(keywords), tuple(dependencies))


def _what_fills(parameter: inspect.Parameter, resolve: Resolver, subject: str) -> tuple[str | None, Any]:
    """Return what fills a dependency's parameter: "depends" (and what it declares), a keyword, or None (nothing).

    Raises:
        TypeError: Nothing can fill it (the message says how to fill it).
    """
    name, kind, required = parameter.name, parameter.kind, parameter.default is parameter.empty
    if kind is parameter.VAR_POSITIONAL or kind is parameter.VAR_KEYWORD:
        return None, None
    if kind is parameter.POSITIONAL_ONLY:
        if required:
            raise TypeError(
                f"{subject} has the positional-only parameter {name!r}, which is filled by name: make it an "
                "ordinary parameter, or give it a default."
            )
        return None, None
    annotation = parameter.annotation
    if annotation is not parameter.empty:
        what = f"the parameter {name!r}"
        annotation = resolve.leniently(annotation) if name in HANDLER_KEYWORDS else resolve(annotation, what)
    declared = declared_dependency(parameter, annotation, subject)
    if declared is not None:
        return "depends", declared
    if name in HANDLER_KEYWORDS:
        return name, None
    bare = get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation
    if isinstance(bare, type):
        if issubclass(bare, WebSocket) or bare is HTTPConnection:
            return "websocket", None  # as in FastAPI: the socket, whatever the parameter's name
        if issubclass(bare, Request):
            raise TypeError(
                f"{subject} takes a Request in {name!r}, which an action does not have: annotate it WebSocket "
                "(or HTTPConnection, to serve HTTP routes too)."
            )
    if isinstance(parameter.default, FieldInfo) or any(isinstance(extra, FieldInfo) for extra in _metadata(annotation)):
        raise TypeError(
            f"{subject} reads {name!r} with Query, Header, Cookie, Path, Body or Field, which actions do not fill: "
            "take the socket in a parameter annotated WebSocket and read websocket.query_params, websocket.headers "
            "or websocket.cookies, or give it a plain default."
        )
    if not required:
        return None, None  # left alone, with its default
    raise TypeError(
        f"{subject} has the parameter {name!r}, which nothing fills: name it {', '.join(HANDLER_KEYWORDS)}, annotate "
        "it WebSocket to take the socket (and read websocket.query_params or websocket.headers from it), declare "
        "a dependency of its own with Depends(...), or give it a default."
    )


def _metadata(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation)[1:] if get_origin(annotation) is Annotated else ()


def _kind(call: Callable[..., Any]) -> str:
    """Return how ``call`` is called; a callable object is called as its ``__call__`` method is."""
    if inspect.isclass(call):
        return _FUNCTION  # calling a class returns its instance
    for candidate in (call, type(call).__call__):
        if inspect.isasyncgenfunction(candidate):
            return _ASYNC_GENERATOR
        if inspect.isgeneratorfunction(candidate):
            return _GENERATOR
        if inspect.iscoroutinefunction(candidate):
            return _COROUTINE
    return _FUNCTION


def _name_of(call: Any) -> str:
    if isinstance(call, functools.partial):
        return f"partial({_name_of(call.func)})"
    name = getattr(call, "__qualname__", None) or getattr(type(call), "__qualname__", None)
    return name if isinstance(name, str) else repr(call)


def declare_dependencies(markers: Iterable[Any] | None, where: str) -> tuple[DeclaredDependency, ...]:
    """Return what each ``Depends(...)`` of ``dependencies=[...]`` declares (``where`` names the list).

    Raises:
        TypeError: ``markers`` is not a list of ``Depends(...)`` with a callable each.
    """
    if markers is None:
        return ()
    if isinstance(markers, str | bytes | params.Depends) or not isinstance(markers, Iterable):
        raise TypeError(f"{where} must be a list of Depends(...), not {markers!r}: write [Depends(verify_token)].")
    declared = []
    for marker in markers:
        if not isinstance(marker, params.Depends):
            fix = f"Depends({_name_of(marker)})"
            raise TypeError(f"{where} lists {marker!r}, which is not a Depends(...): write {fix}.")
        if marker.dependency is None:
            raise TypeError(f"{where} lists a bare Depends(), which has nothing to call: write Depends(verify_token).")
        declared.append(DeclaredDependency.of(marker, marker.dependency, where))
    return tuple(declared)


def read_dependencies(markers: Iterable[Any] | None, where: str) -> tuple[Dependency, ...]:
    """Read each ``Depends(...)`` of ``dependencies=[...]``, and what it depends on (``where`` names the list).

    Raises:
        TypeError: An entry that is not a ``Depends(...)``, or a dependency with a parameter nothing fills.
    """
    return tuple(Dependency.read(declared, where) for declared in declare_dependencies(markers, where))


class _Step(NamedTuple):
    call: Callable[..., Any]  # for a dependency with yield: the function that returns it as a context manager
    kind: str
    keywords: tuple[tuple[str, int], ...]
    arguments: tuple[tuple[str, int], ...]  # each parameter filled by an earlier step, with that step's place


@dataclass(frozen=True, eq=False)
class DependencyPlan:
    """Every dependency of one action, laid out once as the calls a frame makes, in order."""

    before: tuple[Dependency, ...]
    """Run first, their values unused: the channel's ``dependencies``, then the action's."""
    parameters: tuple[tuple[str, Dependency], ...]
    """The handler's parameters that dependencies fill, with their dependency."""
    steps: tuple[_Step, ...] = field(init=False, repr=False)
    arguments: tuple[tuple[str, int], ...] = field(init=False, repr=False)
    """Each handler parameter that a dependency fills, with the place of that dependency's step."""
    exits: bool = field(init=False)
    """Whether a dependency has code after ``yield``, to run once the action is over."""
    awaits_exit: bool = field(init=False, repr=False)
    """Whether that code may wait (an async generator), and so must not be interrupted by a cancellation."""

    def __post_init__(self) -> None:
        steps: list[_Step] = []
        placed: dict[Any, int] = {}

        def place(dependency: Dependency) -> int:
            key = _cache_key(dependency.call)
            if dependency.use_cache and key in placed:
                return placed[key]
            arguments = tuple((name, place(sub)) for name, sub in dependency.dependencies)
            steps.append(_Step(_callable(dependency), dependency.kind, dependency.keywords, arguments))
            # As in FastAPI, a value computed without the cache still fills it for the uses that follow.
            placed.setdefault(key, len(steps) - 1)
            return len(steps) - 1

        for dependency in self.before:
            place(dependency)
        object.__setattr__(self, "arguments", tuple((name, place(dependency)) for name, dependency in self.parameters))
        object.__setattr__(self, "steps", tuple(steps))
        object.__setattr__(self, "exits", any(step.kind in (_GENERATOR, _ASYNC_GENERATOR) for step in steps))
        object.__setattr__(self, "awaits_exit", any(step.kind == _ASYNC_GENERATOR for step in steps))

    @classmethod
    def of(
        cls, before: tuple[Dependency, ...], parameters: tuple[tuple[str, Dependency], ...]
    ) -> DependencyPlan | None:
        """Return the plan of ``before`` and ``parameters``, or None when there is nothing to run."""
        return cls(before, parameters) if before or parameters else None

    def around(self, before: tuple[Dependency, ...]) -> DependencyPlan:
        """Return this plan with ``before`` (a channel's dependencies) run first."""
        return type(self)((*before, *self.before), self.parameters) if before else self

    async def run(self, available: tuple[Any, ...], call: Callable[[dict[str, Any]], Any]) -> Any:
        """Run the dependencies, then ``call`` with the handler arguments they fill; return what it returns.

        ``available`` holds the values of ``HANDLER_KEYWORDS``, in that order. What ``call`` returns is awaited
        when it is awaitable. The code after each ``yield`` runs once ``call`` is over: when it returned, when it
        failed (the exception is raised where the dependency yielded) and when the frame was cancelled (the
        client went away), to its end even then.
        """
        if not self.exits:
            result = call(await self.solve(available, None))
            if inspect.isawaitable(result):
                result = await result
            return result
        stack = contextlib.AsyncExitStack()
        try:
            result = call(await self.solve(available, stack))
            if inspect.isawaitable(result):
                result = await result
        except BaseException as exc:
            await self._exit(stack, exc)
            # Even when a dependency swallowed it: an action that failed is answered as a failure.
            raise
        await self._exit(stack, None)
        return result

    async def solve(self, available: tuple[Any, ...], stack: contextlib.AsyncExitStack | None) -> dict[str, Any]:
        """Run the dependencies for one frame; return the handler arguments they fill.

        ``stack`` enters the dependencies with ``yield`` (None only for a plan that has none).

        Raises:
            WebSocketException: A dependency raised one, or an HTTP exception or Starlette's WebSocketException,
                which become one (see ``websocket_exception_of``).
        """
        values: list[Any] = []
        try:
            for call, kind, keywords, arguments in self.steps:
                given = {name: available[index] for name, index in keywords}
                for name, place in arguments:
                    given[name] = values[place]
                if kind is _FUNCTION:
                    values.append(call(**given))
                elif kind is _COROUTINE:
                    values.append(await call(**given))
                elif kind is _GENERATOR:
                    values.append(cast(contextlib.AsyncExitStack, stack).enter_context(call(**given)))
                else:
                    values.append(await cast(contextlib.AsyncExitStack, stack).enter_async_context(call(**given)))
        except WebSocketException:
            raise
        except (HTTPException, StarletteWebSocketException) as exc:
            raise websocket_exception_of(exc) from exc
        return {name: values[place] for name, place in self.arguments}

    async def _exit(self, stack: contextlib.AsyncExitStack, exc: BaseException | None) -> None:
        """Run the code after ``yield`` of the entered dependencies; ``exc`` is why the action failed, if it did.

        Raises:
            BaseException: What that code raised (an HTTP exception made a ``WebSocketException``), unless the
                action was cancelled (then it is logged); the cancellation of this task while that code ran,
                once it has run to its end.
        """
        exiting = stack.__aexit__(*((type(exc), exc, exc.__traceback__) if exc is not None else (None, None, None)))
        interrupted: BaseException | None = None
        try:
            if not self.awaits_exit:
                await exiting  # generators only: nothing in there waits, so nothing can interrupt it
                return
            # Stepped by hand up to its first wait: most cleanups finish without one, and cost no task.
            try:
                waiting_on = exiting.send(None)
            except StopIteration:
                return
            # The rest runs in a task of its own, which a cancellation of this one (the client went away, the
            # server is stopping) does not interrupt: it runs to its end, then the cancellation goes on.
            rest = asyncio.ensure_future(_finish(exiting, waiting_on))
            while not rest.done():
                try:
                    await asyncio.shield(rest)
                except BaseException as error:
                    if not rest.done():
                        interrupted = error
            rest.result()
        except BaseException as failure:
            if interrupted is None and not isinstance(exc, asyncio.CancelledError):
                if isinstance(failure, WebSocketException) or not isinstance(
                    failure, HTTPException | StarletteWebSocketException
                ):
                    raise
                raise websocket_exception_of(failure) from failure
            if failure is not exc:
                # Nobody is left to answer: the failure can only be logged.
                logger.error("A dependency failed while cleaning up after a cancelled action", exc_info=failure)
        if interrupted is not None:
            raise interrupted


async def _finish(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    return await resume(coroutine, waiting_on)


def _callable(dependency: Dependency) -> Callable[..., Any]:
    if dependency.kind == _GENERATOR:
        return contextlib.contextmanager(dependency.call)
    if dependency.kind == _ASYNC_GENERATOR:
        return contextlib.asynccontextmanager(dependency.call)
    return dependency.call


def _cache_key(call: Callable[..., Any]) -> Any:
    try:
        hash(call)
    except TypeError:
        return id(call)  # an unhashable callable object is the same dependency only as the same object
    return call


def websocket_exception_of(exc: HTTPException | StarletteWebSocketException) -> WebSocketException:
    """Return the ``WebSocketException`` that answers an exception written for FastAPI routes.

    Starlette's (and FastAPI's) ``WebSocketException`` keeps its code and reason, and closes the socket. An
    ``HTTPException`` is an error frame and the socket stays open: 401 and 403 are ``PermissionDenied``, 404
    ``NotFound``, 429 ``RateLimitExceeded``, another 4xx a 1008 and a 5xx a 1011; the frame's ``errors`` is the
    detail (when it is text, else it is the ``data`` field) and its ``status_code`` field the HTTP status.
    """
    if isinstance(exc, WebSocketException):
        return exc
    if isinstance(exc, StarletteWebSocketException):
        return WebSocketException(exc.code, exc.reason or None)
    code, detail = exc.status_code, exc.detail
    message = detail if isinstance(detail, str) else _phrase(code)
    options: dict[str, Any] = {"error_msg": message, "status_code": code}
    if not isinstance(detail, str) and detail is not None:
        options["data"] = detail
    if code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
        return PermissionDenied(close=False, **options)
    if code == status.HTTP_404_NOT_FOUND:
        return NotFound(close=False, **options)
    if code == status.HTTP_429_TOO_MANY_REQUESTS:
        return RateLimitExceeded(retry_after=_retry_after(exc.headers), **options)
    error_code = status.WS_1011_INTERNAL_ERROR if code >= 500 else status.WS_1008_POLICY_VIOLATION
    return WebSocketException(error_code, close=False, **options)


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return f"HTTP {code}"


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    seconds = {name.lower(): value for name, value in (headers or {}).items()}.get("retry-after", "")
    try:
        value = float(seconds)
    except ValueError:
        return None  # an HTTP date, or none
    return value if math.isfinite(value) and value >= 0 else None
