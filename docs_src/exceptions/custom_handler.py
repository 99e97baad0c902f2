import logging

from fastapi import FastAPI, WebSocket

from fastapi_channels import add_channel
from fastapi_channels.channels import Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import PermissionDenied
from fastapi_channels.handlers import websocket_exception_handler

logger = logging.getLogger("myapp")

app = FastAPI()
add_channel(app)


@app.exception_handler(PermissionDenied)  # the same registry as app.add_exception_handler(PermissionDenied, ...)
async def on_permission_denied(websocket: WebSocket, exc: PermissionDenied) -> None:
    logger.info("Denied %s on %s", exc.action, websocket.url.path)
    exc.extra["login_url"] = "/login"  # one more field in the error frame
    await websocket_exception_handler(websocket, exc)  # then the usual frame (and close, if exc.close)


class Vault(Channel):
    @action(permission=False)
    async def open(self, websocket: WebSocket) -> None:
        await self.broadcast_to_personal(websocket, "open")


vault = Vault(channel="vault")


@app.websocket("/vault")
async def vault_endpoint(websocket: WebSocket) -> None:
    await vault.connect(websocket)
