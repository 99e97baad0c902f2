"""The proxy under test, served by uvicorn in front of tests/apps/proxy_upstream.py.

Environment: PROXY_UPSTREAM (the upstream's ws:// base URL), PROXY_DEAD (a URL nobody listens on), PROXY_SILENT
(a URL whose server takes the TCP connection and never answers). ``/proxy/PATH``, ``/patient/PATH`` and
``/impatient/PATH`` forward to the upstream's ``/PATH`` with the default write timeout, none, and one second
(and 30 s for the closing handshake).
"""

from __future__ import annotations

import os

from fastapi import FastAPI, WebSocket

from fastapi_channels.proxy import WebSocketProxy, quote_path

UPSTREAM = os.environ.get("PROXY_UPSTREAM", "ws://127.0.0.1:9")


def upstream_path(websocket: WebSocket) -> str:
    """Route ``/<prefix>/PATH`` to the upstream's ``/PATH``."""
    return f"{UPSTREAM}/{quote_path(websocket.path_params['path'])}"


app = FastAPI()
app.add_api_websocket_route("/proxy/{path:path}", WebSocketProxy(upstream_path))
app.add_api_websocket_route("/patient/{path:path}", WebSocketProxy(upstream_path, write_timeout=None))
app.add_api_websocket_route("/impatient/{path:path}", WebSocketProxy(upstream_path, write_timeout=1, close_timeout=30))
app.add_api_websocket_route("/dead", WebSocketProxy(os.environ.get("PROXY_DEAD", "ws://127.0.0.1:9")))
app.add_api_websocket_route(
    "/silent", WebSocketProxy(os.environ.get("PROXY_SILENT", "ws://127.0.0.1:9"), open_timeout=0.5)
)
app.add_api_websocket_route("/misrouted", WebSocketProxy(lambda websocket: "http://not-a-websocket-url"))
