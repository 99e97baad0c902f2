import os

from fastapi import FastAPI, WebSocket

from fastapi_channels.proxy import WebSocketProxy, quote_path

# The service behind the gateway, e.g. "ws://chat-service:9000". Clients never see this address.
CHAT_SERVICE = os.environ.get("CHAT_SERVICE_URL", "ws://127.0.0.1:9000")


def chat_service_url(websocket: WebSocket) -> str:
    """/chat/rooms/42 goes to the chat service's /rooms/42 (the client's query string follows by itself)."""
    # The path parameter arrives decoded: quote_path escapes it again, so it stays a path under the service's.
    return f"{CHAT_SERVICE}/{quote_path(websocket.path_params['path'])}"


app = FastAPI()
app.add_api_websocket_route("/chat/{path:path}", WebSocketProxy(chat_service_url))
