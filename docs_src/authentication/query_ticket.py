import secrets
import time

from fastapi import FastAPI, WebSocket
from starlette.middleware.authentication import AuthenticationMiddleware

from fastapi_channels import Channel, IsAuthenticated, action, add_channel
from fastapi_channels.auth import TokenAuthentication, from_query

TICKET_TTL = 30.0  # seconds
TICKETS: dict[str, tuple[str, float]] = {}  # ticket -> (user, expiry); Redis with a TTL for several processes


def redeem(ticket: str) -> str | None:
    """Return the ticket's user and spend the ticket: a copy of the URL in a log is worth nothing."""
    user, expires = TICKETS.pop(ticket, ("", 0.0))
    return user if time.monotonic() < expires else None


app = FastAPI()
app.add_middleware(AuthenticationMiddleware, backend=TokenAuthentication(from_query("ticket"), user=redeem))
add_channel(app)


@app.post("/ticket")
async def ticket(name: str) -> dict[str, str]:
    # Stands in for an endpoint only logged-in users reach (your cookie session or your API's login).
    issued = secrets.token_urlsafe(32)
    TICKETS[issued] = (name, time.monotonic() + TICKET_TTL)
    return {"ticket": issued}


class Inbox(Channel):
    permission_classes = [IsAuthenticated]

    @action()
    async def whoami(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"user": websocket.user.display_name})


inbox = Inbox()


@app.websocket("/inbox")
async def inbox_endpoint(websocket: WebSocket) -> None:
    await inbox.connect(websocket)
