from fastapi import FastAPI, WebSocket
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.permission import IsAuthenticated

TOKENS = {"token-alice": "alice", "token-bob": "bob"}  # stands in for your real token check


class TokenBackend(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        # Browsers cannot set headers on a WebSocket, so the token travels in the query string.
        username = TOKENS.get(conn.query_params.get("token", ""))
        if username is None:
            return None  # an anonymous connection: IsAuthenticated will refuse it
        return AuthCredentials(["authenticated"]), SimpleUser(username)


app = FastAPI()
app.add_middleware(AuthenticationMiddleware, backend=TokenBackend())
add_channel(app)


class Inbox(Channel):
    permission_classes = [IsAuthenticated]

    @action()
    async def whoami(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"user": websocket.user.display_name})


inbox = Inbox()


@app.websocket("/inbox")
async def inbox_endpoint(websocket: WebSocket) -> None:
    await inbox.connect(websocket)
