from typing import Annotated, Any

from fastapi import Depends, FastAPI, WebSocket

from fastapi_channels import Channel, PermissionDenied, action, add_channel

app = FastAPI()
add_channel(app)

TOKENS = {"t-ann": "ann", "t-bob": "bob"}  # for illustration only: use real authentication in your app


def get_token(websocket: WebSocket) -> str:
    # A dependency takes the socket as a FastAPI endpoint does, and reads the handshake from it.
    return websocket.query_params.get("token", "")


async def get_user(token: Annotated[str, Depends(get_token)]) -> str:
    user = TOKENS.get(token)
    if user is None:
        raise PermissionDenied(error_msg="Unknown token.", close=False)
    return user


CurrentUser = Annotated[str, Depends(get_user)]


class Pager:
    """A class is a dependency too: a bare Depends() calls the annotation with what its __init__ takes."""

    def __init__(self, data: dict[str, Any], size: int = 20) -> None:
        self.page = int(data.get("page", 1))
        self.size = size


class Notes(Channel):
    @action()
    async def whoami(self, user: CurrentUser) -> str:
        return user

    @action()
    async def write(self, text: str, user: CurrentUser, channel: str) -> None:
        # A typed payload field, a dependency and a keyword fill one handler together.
        await self.broadcast_to_channel(channel, {"action": "write", "by": user, "text": text})

    @action()
    async def page(self, pager: Annotated[Pager, Depends()], user: CurrentUser) -> dict[str, Any]:
        return {"user": user, "page": pager.page, "size": pager.size}


notes = Notes(channel="notes")


@app.websocket("/notes")
async def notes_endpoint(websocket: WebSocket) -> None:
    await notes.connect(websocket)
