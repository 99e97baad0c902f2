from typing import Any

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action

app = FastAPI()
add_channel(app)


class ModeratedRoom(Channel):
    @action()
    async def report(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "report", "status": "received"})

    @action()
    async def rules(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "rules", "rules": ["Be kind."]})


class TeamRoom(ModeratedRoom):
    @action()
    async def standup(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"action": "standup", "text": data.get("text")})

    @action()  # overrides the inherited action: decorate the new method again
    async def rules(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_personal(websocket, {"action": "rules", "rules": ["Be kind.", "Stand up at 9."]})


team = TeamRoom(channel="team")
print(team.actions)  # ['report', 'standup', 'rules']


@app.websocket("/team")
async def team_endpoint(websocket: WebSocket) -> None:
    await team.connect(websocket)
