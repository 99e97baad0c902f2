from fastapi import Depends, FastAPI, WebSocket

from fastapi_channels import Channel, PermissionDenied, action, add_channel

app = FastAPI()
add_channel(app)

AUDIT: list[str] = []


def verify_key(websocket: WebSocket) -> None:
    if websocket.headers.get("x-api-key") != "secret":
        raise PermissionDenied(error_msg="A valid X-API-Key header is required.", close=False)


async def audit(action: str, request_id: int | str | None) -> None:
    AUDIT.append(f"{action} #{request_id}")


class Admin(Channel):
    dependencies = [Depends(audit)]  # before every action of this channel object

    @action()
    async def status(self) -> str:
        return "ok"

    @action(dependencies=[Depends(verify_key)])  # before this action only; what it returns is not used
    async def restart(self) -> str:
        return "restarting"


admin = Admin(channel="admin")
locked = Admin(channel="locked", dependencies=[Depends(audit), Depends(verify_key)])  # the keyword wins


@app.websocket("/admin")
async def admin_endpoint(websocket: WebSocket) -> None:
    await admin.connect(websocket)


@app.websocket("/locked")
async def locked_endpoint(websocket: WebSocket) -> None:
    await locked.connect(websocket)
