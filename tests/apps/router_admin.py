"""A router of moderation actions with a shared permission and limit: tests/test_routing.py includes it."""

from __future__ import annotations

from typing import Any

from fastapi import WebSocket

from fastapi_channels import ActionRouter, Channel, IsAuthenticated, limiter

MODERATORS = {"ann"}


def is_moderator(websocket: WebSocket, action: str | None, **context: Any) -> bool:
    """Allow the users named in MODERATORS."""
    return getattr(websocket.scope.get("user"), "username", None) in MODERATORS


router = ActionRouter(prefix="admin.", permission=IsAuthenticated, limits=[limiter(2, minutes=1)], tags=["admin"])


@router.action(permission=is_moderator, tags=["danger"])
async def kick(user: str, channel: str, room: Channel) -> dict[str, Any]:
    """Tell the room that ``user`` was removed, and answer the caller."""
    await room.broadcast_to_channel(channel, {"action": "admin.kicked", "user": user})
    return {"kicked": user}


@router.action()
async def whoami(websocket: WebSocket) -> str | None:
    """Answer with the caller's user name: any authenticated user may ask."""
    name: str | None = getattr(websocket.scope.get("user"), "username", None)
    return name
