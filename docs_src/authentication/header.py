from fastapi import FastAPI, WebSocket
from starlette.authentication import SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware

from fastapi_channels import Channel, IsAuthenticated, action, add_channel
from fastapi_channels.auth import TokenAuthentication, from_header

API_KEYS = {"key-billing-3f9a": "billing-service"}  # stands in for your database of API keys


async def service_for_key(key: str) -> SimpleUser | None:
    name = API_KEYS.get(key)  # in a real app, an async query to your database
    return SimpleUser(name) if name is not None else None


app = FastAPI()
# Programs send "Authorization: Bearer key-billing-3f9a" with the handshake.
app.add_middleware(AuthenticationMiddleware, backend=TokenAuthentication(from_header(), user=service_for_key))
add_channel(app)


class Events(Channel):
    permission_classes = [IsAuthenticated]

    @action()
    async def whoami(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"user": websocket.user.display_name})


events = Events()


@app.websocket("/events")
async def events_endpoint(websocket: WebSocket) -> None:
    await events.connect(websocket)
