import secrets
from typing import Any

from fastapi import FastAPI, Response, WebSocket
from starlette.middleware.authentication import AuthenticationMiddleware

from fastapi_channels import Channel, IsAuthenticated, action, add_channel
from fastapi_channels.auth import TokenAuthentication, from_cookie

ALLOWED_ORIGINS = {"https://chat.example.com"}
SESSIONS: dict[str, str] = {}  # session id -> user name; stands in for your real session store

app = FastAPI()
app.add_middleware(AuthenticationMiddleware, backend=TokenAuthentication(from_cookie("session"), user=SESSIONS.get))
add_channel(app, allowed_origins=sorted(ALLOWED_ORIGINS))  # other pages: HTTP 403 at the handshake


@app.post("/login")
async def login(name: str, response: Response) -> dict[str, str]:
    # Stands in for your real login form: check a password, then open a session.
    session = secrets.token_urlsafe(32)
    SESSIONS[session] = name
    response.set_cookie("session", session, httponly=True, secure=True, samesite="strict")
    return {"user": name}


def same_origin(websocket: WebSocket, action: str | None, **context: Any) -> bool:
    """The browser sends the cookie whichever site's page opens the socket: accept only our own pages."""
    return websocket.headers.get("origin") in ALLOWED_ORIGINS


class Inbox(Channel):
    permission_classes = [same_origin, IsAuthenticated]  # both must allow

    @action()
    async def whoami(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"user": websocket.user.display_name})


inbox = Inbox()


@app.websocket("/inbox")
async def inbox_endpoint(websocket: WebSocket) -> None:
    await inbox.connect(websocket)
