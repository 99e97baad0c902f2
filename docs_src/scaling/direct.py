import os

from fastapi import FastAPI, WebSocket
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from fastapi_channels import add_channel, send_to_user
from fastapi_channels.channels import Channel

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
TOKENS = {"token-of-ann": "ann", "token-of-bob": "bob"}  # your session store or token check goes here


class TokenAuthentication(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        user = TOKENS.get(conn.cookies.get("session", ""))
        return (AuthCredentials(["authenticated"]), SimpleUser(user)) if user else None


app = FastAPI()
app.add_middleware(AuthenticationMiddleware, backend=TokenAuthentication())
add_channel(app, url=REDIS_URL, limiter_url=REDIS_URL)

notifications = Channel(channel="notifications", app=app)
chat = Channel(channel="chat", app=app)


@app.websocket("/notifications")
async def notifications_endpoint(websocket: WebSocket) -> None:
    await notifications.connect(websocket)


@app.websocket("/chat/{room}")
async def chat_endpoint(websocket: WebSocket, room: str) -> None:
    await chat.connect(websocket, channel=room)


@app.get("/online")
async def online() -> list[dict[str, str | None]]:
    members = await notifications.get_members()  # on every process, oldest first
    return [{"user": member.user, "connection": member.connection_id} for member in members]


@app.post("/notify/{user}")
async def notify(user: str, text: str) -> dict[str, bool]:
    # Reaches the user's notification sockets (each tab and device, on whichever process holds it):
    # not their chat sockets, and nobody else.
    await notifications.send_to_user(user, {"action": "notice", "text": text})
    return {"sent": True}


@app.post("/announce/{user}")
async def announce(user: str, text: str) -> dict[str, bool]:
    # App-wide: every socket of the user, chat rooms included.
    await send_to_user(user, {"action": "announcement", "text": text})
    return {"sent": True}


@app.post("/connections/{connection_id}/notify")
async def notify_one(connection_id: str, text: str) -> dict[str, bool]:
    await notifications.send_to_connection(connection_id, {"action": "notice", "text": text})
    return {"sent": True}
