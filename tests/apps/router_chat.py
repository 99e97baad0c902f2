"""A router of chat actions, declared apart from any channel: tests/test_routing.py includes it into one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import WebSocket
from pydantic import BaseModel, Field

from fastapi_channels import ActionRouter, Channel

router = ActionRouter(prefix="chat.", tags=["chat"])


class Message(BaseModel):
    """What a client says."""

    text: Annotated[str, Field(min_length=1, max_length=200)]


class Said(BaseModel):
    """The reply to the sender."""

    text: str
    length: int


@router.action("say", summary="Say something to the room")
async def say(message: Message, channel: str, room: Channel) -> Said:
    """Send the message to everyone in the room and answer with what was said."""
    await room.broadcast_to_channel(channel, {"action": "chat.said", "text": message.text})
    return Said(text=message.text, length=len(message.text))


@router.action()
async def echo(websocket: WebSocket, data: dict[str, Any], action: str, room: Channel) -> None:
    """Send the frame back to the sender only, with the action's full name and the channel object's."""
    await room.broadcast_to_personal(websocket, {"echo": data.get("text"), "action": action, "room": room.channel})
