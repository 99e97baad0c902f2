"""The proxy page: a gateway route to a service, and a proxy called from an endpoint of your own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from tests.apps.proxy_upstream import UpstreamProcess
from tests.docs.samples import load


@pytest.fixture
def service(tmp_path: Path) -> Iterator[UpstreamProcess]:
    """A real websocket service, in a process of its own, that describes each handshake and echoes frames."""
    server = UpstreamProcess(tmp_path / "service.log")
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.close()


def headers_of(hello: dict[str, Any]) -> dict[str, str]:
    """Return the service's request headers by lower-case name."""
    return {name.lower(): value for name, value in hello["headers"]}


def test_proxy_app_routes_chat_paths_to_the_service(service: UpstreamProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_SERVICE_URL", service.url)
    sample = load("proxy/app.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/chat/rooms/42?token=abc", subprotocols=["chat.v1"]) as websocket:
            hello = websocket.receive_json()
            assert hello["path"] == "/rooms/42?token=abc"
            assert hello["subprotocol"] == websocket.accepted_subprotocol == "chat.v1"
            websocket.send_text("hello")
            assert websocket.receive_text() == "hello"
            websocket.send_bytes(b"\x00\x01")
            assert websocket.receive_bytes() == b"\x00\x01"


def test_proxy_app_passes_path_delimiters_on_escaped_and_refuses_dot_segments(
    service: UpstreamProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_SERVICE_URL", service.url)
    sample = load("proxy/app.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/chat/rooms/lobby%3Fadmin=1?token=abc") as websocket:
            assert websocket.receive_json()["path"] == "/rooms/lobby%3Fadmin%3D1?token=abc"
        for climbing in ("/chat/rooms/..%2F..%2Fadmin", "/chat/%2E%2E/admin"):
            with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect(climbing):
                pass
            assert refused.value.status_code == 400


def test_proxy_own_endpoint_turns_away_clients_without_a_session_and_relays_the_others(
    service: UpstreamProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPPORT_SERVICE_URL", f"{service.url}/support")
    sample = load("proxy/own_endpoint.py")
    with TestClient(sample.app) as client:
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/support"):
            pass
        assert (refused.value.code, refused.value.reason) == (1008, "Sign in first.")
        headers = {"cookie": "session=s3cret", "authorization": "Bearer not-passed-on"}
        with client.websocket_connect("/support", headers=headers) as websocket:
            hello = websocket.receive_json()
            assert hello["path"] == "/support"
            forwarded = headers_of(hello)
            assert forwarded["cookie"] == "session=s3cret" and "authorization" not in forwarded
            assert forwarded["x-forwarded-host"] == "testserver"
            websocket.send_text("!close 4001 resolved")
            with pytest.raises(WebSocketDisconnect) as closed:
                websocket.receive_text()
            assert (closed.value.code, closed.value.reason) == (4001, "resolved")
    assert "closed /support 4001 resolved" in (Path(service.process.args[-1])).read_text()
