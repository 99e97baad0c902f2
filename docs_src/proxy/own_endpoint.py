import os

from fastapi import FastAPI, WebSocket, status

from fastapi_channels.proxy import WebSocketProxy

SUPPORT_SERVICE = os.environ.get("SUPPORT_SERVICE_URL", "ws://127.0.0.1:9001/support")

app = FastAPI()
# Made once, used by every connection. Only the session cookie goes on to the service behind.
support = WebSocketProxy(SUPPORT_SERVICE, forward_headers=["cookie"], write_timeout=30)


@app.websocket("/support")
async def support_endpoint(websocket: WebSocket) -> None:
    # Anything an endpoint does before the relay starts: here, turn away clients without a session.
    if "session" not in websocket.cookies:
        await websocket.close(status.WS_1008_POLICY_VIOLATION, "Sign in first.")
        return
    await support(websocket)  # returns once both sides are closed
