"""The ``@action`` decorator: it attaches an action spec to a function and returns the same function.

A channel registers each decorated handler as a ``RegisteredAction`` when its class is created (or when
``room.action(...)`` registers a function). The handler's signature is read then, once (see ``signatures``):
which keyword fills each parameter, the validator of a typed payload, the shape of the replies and the plan of
its dependencies (see ``dependencies``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from fastapi_channels.dependencies import Dependency, DependencyPlan, declare_dependencies, read_dependencies
from fastapi_channels.payloads import Payload, Reply
from fastapi_channels.permission import PermissionLike, check_permission_like
from fastapi_channels.signatures import HANDLER_KEYWORDS, RETURN_ANNOTATION, HandlerSignature

__all__ = [
    "action",
    "ActionSpec",
    "RegisteredAction",
    "get_action_spec",
    "HANDLER_KEYWORDS",
    "RETURN_ANNOTATION",
]

F = TypeVar("F", bound=Callable[..., Any])

ACTION_ATTR = "__fastapi_channels_action__"


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
    response_model: Any = RETURN_ANNOTATION
    response_model_exclude_none: bool = False
    response_model_exclude_unset: bool = False
    response_model_exclude_defaults: bool = False
    response_model_by_alias: bool = True
    dependencies: tuple[Any, ...] = ()
    """The ``Depends(...)`` of ``@action(dependencies=[...])``, run before the handler."""


@overload
def action(name: F) -> F: ...


@overload
def action(
    name: str | None = None,
    *,
    permission: PermissionLike = None,
    deprecated: bool = False,
    summary: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    response_model: Any = RETURN_ANNOTATION,
    response_model_exclude_none: bool = False,
    response_model_exclude_unset: bool = False,
    response_model_exclude_defaults: bool = False,
    response_model_by_alias: bool = True,
    dependencies: Sequence[Any] | None = None,
) -> Callable[[F], F]: ...


def action(
    name: str | Callable[..., Any] | None = None,
    *,
    permission: PermissionLike = None,
    deprecated: bool = False,
    summary: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    response_model: Any = RETURN_ANNOTATION,
    response_model_exclude_none: bool = False,
    response_model_exclude_unset: bool = False,
    response_model_exclude_defaults: bool = False,
    response_model_by_alias: bool = True,
    dependencies: Sequence[Any] | None = None,
) -> Any:
    """Declare a channel method as the handler of the action ``name`` (the function's name by default).

    Args:
        name: The value clients send in the frame's ``action`` field.
        permission: Checked before the action runs, after the channel's ``permission_classes``.
        deprecated: Answer every call with an ``ActionIsDeprecated`` error frame instead of running it.
        summary: A short description of the action, for generated documentation.
        description: A longer description; the docstring is kept as ``doc`` either way.
        tags: Names to group the action under in generated documentation.
        response_model: Validate and shape what the handler returns (its return annotation by default;
            None sends the value as it is).
        response_model_exclude_none: Leave out the response model's fields that are None.
        response_model_exclude_unset: Leave out the response model's fields that were not set.
        response_model_exclude_defaults: Leave out the response model's fields that have their default value.
        response_model_by_alias: Name the response model's fields by their aliases.
        dependencies: FastAPI ``Depends(...)`` to run before the handler, their values unused.
    """
    if callable(name):
        # Used bare, as ``@action`` without parentheses.
        return action()(name)
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"action name must be a non-empty string, not {name!r}.")
    check_permission_like(permission)
    for label, text in (("summary", summary), ("description", description)):
        if text is not None and not isinstance(text, str):
            raise TypeError(f"action {label} must be a string or None, not {text!r}.")
    if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags or ()):
        raise TypeError(f"action tags must be a list of strings, not {tags!r}.")
    declare_dependencies(dependencies, "action dependencies")
    options = {
        "permission": permission,
        "deprecated": deprecated,
        "summary": summary,
        "description": description,
        "tags": tuple(tags or ()),
        "response_model": response_model,
        "response_model_exclude_none": response_model_exclude_none,
        "response_model_exclude_unset": response_model_exclude_unset,
        "response_model_exclude_defaults": response_model_exclude_defaults,
        "response_model_by_alias": response_model_by_alias,
        "dependencies": tuple(dependencies or ()),
    }

    def decorator(func: F) -> F:
        if not callable(func):
            raise TypeError(f"@action decorates functions, not {func!r}.")
        doc = (func.__doc__ or "").strip() or None
        setattr(func, ACTION_ATTR, ActionSpec(name=name or func.__name__, doc=doc, **options))
        return func

    return decorator


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
    def for_function(cls, spec: ActionSpec, func: Callable[..., Any]) -> RegisteredAction:
        """Register a plain function.

        Raises:
            TypeError: The function or a dependency has a parameter that nothing fills, or types pydantic cannot
                validate.
        """
        where = getattr(func, "__qualname__", repr(func))
        return cls._read(spec, func, func, where, bound=False, namespace=None)

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
        return cls(spec, target, signature.keywords, signature.payload, signature.reply, dependencies)

    def function(self, owner: Any) -> Callable[..., Any]:
        """Return the handler (bound to ``owner`` for a method)."""
        return getattr(owner, self.target) if isinstance(self.target, str) else self.target

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
