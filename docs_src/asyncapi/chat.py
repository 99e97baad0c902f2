from typing import Annotated, Literal

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel, Field

from fastapi_channels import Channel, action, add_channel, limiter

app = FastAPI(title="Chat", version="1.2.0")
add_channel(app)  # serves the document at /asyncapi.json and the page at /asyncapi


class Message(BaseModel):
    """A message someone said in a room."""

    user: str
    text: str


class Say(BaseModel):
    text: Annotated[str, Field(min_length=1, max_length=500)]


HISTORY: list[Message] = []


class Chat(Channel):
    """Rooms where people talk; the room is the last part of the path."""

    max_connection = 100
    # What the server sends besides replies and error frames: documented, never checked at run time.
    sends = {
        "message": Message,
        "joined": Annotated[Literal["joined"], Field(description="Sent to a client once it is in the room.")],
    }

    @limiter(times=5, seconds=1)
    @action(summary="Say something to the room", tags=["chat"])
    async def say(self, websocket: WebSocket, channel: str, say: Say) -> None:
        """Everyone in the room, the sender too, receives it as a message."""
        message = Message(user=websocket.client.host if websocket.client else "someone", text=say.text)
        HISTORY.append(message)
        await self.broadcast_to_channel(channel, message)

    @action("history", tags=["chat"])
    async def last_messages(self, limit: Annotated[int, Field(ge=1, le=50)] = 10) -> list[Message]:
        """Return the room's last messages, oldest first."""
        return HISTORY[-limit:]

    @action(deprecated=True)
    async def shout(self, say: Say) -> str:
        return say.text.upper()


chat = Chat()


@chat.on_event("join")
async def joined(websocket: WebSocket, channel: str) -> None:
    await chat.broadcast_to_personal(websocket, "joined")


@app.websocket("/rooms/{room}")
@chat.serves  # this route serves `chat`: the document lists it, with chat's actions
async def room_endpoint(websocket: WebSocket, room: str) -> None:
    await chat.connect(websocket, channel=room)
