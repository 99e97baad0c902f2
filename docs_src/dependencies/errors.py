from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, WebSocket, WebSocketException, status
from starlette.requests import HTTPConnection

from fastapi_channels import Channel, action, add_channel

app = FastAPI()
add_channel(app)


def current_user(connection: HTTPConnection) -> str:
    """One dependency for HTTP routes and actions: the connection is the request, or the socket."""
    if connection.headers.get("authorization") != "Bearer letmein":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    return "ann"


def no_bots(websocket: WebSocket) -> None:
    if "bot" in websocket.headers.get("user-agent", "").lower():
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="No bots.")


@app.get("/me")
async def me(user: Annotated[str, Depends(current_user)]) -> dict[str, str]:
    return {"user": user}


class Inbox(Channel):
    @action()
    async def whoami(self, user: Annotated[str, Depends(current_user)]) -> str:
        return user

    @action(dependencies=[Depends(no_bots)])
    async def post(self, text: str) -> str:
        return text


inbox = Inbox(channel="inbox")


@app.websocket("/inbox")
async def inbox_endpoint(websocket: WebSocket) -> None:
    await inbox.connect(websocket)
