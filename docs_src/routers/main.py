from fastapi import FastAPI, WebSocket

from fastapi_channels import Channel, action, add_channel

from . import admin, chat

app = FastAPI()
add_channel(app)


class Lobby(Channel):
    @action()
    async def ping(self) -> str:
        return "pong"


Lobby.include_router(chat.router)  # every Lobby object gets the router's actions
Lobby.include_router(admin.router)

lobby = Lobby(channel="lobby")
print(lobby.actions)  # ['ping', 'chat.send', 'chat.count', 'admin.announce', 'admin.mute']


@app.websocket("/lobby")
async def lobby_endpoint(websocket: WebSocket) -> None:
    await lobby.connect(websocket)
