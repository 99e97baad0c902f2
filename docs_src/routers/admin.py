from typing import Any

from fastapi import WebSocket

from fastapi_channels import ActionRouter, BasePermission, Channel, limiter


class IsModerator(BasePermission):
    """For illustration only: trust a query parameter. Use real authentication in your app."""

    def has_permission(self, websocket: WebSocket, action: str | None, **context: Any) -> bool:
        return websocket.query_params.get("role") == "moderator"


router = ActionRouter(
    prefix="admin.",
    permission=IsModerator,  # checked before each action's own permission: both must allow
    limits=[limiter(10, minutes=1)],  # each action: 10 calls a minute per client, besides its own limits
    tags=["admin"],
)


@router.action("announce")
async def announce(text: str, channel: str, room: Channel) -> None:
    await room.broadcast_to_channel(channel, {"action": "admin.announcement", "text": text})


@router.action("mute", tags=["users"])
async def mute(user: str) -> dict[str, str]:
    return {"muted": user}
