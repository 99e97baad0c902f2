from typing import Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel

from fastapi_channels import Channel, NotFound, action, add_channel

app = FastAPI()
add_channel(app)


class UserOut(BaseModel):
    name: str
    nickname: str | None = None


class UserInDB(UserOut):
    password_hash: str


USERS = {
    "ada": UserInDB(name="ada", password_hash="$argon2id$v=19$..."),
    "bob": UserInDB(name="bob", nickname="bobby", password_hash="$argon2id$v=19$..."),
}


class Directory(Channel):
    @action()
    async def profile(self, name: str) -> UserOut:
        # The return annotation is the response model: the reply holds UserOut's fields, never the hash.
        user = USERS.get(name)
        if user is None:
            raise NotFound(error_msg=f"There is no user {name!r}.", close=False)
        return user

    @action(response_model=UserOut, response_model_exclude_none=True)
    async def compact(self, name: str) -> Any:
        return USERS.get(name)  # an unknown name returns None: no reply at all

    @action()
    async def names(self, websocket: WebSocket) -> list[str]:
        return sorted(USERS)


directory = Directory(channel="directory")


@app.websocket("/directory")
async def directory_endpoint(websocket: WebSocket) -> None:
    await directory.connect(websocket)
