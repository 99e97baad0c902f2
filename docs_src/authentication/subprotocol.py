import secrets
import time

from fastapi import FastAPI, WebSocket
from starlette.middleware.authentication import AuthenticationMiddleware

from fastapi_channels import Channel, IsAuthenticated, action, add_channel
from fastapi_channels.auth import TokenAuthentication, from_subprotocol

TOKEN_TTL = 60.0  # seconds: long enough to connect, too short for a leaked token to be worth much
TOKENS: dict[str, tuple[str, float]] = {}  # token -> (user, expiry); Redis with a TTL for several processes


def user_for_token(token: str) -> str | None:
    """Return the user a token was issued to, or None when it is unknown or expired."""
    user, expires = TOKENS.get(token, ("", 0.0))
    return user if time.monotonic() < expires else None


app = FastAPI()
# A client offers ["chat.v1", "access_token.<token>"]; the connection is accepted with "chat.v1".
auth = TokenAuthentication(from_subprotocol("access_token.", protocols={"chat.v1"}), user=user_for_token)
app.add_middleware(AuthenticationMiddleware, backend=auth)
add_channel(app)


@app.post("/token")
async def token(name: str) -> dict[str, str]:
    # Stands in for an endpoint only logged-in users reach (your cookie session or your API's login).
    issued = secrets.token_urlsafe(32)  # letters, digits, "-" and "_": all allowed in a subprotocol
    TOKENS[issued] = (name, time.monotonic() + TOKEN_TTL)
    return {"token": issued}


class Chat(Channel):
    permission_classes = [IsAuthenticated]

    @action()
    async def whoami(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"user": websocket.user.display_name})


chat = Chat()


@app.websocket("/chat/{room}")
async def chat_endpoint(websocket: WebSocket, room: str) -> None:
    await chat.connect(websocket, channel=room)
