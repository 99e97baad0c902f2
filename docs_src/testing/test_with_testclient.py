from fastapi.testclient import TestClient
from main import app

from fastapi_channels.testing import receive_close, receive_json, send_action


def test_say_reaches_everyone_in_the_room() -> None:
    with TestClient(app) as client:  # `with` runs the app lifespan, which starts the channel layer
        with client.websocket_connect("/room") as alice, client.websocket_connect("/room") as bob:
            send_action(alice, "say", text="hi")
            assert receive_json(alice) == {"action": "say", "text": "hi"}  # fails after 5 s instead of hanging
            assert receive_json(bob) == {"action": "say", "text": "hi"}


def test_quit_closes_the_socket_normally() -> None:
    with TestClient(app) as client, client.websocket_connect("/room") as websocket:
        send_action(websocket, "quit")
        assert receive_close(websocket) == (1000, "")
