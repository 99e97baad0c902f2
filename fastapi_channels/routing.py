"""Action routers: a channel's actions declared in other modules, with shared checks, then included.

An ``ActionRouter`` is to a channel what FastAPI's ``APIRouter`` is to an app. ``@router.action("send")`` declares
a plain function (it takes what a ``room.action`` function takes) under the router's name prefix, with the
router's permission, limits, tags and dependencies added to the action's own. ``include_router(router)`` on a
channel class (every object of the class) or on one channel object registers the router's actions there; the
handlers' signatures are read then, once per include. Name clashes raise at once, never on a frame.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from typing_extensions import Unpack

from fastapi_channels.decorators import (
    HANDLER_KEYWORDS,
    ActionOptions,
    ActionSpec,
    RegisteredAction,
    check_action_name,
    doc_of,
    spec_fields,
)
from fastapi_channels.permission import PermissionLike
from fastapi_channels.throttling import RateSpec

__all__ = ["ActionRouter", "IncludeRouter"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Routed:
    """One action of a router: its spec with the router's shared options applied, and its function."""

    spec: ActionSpec
    func: Callable[..., Any]

    @property
    def where(self) -> str:
        return f"{getattr(self.func, '__module__', '?')}.{getattr(self.func, '__qualname__', repr(self.func))}"


class ActionRouter:
    """Declare actions apart from their channel, with a shared name prefix, permission, limits, tags and dependencies.

    Args:
        prefix: Put before each action's name: with ``"chat."``, ``@router.action("send")`` is ``chat.send``.
        permission: Checked before each action's own ``permission`` (both must allow).
        limits: ``limiter(...)`` specs each action gets besides its own ``@limiter`` ones, as if it were
            decorated with them: every action spends its own budget. For one budget that all of a channel's
            actions share, use the channel's ``throttle_classes``.
        dependencies: Put before each action's own ``dependencies``.
        tags: Put before each action's own ``tags``.
        deprecated: Make every action of the router deprecated.

    Raises:
        TypeError: An option of the wrong kind.
        ValueError: Limits that contradict each other.
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        permission: PermissionLike = None,
        limits: Sequence[RateSpec] = (),
        dependencies: Sequence[Any] = (),
        tags: Iterable[str] = (),
        deprecated: bool = False,
    ) -> None:
        self.prefix = _check_prefix(prefix)
        shared = spec_fields(
            {"permission": permission, "dependencies": dependencies, "tags": tags, "deprecated": deprecated},
            "ActionRouter",
        )
        self.permission: PermissionLike = shared["permission"]
        self.dependencies: tuple[Any, ...] = shared["dependencies"]
        self.tags: tuple[str, ...] = shared["tags"]
        self.deprecated: bool = shared["deprecated"]
        self.limits = _check_limits(limits)
        self._actions: dict[str, _Routed] = {}
        # Where the router was first included: its actions were copied there, so it takes no more.
        self._included_into: str | None = None

    def __repr__(self) -> str:
        return f"ActionRouter(prefix={self.prefix!r})"

    @property
    def actions(self) -> list[str]:
        """Return the names of the router's actions, prefix included."""
        return list(self._actions)

    def get_spec(self, name: str) -> ActionSpec:
        """Return the spec of the router's action ``name`` (prefix included), the router's shared options applied.

        Raises:
            KeyError: The router has no such action.
        """
        routed = self._actions.get(name)
        if routed is None:
            raise KeyError(f"{self!r} has no action named {name!r}.")
        return routed.spec

    def action(self, name: str | None = None, **options: Unpack[ActionOptions]) -> Callable[[F], F]:
        """Declare a plain function as the action ``prefix + name`` (the function's name by default).

        It takes the keywords of ``@action``. The function takes what a ``room.action`` function takes, and a
        parameter annotated with a channel class (``room: Channel``) receives the channel object it runs in.

        Raises:
            TypeError: A bad name or keyword, as ``@action`` raises.
            ValueError: The router already has an action of that name.
            RuntimeError: The router was already included somewhere.
        """
        if name is not None:
            check_action_name(name)
        fields = spec_fields(options, "router.action")

        def decorator(func: F) -> F:
            if not callable(func):
                raise TypeError(f"@router.action decorates functions, not {func!r}.")
            spec = ActionSpec(name=name or func.__name__, doc=doc_of(func), **fields)
            self._add([_Routed(self._shared(spec, self.prefix), func)])
            return func

        return decorator

    def include_router(self, router: ActionRouter, *, prefix: str = "") -> None:
        """Add ``router``'s actions to this router, named ``self.prefix + prefix + name``, with its shared options.

        The actions are copied: ``router`` takes no more actions afterwards.

        Raises:
            ValueError: An action name this router already has, or ``router`` is this router.
            RuntimeError: This router was already included somewhere.
        """
        if router is self:
            raise ValueError(f"{self!r} cannot include itself.")
        _check_prefix(prefix)
        self._add([_Routed(self._shared(routed.spec, self.prefix + prefix), routed.func) for routed in router._all()])
        router._included(repr(self))

    def _shared(self, spec: ActionSpec, prefix: str) -> ActionSpec:
        """Return ``spec`` named with ``prefix``, with this router's shared options before its own."""
        return replace(
            spec,
            name=check_action_name(prefix + spec.name),
            permission=_both(self.permission, spec.permission),
            deprecated=self.deprecated or spec.deprecated,
            tags=tuple(dict.fromkeys((*self.tags, *spec.tags))),
            dependencies=(*self.dependencies, *spec.dependencies),
            limits=(*self.limits, *spec.limits),
        )

    def _add(self, added: list[_Routed]) -> None:
        """Add every action of ``added``, or none of them when one name is taken."""
        if self._included_into is not None:
            raise RuntimeError(
                f"{self!r} was already included into {self._included_into}, which copied its actions then: "
                "declare every action of a router before including it."
            )
        names: dict[str, _Routed] = dict(self._actions)
        for routed in added:
            taken = names.get(routed.spec.name)
            if taken is not None:
                raise ValueError(
                    f"The action {routed.spec.name!r} of {routed.where} cannot be added to {self!r}, which already "
                    f"has an action of that name ({taken.where}): rename one of them or include its router with a "
                    'prefix, as include_router(router, prefix="...").'
                )
            names[routed.spec.name] = routed
        self._actions = names

    def _all(self) -> list[_Routed]:
        return list(self._actions.values())

    def _included(self, into: str) -> None:
        if self._included_into is None:
            self._included_into = into


class IncludeRouter(Protocol):
    """What ``include_router`` is on a channel class or object: call it with a router."""

    def __call__(self, router: ActionRouter, *, prefix: str = "") -> None:
        """Register ``router``'s actions, their names prefixed with ``prefix``."""


def include_actions(
    router: ActionRouter,
    existing: Mapping[str, RegisteredAction],
    *,
    owner: type,
    channel_base: type,
    into: str,
    prefix: str = "",
) -> dict[str, RegisteredAction]:
    """Return ``router``'s actions registered for objects of ``owner``, checked against the ``existing`` ones.

    ``channel_base`` is the class whose subclasses a parameter may be annotated with to receive the channel
    object; ``into`` names the channel class or object in error messages.

    Raises:
        TypeError: A handler's parameters cannot be filled, as ``room.action`` raises.
        ValueError: An action name ``existing`` already has (the router included twice, too).
    """
    if not isinstance(router, ActionRouter):
        raise TypeError(f"include_router takes an ActionRouter, not {router!r}.")
    _check_prefix(prefix)
    added: dict[str, RegisteredAction] = {}
    for routed in router._all():
        spec = replace(routed.spec, name=check_action_name(prefix + routed.spec.name)) if prefix else routed.spec
        parameter = _channel_parameter(routed.func, owner, channel_base, routed.where)
        entry = RegisteredAction.for_function(spec, routed.func, where=routed.where, channel_parameter=parameter)
        taken = existing.get(spec.name)
        if taken is not None and taken.target is routed.func:
            raise ValueError(f"{routed.where} is already included into {into} as {spec.name!r}: include a router once.")
        if taken is not None:
            raise ValueError(
                f"The action {spec.name!r} of {routed.where} cannot be included into {into}, which already has an "
                f"action of that name ({taken.where or repr(taken.target)}): rename one of them or include the router "
                'with a prefix, as include_router(router, prefix="...").'
            )
        added[spec.name] = entry
    router._included(into)
    return added


def _channel_parameter(func: Callable[..., Any], owner: type, channel_base: type, where: str) -> str | None:
    """Return the parameter of ``func`` annotated with a channel class, which receives the channel object."""
    found: list[str] = []
    namespace = getattr(inspect.unwrap(func), "__globals__", {})
    for parameter in inspect.signature(func).parameters.values():
        annotation = parameter.annotation
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # as signatures.py evaluates them
            except Exception:
                continue  # reported with its fix when the signature is read
        if not (isinstance(annotation, type) and issubclass(annotation, channel_base)):
            continue
        if parameter.name in HANDLER_KEYWORDS or parameter.kind not in (
            parameter.KEYWORD_ONLY,
            parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise TypeError(
                f"The action handler {where} annotates {parameter.name!r} with {annotation.__name__}, but that "
                f"parameter cannot receive the channel object: name it otherwise (not {', '.join(HANDLER_KEYWORDS)}), "
                "as `room: Channel`, and let it be passed by keyword."
            )
        if not issubclass(owner, annotation):
            raise TypeError(
                f"The action handler {where} takes {parameter.name!r}: {annotation.__name__}, but it is included "
                f"into {owner.__name__}: annotate it with {owner.__name__} or one of its bases, such as Channel."
            )
        found.append(parameter.name)
    if len(found) > 1:
        raise TypeError(
            f"The action handler {where} takes the channel object in {found[0]!r} and {found[1]!r}: keep one."
        )
    return found[0] if found else None


def _both(first: PermissionLike, second: PermissionLike) -> PermissionLike:
    """Return a permission that allows when both allow (a tuple is checked in order, stopping at a denial)."""
    if first is None:
        return second
    if second is None:
        return first
    return (first, second)


def _check_prefix(prefix: Any) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"A router prefix must be a string such as 'chat.', not {prefix!r}.")
    return prefix


def _check_limits(limits: Any) -> tuple[RateSpec, ...]:
    if isinstance(limits, RateSpec) or not isinstance(limits, list | tuple):
        raise TypeError(f"ActionRouter limits must be a list such as [limiter(5, seconds=1)], not {limits!r}.")
    for limit in limits:
        if not isinstance(limit, RateSpec):
            raise TypeError(
                f"{limit!r} in ActionRouter limits is not a limiter(...) spec; objects of fastapi-limiter go in a "
                "channel's throttle_classes."
            )

    def probe() -> None:
        """Carries the limits, stacked as ``@limiter`` stacks them, which checks that they agree."""

    for limit in limits:
        limit(probe)
    return tuple(limits)
