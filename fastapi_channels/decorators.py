"""The ``@action`` decorator: it attaches an action spec to a function and returns the same function."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from fastapi_channels.permission import PermissionLike, check_permission_like

__all__ = ["action", "ActionSpec", "RegisteredAction", "get_action_spec", "HANDLER_KEYWORDS"]

F = TypeVar("F", bound=Callable[..., Any])

ACTION_ATTR = "__fastapi_channels_action__"


@dataclass(frozen=True)
class ActionSpec:
    """What ``@action`` declared: the public name, its permission and whether it is deprecated."""

    name: str
    permission: PermissionLike = None
    deprecated: bool = False
    doc: str | None = None


@overload
def action(name: F) -> F: ...


@overload
def action(
    name: str | None = None, *, permission: PermissionLike = None, deprecated: bool = False
) -> Callable[[F], F]: ...


def action(
    name: str | Callable[..., Any] | None = None,
    *,
    permission: PermissionLike = None,
    deprecated: bool = False,
) -> Any:
    """Declare a channel method as the handler of the action ``name`` (the function's name by default).

    Args:
        name: The value clients send in the frame's ``action`` field.
        permission: Checked before the action runs, after the channel's ``permission_classes``.
        deprecated: Answer every call with an ``ActionIsDeprecated`` error frame instead of running it.
    """
    if callable(name):
        # Used bare, as ``@action`` without parentheses.
        return action()(name)
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"action name must be a non-empty string, not {name!r}.")
    check_permission_like(permission)

    def decorator(func: F) -> F:
        if not callable(func):
            raise TypeError(f"@action decorates functions, not {func!r}.")
        spec = ActionSpec(
            name=name or func.__name__,
            permission=permission,
            deprecated=deprecated,
            doc=(func.__doc__ or "").strip() or None,
        )
        setattr(func, ACTION_ATTR, spec)
        return func

    return decorator


def get_action_spec(func: Any) -> ActionSpec | None:
    """Return the spec ``@action`` attached to ``func``, if any."""
    spec = getattr(func, ACTION_ATTR, None)
    return spec if isinstance(spec, ActionSpec) else None


@dataclass(frozen=True)
class RegisteredAction:
    """An action in a channel's registry: its spec, where its handler lives and the keywords the handler takes."""

    spec: ActionSpec
    target: str | Callable[..., Any]
    accepted: frozenset[str]

    @classmethod
    def for_method(cls, spec: ActionSpec, attribute: str, func: Any, *, owner: str = "") -> RegisteredAction:
        """Register the method stored on the class under ``attribute``.

        Raises:
            TypeError: The handler has a required parameter that no action call fills.
        """
        where = f"{owner}.{attribute}" if owner else attribute
        if isinstance(func, staticmethod):
            return cls(spec, attribute, _accepted_keywords(func.__func__, where, bound=False))
        if isinstance(func, classmethod):
            func = func.__func__
        return cls(spec, attribute, _accepted_keywords(func, where, bound=True))

    @classmethod
    def for_function(cls, spec: ActionSpec, func: Callable[..., Any]) -> RegisteredAction:
        """Register a plain function.

        Raises:
            TypeError: The function has a required parameter that no action call fills.
        """
        return cls(spec, func, _accepted_keywords(func, getattr(func, "__qualname__", repr(func)), bound=False))

    def function(self, owner: Any) -> Callable[..., Any]:
        """Return the handler (bound to ``owner`` for a method)."""
        return getattr(owner, self.target) if isinstance(self.target, str) else self.target

    async def call(self, owner: Any, **available: Any) -> None:
        """Call the handler with the keywords it accepts."""
        keywords = {key: value for key, value in available.items() if key in self.accepted}
        result = self.function(owner)(**keywords)
        if inspect.isawaitable(result):
            await result


HANDLER_KEYWORDS = ("websocket", "channel", "data", "action", "request_id")
"""The keywords an action handler may name; it receives exactly those it names."""


def _accepted_keywords(func: Callable[..., Any], where: str, *, bound: bool) -> frozenset[str]:
    """Return the keywords to pass ``func``, refusing at definition time a parameter that nothing fills."""
    parameters = list(inspect.signature(func).parameters.values())
    if (
        bound
        and parameters
        and parameters[0].kind in (parameters[0].POSITIONAL_ONLY, parameters[0].POSITIONAL_OR_KEYWORD)
    ):
        parameters = parameters[1:]  # self (or cls)
    named = frozenset(parameter.name for parameter in parameters)
    for parameter in parameters:
        required = parameter.default is parameter.empty
        unfilled = parameter.kind is parameter.POSITIONAL_ONLY or parameter.name not in HANDLER_KEYWORDS
        if required and unfilled and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(
                f"The action handler {where} has the parameter {parameter.name!r}, which no action call fills: "
                f"name its parameters from {', '.join(HANDLER_KEYWORDS)} (as keywords), or give it a default."
            )
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        # **kwargs receives websocket, channel and data, plus any other keyword the handler names itself.
        return named | {"websocket", "channel", "data"}
    return named & frozenset(HANDLER_KEYWORDS)
