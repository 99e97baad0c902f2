"""Who is on the other end of a websocket: the authenticated user's name, read from Starlette's ``scope["user"]``."""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocket

__all__ = ["user_of"]


def user_of(websocket: WebSocket) -> str | None:
    """Return the name of the websocket's authenticated user, or None for an anonymous client.

    The name is the user's ``identity``, else its ``display_name`` (see Starlette's ``BaseUser``); it is what
    ``send_to_user`` and the member list use. Without ``AuthenticationMiddleware`` every client is anonymous.
    """
    user = websocket.scope.get("user")
    if not getattr(user, "is_authenticated", False):
        return None
    return _name_of(user)


def _name_of(user: Any) -> str:
    # Starlette's BaseUser raises NotImplementedError for the properties a subclass does not define.
    for attribute in ("identity", "display_name"):
        try:
            value = getattr(user, attribute, None)
        except NotImplementedError:
            continue
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return repr(user)
