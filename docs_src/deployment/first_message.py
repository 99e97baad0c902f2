import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.authentication import AuthCredentials, SimpleUser

from fastapi_channels import Channel, action, add_channel
from fastapi_channels.exceptions import PermissionDenied
from fastapi_channels.permission import IsAuthenticated

TOKENS = {"token-alice": "alice"}  # stands in for your real token check
LOGIN_TIMEOUT = 10.0  # seconds a new connection has to authenticate

app = FastAPI()
add_channel(app)


class Inbox(Channel):
    @contextlib.asynccontextmanager
    async def lifespan(self, websocket: WebSocket, channel: str) -> AsyncIterator[None]:
        deadline = asyncio.create_task(self.close_if_anonymous(websocket))
        try:
            yield
        finally:
            deadline.cancel()

    async def close_if_anonymous(self, websocket: WebSocket) -> None:
        await asyncio.sleep(LOGIN_TIMEOUT)
        if not IsAuthenticated().has_permission(websocket, None):
            await self.close(websocket, code=1008, reason="Authenticate first.")

    @action()
    async def authenticate(self, websocket: WebSocket, data: dict[str, Any]) -> None:
        user = TOKENS.get(data.get("token", ""))
        if user is None:
            raise PermissionDenied(error_msg="Invalid token.")  # an error frame, then a close with 1008
        websocket.scope["auth"] = AuthCredentials(["authenticated"])
        websocket.scope["user"] = SimpleUser(user)  # from now on IsAuthenticated allows, and limits are per user
        await self.broadcast_to_personal(websocket, {"action": "authenticated", "user": user})

    @action(permission=IsAuthenticated)
    async def whoami(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"user": websocket.user.display_name})


inbox = Inbox()


@app.websocket("/inbox")
async def inbox_endpoint(websocket: WebSocket) -> None:
    await inbox.connect(websocket)
