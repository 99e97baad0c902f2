from typing import Annotated

from pydantic import BaseModel, Field

from fastapi_channels import ActionRouter, Channel, limiter

router = ActionRouter(prefix="chat.", tags=["chat"])


class Message(BaseModel):
    text: Annotated[str, Field(min_length=1, max_length=500)]


@router.action("send")
@limiter(5, seconds=1)  # this action's own limit, as on any action
async def send(message: Message, channel: str, room: Channel) -> None:
    # `room: Channel` receives the channel object the action runs in: this module imports no channel.
    await room.broadcast_to_channel(channel, {"action": "chat.message", "text": message.text})


@router.action("count", summary="How many are here")
async def count(channel: str, room: Channel) -> int:
    return await room.get_connection_count(channel)  # returned: the reply to the sender
