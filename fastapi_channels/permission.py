"""Permission classes and their composition with ``&``, ``|`` and ``~``; sync and async checks alike.

A permission is any of: a ``BasePermission`` subclass or instance, a composition of them, a sync or async
callable ``(websocket, action, **context) -> bool``, a bool, ``None`` (allow), or a list/tuple of those
(all must allow). Anything but a truthy result denies.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from starlette.websockets import WebSocket

__all__ = [
    "BasePermission",
    "AllowAny",
    "DenyAll",
    "IsAuthenticated",
    "PermissionLike",
    "allows_everyone",
    "has_permission",
]


class _PermissionMeta(type):
    """Let permission *classes* compose with ``&``, ``|`` and ``~`` as instances do."""

    def __and__(cls, other: PermissionLike) -> BasePermission:
        return AND(cls, other)

    def __rand__(cls, other: PermissionLike) -> BasePermission:
        return AND(other, cls)

    def __or__(cls, other: Any) -> Any:
        if _is_plain_type(other):
            # ``SomePermission | None`` in a runtime annotation stays a type union.
            return type.__or__(cls, other)
        return OR(cls, other)

    def __ror__(cls, other: Any) -> Any:
        if _is_plain_type(other):
            return type.__ror__(cls, other)
        return OR(other, cls)

    def __invert__(cls) -> BasePermission:
        return NOT(cls)


def _is_plain_type(value: Any) -> bool:
    """Whether ``value`` is None or a class that is not a permission (so ``|`` means a type union)."""
    return value is None or (isinstance(value, type) and not isinstance(value, _PermissionMeta))


class BasePermission(metaclass=_PermissionMeta):
    """Decide whether a websocket may connect (``action`` is None) or run ``action``.

    Override ``has_permission``; it may be sync or async. The base class denies, so a subclass that
    forgets to override it lets nobody in rather than everybody.
    """

    def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool | Awaitable[bool]:
        """Return True to allow; ``context`` holds ``channel``."""
        return False

    def __and__(self, other: PermissionLike) -> BasePermission:
        return AND(self, other)

    def __rand__(self, other: PermissionLike) -> BasePermission:
        return AND(other, self)

    def __or__(self, other: PermissionLike) -> BasePermission:
        return OR(self, other)

    def __ror__(self, other: PermissionLike) -> BasePermission:
        return OR(other, self)

    def __invert__(self) -> BasePermission:
        return NOT(self)


PermissionLike: TypeAlias = (
    "BasePermission | type[BasePermission] | Callable[..., Any] | bool | None | Sequence[PermissionLike]"
)
"""A permission: a class, an instance, a sync or async function, a bool, None, or a list of them (all must allow)."""


class AllowAny(BasePermission):
    """Allow everyone."""

    def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        """Return True."""
        return True


class DenyAll(BasePermission):
    """Deny everyone."""

    def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        """Return False."""
        return False


class IsAuthenticated(BasePermission):
    """Allow connections whose ``scope["user"]`` is authenticated (set by Starlette's AuthenticationMiddleware)."""

    def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        """Return True when the connection carries an authenticated user."""
        user = websocket.scope.get("user")
        return bool(getattr(user, "is_authenticated", False))


class AND(BasePermission):
    """Allow when both operands allow; the second is not checked when the first denies."""

    def __init__(self, first: PermissionLike, second: PermissionLike) -> None:
        check_permission_like(first)
        check_permission_like(second)
        self.first, self.second = first, second

    async def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        """Return True when both operands allow."""
        return await has_permission(self.first, websocket, action, **context) and await has_permission(
            self.second, websocket, action, **context
        )


class OR(BasePermission):
    """Allow when either operand allows; the second is not checked when the first allows."""

    def __init__(self, first: PermissionLike, second: PermissionLike) -> None:
        check_permission_like(first)
        check_permission_like(second)
        self.first, self.second = first, second

    async def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        """Return True when either operand allows."""
        return await has_permission(self.first, websocket, action, **context) or await has_permission(
            self.second, websocket, action, **context
        )


class NOT(BasePermission):
    """Allow when the operand denies."""

    def __init__(self, operand: PermissionLike) -> None:
        check_permission_like(operand)
        self.operand = operand

    async def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        """Return True when the operand denies."""
        return not await has_permission(self.operand, websocket, action, **context)


async def has_permission(permission: PermissionLike, websocket: WebSocket, action: str | None, **context: Any) -> bool:
    """Evaluate any permission form, awaiting async checks; only a truthy result allows."""
    if permission is None:
        return True
    if isinstance(permission, bool):
        return permission
    if isinstance(permission, type) and issubclass(permission, BasePermission):
        permission = permission()
    if isinstance(permission, BasePermission):
        result: Any = permission.has_permission(websocket, action, **context)
    elif isinstance(permission, list | tuple):
        for item in permission:
            if not await has_permission(item, websocket, action, **context):
                return False
        return True
    elif callable(permission):
        check: Callable[..., Any] = permission
        result = check(websocket, action, **context)
    else:
        raise TypeError(
            f"{permission!r} is not a permission: use a BasePermission subclass or instance, "
            "a callable (websocket, action, **context) -> bool, a bool or None."
        )
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


def check_permission_like(permission: Any) -> None:
    """Raise TypeError at definition time when ``permission`` is not a permission form."""
    # A tuple, not ``bool | BasePermission``: the permission metaclass turns ``|`` into an OR permission.
    if permission is None or isinstance(permission, (bool, BasePermission)) or callable(permission):
        return
    if isinstance(permission, list | tuple):
        for item in permission:
            check_permission_like(item)
        return
    raise TypeError(
        f"{permission!r} is not a permission: use a BasePermission subclass or instance, "
        "a callable (websocket, action, **context) -> bool, a bool, None, or a list of those."
    )


def allows_everyone(permission: PermissionLike) -> bool:
    """Return whether ``permission`` allows every request without looking at it, so checking it can be skipped."""
    if permission is None or permission is True:
        return True
    if isinstance(permission, list | tuple):
        return all(allows_everyone(item) for item in permission)
    kind = permission if isinstance(permission, type) else type(permission)
    # A subclass of AllowAny may override has_permission: only AllowAny's own check is known to allow all.
    return issubclass(kind, BasePermission) and kind.has_permission is AllowAny.has_permission
