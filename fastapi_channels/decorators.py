"""The ``@action`` decorator: it attaches an action spec to a function and returns the same function."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from fastapi_channels.permission import PermissionLike, check_permission_like

__all__ = ["action", "ActionSpec", "RegisteredAction", "get_action_spec"]

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
    def for_method(cls, spec: ActionSpec, attribute: str, func: Any) -> RegisteredAction:
        """Register the method stored on the class under ``attribute``."""
        return cls(spec, attribute, _accepted_keywords(func))

    @classmethod
    def for_function(cls, spec: ActionSpec, func: Callable[..., Any]) -> RegisteredAction:
        """Register a plain function."""
        return cls(spec, func, _accepted_keywords(func))

    def function(self, owner: Any) -> Callable[..., Any]:
        """Return the handler (bound to ``owner`` for a method)."""
        return getattr(owner, self.target) if isinstance(self.target, str) else self.target

    async def call(self, owner: Any, **available: Any) -> None:
        """Call the handler with the keywords it accepts."""
        keywords = {key: value for key, value in available.items() if key in self.accepted}
        result = self.function(owner)(**keywords)
        if inspect.isawaitable(result):
            await result


def _accepted_keywords(func: Callable[..., Any]) -> frozenset[str]:
    parameters = inspect.signature(func).parameters.values()
    named = frozenset(parameter.name for parameter in parameters)
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        # **kwargs receives websocket, channel and data, plus any other keyword the handler names itself.
        return named | {"websocket", "channel", "data"}
    return named
