from fastapi import FastAPI, WebSocket

from fastapi_channels import Channel, action, add_channel

app = FastAPI(title="Alerts", version="2.0.0")
add_channel(app, asyncapi_url="/docs/asyncapi.json", asyncapi_docs_url=None)  # the JSON only, elsewhere


class Alerts(Channel):
    @action()
    async def ack(self, websocket: WebSocket, alert_id: int) -> dict[str, int]:
        """Mark the alert as seen."""
        return {"acknowledged": alert_id}


alerts = Alerts(channel="alerts")
# room.connect is itself the endpoint: the route and the channel object are linked with nothing more.
app.add_api_websocket_route("/alerts", alerts.connect)
