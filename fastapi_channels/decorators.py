"""The ``@action`` decorator: it attaches an action spec to a function and returns the same function.

A channel registers each decorated handler as a ``RegisteredAction`` when its class is created (or when
``room.action(...)`` registers a function). The handler's signature is read then, once (see ``signatures``):
which keyword fills each parameter, the validator of a typed payload, the shape of the replies and the plan of
its dependencies (see ``dependencies``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from typing_extensions import TypedDict, Unpack

from fastapi_channels.dependencies import Dependency, DependencyPlan, declare_dependencies, read_dependencies
from fastapi_channels.payloads import Payload, Reply
from fastapi_channels.permission import PermissionLike, check_permission_like
from fastapi_channels.protocol import MAX_NAME_LENGTH
from fastapi_channels.signatures import HANDLER_KEYWORDS, RETURN_ANNOTATION, HandlerSignature
from fastapi_channels.throttling import LIMITS_ATTR, RateSpec, get_limits

__all__ = [
    "action",
    "ActionOptions",
    "ActionSpec",
    "RegisteredAction",
    "get_action_spec",
    "HANDLER_KEYWORDS",
    "RETURN_ANNOTATION",
]

F = TypeVar("F", bound=Callable[..., Any])

ACTION_ATTR = "__fastapi_channels_action__"


class ActionOptions(TypedDict, total=False):
    """The keywords of ``@action``, ``room.action(...)`` and ``router.action(...)`` besides the name.

    Each is described under ``action``; type checkers reject a keyword that is not one of these.
    """

    permission: PermissionLike
    deprecated: bool
    summary: str | None
    description: str | None
    tags: Iterable[str] | None
    dependencies: Sequence[Any]
    response_model: Any
    response_model_exclude_none: bool
    response_model_exclude_unset: bool
    response_model_exclude_defaults: bool
    response_model_by_alias: bool


@dataclass(frozen=True)
class ActionSpec:
    """What ``@action`` declared: the public name, its checks, the shape of its replies and what documents it."""

    name: str
    permission: PermissionLike = None
    deprecated: bool = False
    doc: str | None = None
    summary: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    dependencies: tuple[Any, ...] = ()
    response_model: Any = RETURN_ANNOTATION
    response_model_exclude_none: bool = False
    response_model_exclude_unset: bool = False
    response_model_exclude_defaults: bool = False
    response_model_by_alias: bool = True
    limits: tuple[RateSpec, ...] = ()
    """Rate limits an ``ActionRouter`` gives the action, besides those ``@limiter`` attached to its handler."""


@overload
def action(name: F) -> F: ...


@overload
def action(name: str | None = None, **options: Unpack[ActionOptions]) -> Callable[[F], F]: ...


def action(name: str | Callable[..., Any] | None = None, **options: Unpack[ActionOptions]) -> Any:
    """Declare a channel method as the handler of the action ``name`` (the function's name by default).

    Args:
        name: The value clients send in the frame's ``action`` field.

    Keyword Args:
        permission (PermissionLike): Checked before the action runs, after the channel's ``permission_classes``.
        deprecated (bool): Answer every call with an ``ActionIsDeprecated`` error frame instead of running it.
        summary (str | None): A short description of the action, for generated documentation.
        description (str | None): A longer description; the docstring is kept as ``doc`` either way.
        tags (Iterable[str] | None): Names to group the action under in generated documentation.
        dependencies (Sequence[Any]): FastAPI ``Depends(...)`` to run before the handler, in order.
        response_model (Any): Validate and shape what the handler returns (its return annotation by default;
            None sends the value as it is).
        response_model_exclude_none (bool): Leave out the response model's fields that are None.
        response_model_exclude_unset (bool): Leave out the response model's fields that were not set.
        response_model_exclude_defaults (bool): Leave out the response model's fields that have their default value.
        response_model_by_alias (bool): Name the response model's fields by their aliases.

    Raises:
        TypeError: A name that is not a non-empty string, an unknown keyword or a value of the wrong kind.
    """
    if callable(name):
        # Used bare, as ``@action`` without parentheses.
        return action()(name)
    if name is not None:
        check_action_name(name)
    fields = spec_fields(options)

    def decorator(func: F) -> F:
        if not callable(func):
            raise TypeError(f"@action decorates functions, not {func!r}.")
        setattr(func, ACTION_ATTR, ActionSpec(name=name or func.__name__, doc=doc_of(func), **fields))
        return func

    return decorator


_OPTIONS = tuple(ActionOptions.__annotations__)
_SWITCHES = ("deprecated", *(option for option in _OPTIONS if option.startswith("response_model_")))


def spec_fields(options: Mapping[str, Any], what: str = "action") -> dict[str, Any]:
    """Return the ``ActionSpec`` fields ``options`` declare, checked: every option's one check is here.

    Raises:
        TypeError: An unknown keyword (``what`` names the caller in the message) or a value of the wrong kind.
    """
    unknown = [key for key in options if key not in _OPTIONS]
    if unknown:
        raise TypeError(f"{what}() got the unknown keyword {unknown[0]!r}: use one of {', '.join(_OPTIONS)}.")
    fields = {key: value for key, value in options.items() if key not in ("tags", "dependencies")}
    check_permission_like(options.get("permission"))
    for label in ("summary", "description"):
        text = options.get(label)
        if text is not None and not isinstance(text, str):
            raise TypeError(f"{what} {label} must be a string or None, not {text!r}.")
    given = options.get("tags") or ()
    tags = tuple(given) if isinstance(given, Iterable) and not isinstance(given, str) else None
    if tags is None or not all(isinstance(tag, str) for tag in tags):
        raise TypeError(f"{what} tags must be a list of strings, not {given!r}.")
    dependencies = options.get("dependencies") or ()
    if isinstance(dependencies, Iterator):
        dependencies = tuple(dependencies)  # read once here, kept below
    declare_dependencies(dependencies, f"{what} dependencies")  # a list of Depends(...), each with a callable
    for option in _SWITCHES:
        if not isinstance(options.get(option, False), bool):
            raise TypeError(f"{what} {option} must be True or False, not {options[option]!r}.")
    return {**fields, "tags": tags, "dependencies": tuple(dependencies)}


def check_action_name(name: Any) -> str:
    """Return ``name`` if clients can call an action by it; raise TypeError otherwise."""
    if not isinstance(name, str) or not name:
        hint = ": call it, as @room.action() or @router.action()" if callable(name) else ""
        raise TypeError(f"action name must be a non-empty string, not {name!r}{hint}.")
    if len(name) > MAX_NAME_LENGTH:
        raise TypeError(
            f"The action name {name[:40]!r}... has {len(name)} characters; clients can send at most "
            f"{MAX_NAME_LENGTH}: choose a shorter name or prefix."
        )
    return name


def doc_of(func: Callable[..., Any]) -> str | None:
    """Return the docstring ``ActionSpec.doc`` keeps for ``func``."""
    return (func.__doc__ or "").strip() or None


def get_action_spec(func: Any) -> ActionSpec | None:
    """Return the spec ``@action`` attached to ``func``, if any."""
    spec = getattr(func, ACTION_ATTR, None)
    return spec if isinstance(spec, ActionSpec) else None


@dataclass(frozen=True)
class RegisteredAction:
    """An action in a channel's registry: its spec, where its handler lives and what the handler's parameters take."""

    spec: ActionSpec
    target: str | Callable[..., Any]
    keywords: tuple[tuple[str, str], ...]
    """Each parameter filled from ``HANDLER_KEYWORDS``, with the keyword that fills it: ``("ws", "websocket")``."""
    payload: Payload | None
    """Validates the payload for the handler's typed parameters; None when it has none."""
    reply: Reply
    """Renders what the handler returns as its reply frame."""
    where: str = ""
    """Names the handler in error messages: ``ChatChannel.send`` or ``app.chat.send``."""
    channel_parameter: str | None = None
    """The parameter of a router's function that receives the channel object, if it has one."""
    dependencies: DependencyPlan | None = None
    """Runs the dependencies of ``@action(dependencies=...)`` and of the handler's parameters; None: it has none."""

    @property
    def accepted(self) -> frozenset[str]:
        """Return the names of the parameters filled from ``HANDLER_KEYWORDS``."""
        return frozenset(parameter for parameter, _ in self.keywords)

    @classmethod
    def for_method(
        cls,
        spec: ActionSpec,
        attribute: str,
        func: Any,
        *,
        owner: str = "",
        namespace: Mapping[str, Any] | None = None,
    ) -> RegisteredAction:
        """Register the method stored on the class under ``attribute``; ``namespace`` helps resolve annotations.

        Raises:
            TypeError: The handler or a dependency has a parameter that nothing fills, or types pydantic cannot
                validate.
        """
        where = f"{owner}.{attribute}" if owner else attribute
        if isinstance(func, staticmethod):
            return cls._read(spec, attribute, func.__func__, where, bound=False, namespace=namespace)
        if isinstance(func, classmethod):
            func = func.__func__
        return cls._read(spec, attribute, func, where, bound=True, namespace=namespace)

    @classmethod
    def for_function(
        cls,
        spec: ActionSpec,
        func: Callable[..., Any],
        *,
        where: str | None = None,
        channel_parameter: str | None = None,
    ) -> RegisteredAction:
        """Register a plain function; its parameter ``channel_parameter`` (if any) will receive the channel object.

        Raises:
            TypeError: The function or a dependency has a parameter that nothing fills, or types pydantic cannot
                validate.
            ValueError: The spec's limits contradict those ``@limiter`` attached to the function.
        """
        where = where or str(getattr(func, "__qualname__", repr(func)))
        read = func if channel_parameter is None else _without_parameter(func, channel_parameter)
        entry = cls._read(spec, func, read, where, bound=False, namespace=None, channel_parameter=channel_parameter)
        if spec.limits:
            entry.function(None)  # stacks the limits now, so that contradicting ones fail at definition time
        return entry

    @classmethod
    def _read(
        cls,
        spec: ActionSpec,
        target: str | Callable[..., Any],
        func: Callable[..., Any],
        where: str,
        *,
        bound: bool,
        namespace: Mapping[str, Any] | None,
        channel_parameter: str | None = None,
    ) -> RegisteredAction:
        signature = HandlerSignature.read(
            func,
            action=spec.name,
            where=where,
            bound=bound,
            namespace=namespace,
            response_model=spec.response_model,
            exclude_none=spec.response_model_exclude_none,
            exclude_unset=spec.response_model_exclude_unset,
            exclude_defaults=spec.response_model_exclude_defaults,
            by_alias=spec.response_model_by_alias,
        )
        subject = f"the action handler {where}"
        dependencies = DependencyPlan.of(
            read_dependencies(spec.dependencies, subject),
            tuple((name, Dependency.read(declared, subject)) for name, declared in signature.dependencies),
        )
        return cls(
            spec, target, signature.keywords, signature.payload, signature.reply, where, channel_parameter, dependencies
        )

    def function(self, owner: Any) -> Callable[..., Any]:
        """Return the handler (bound to ``owner`` for a method, or given it for a router's function)."""
        if isinstance(self.target, str):
            method: Callable[..., Any] = getattr(owner, self.target)
            return method
        if self.channel_parameter is None and not self.spec.limits:
            return self.target
        bound = {self.channel_parameter: owner} if self.channel_parameter is not None else {}
        handler = functools.partial(self.target, **bound)
        # The limits stacked as ``@limiter`` stacks them: the handler's own, then the router's.
        setattr(handler, LIMITS_ATTR, get_limits(self.target))
        for limit in self.spec.limits:
            limit(handler)
        return handler

    async def call(self, owner: Any, **available: Any) -> Any:
        """Run the dependencies, validate the payload, call the handler with what its parameters take and return
        what it returns (the channel's own ``dependencies`` are not run: a prepared action runs them).

        Raises:
            ValidationFailed: The payload does not fit the handler's typed parameters.
        """
        handler = self.function(owner)

        def finish(arguments: dict[str, Any]) -> Any:
            if self.payload is not None:
                arguments.update(self.payload.arguments(available.get("data") or {}))
            for parameter, keyword in self.keywords:
                if keyword in available:
                    arguments[parameter] = available[keyword]
            return handler(**arguments)

        if self.dependencies is not None:
            return await self.dependencies.run(tuple(map(available.get, HANDLER_KEYWORDS)), finish)
        result = finish({})
        if inspect.isawaitable(result):
            result = await result
        return result


def _without_parameter(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Return a stand-in for ``func`` whose signature lacks the parameter ``name``, for reading the others."""
    signature = inspect.signature(func)
    stand_in = functools.partial(func)
    parameters = [parameter for parameter in signature.parameters.values() if parameter.name != name]
    setattr(stand_in, "__signature__", signature.replace(parameters=parameters))  # noqa: B010 - a partial's attribute
    setattr(stand_in, "__wrapped__", func)  # noqa: B010 - where its string annotations are evaluated
    return stand_in
