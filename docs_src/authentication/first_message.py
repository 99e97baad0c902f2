from fastapi import FastAPI, WebSocket

from fastapi_channels import Channel, IsAuthenticated, action, add_channel
from fastapi_channels.auth import authenticate_first_message

TOKENS = {"token-alice": "alice"}  # stands in for your real token check
LOGIN_TIMEOUT = 10.0  # seconds a new connection has to send its token

app = FastAPI()
add_channel(app)


class Inbox(Channel):
    permission_classes = [IsAuthenticated]  # in case an endpoint forgets to authenticate

    @action()
    async def whoami(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, {"user": websocket.user.display_name})


inbox = Inbox()


@app.websocket("/inbox")
async def inbox_endpoint(websocket: WebSocket) -> None:
    # The first frame must be {"token": "..."}; a wrong token, or none in time, closes the socket with 1008.
    user = await authenticate_first_message(websocket, user=TOKENS.get, timeout=LOGIN_TIMEOUT)
    if user is not None:
        await inbox.connect(websocket)  # only now does the client join, and only now can it hear anything
