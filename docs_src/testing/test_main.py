from fastapi.testclient import TestClient
from main import app  # the module that defines your FastAPI app

from fastapi_channels.testing import receive_close, receive_json, receive_text, send_action


def test_say_reaches_everyone_in_the_room() -> None:
    with TestClient(app) as client:  # `with` runs the app lifespan, which starts the channel layer
        with client.websocket_connect("/room") as alice, client.websocket_connect("/room") as bob:
            alice.send_json({"action": "say", "text": "hi"})
            assert alice.receive_json() == {"action": "say", "text": "hi"}
            assert bob.receive_json() == {"action": "say", "text": "hi"}


def test_denied_action_answers_an_error_frame_and_stays_open() -> None:
    with TestClient(app) as client, client.websocket_connect("/room") as websocket:
        send_action(websocket, "admin", request_id=1)
        error = receive_json(websocket)  # like websocket.receive_json(), but fails after 5 s instead of hanging
        assert error["errors"] == "You do not have permission to perform this action."
        assert (error["request_id"], error["code"], error["close"]) == (1, 1008, False)
        send_action(websocket, "say", text="still here")
        assert receive_json(websocket)["text"] == "still here"


def test_second_message_within_a_minute_is_rate_limited() -> None:
    with TestClient(app) as client, client.websocket_connect("/room") as websocket:
        send_action(websocket, "say", text="one")
        receive_json(websocket)
        send_action(websocket, "say", text="two")
        error = receive_json(websocket)
        assert error["code"] == 1013 and error["close"] is False
        assert 0 < error["retry_after"] <= 60


def test_bad_frames_answer_error_frames_and_keep_the_socket_open() -> None:
    with TestClient(app) as client, client.websocket_connect("/room") as websocket:
        websocket.send_text("not json")
        assert receive_json(websocket)["code"] == 1007
        websocket.send_bytes(b"\x00")
        assert receive_json(websocket)["code"] == 1003
        send_action(websocket, "dance")
        assert receive_json(websocket)["errors"] == "The action 'dance' does not exist."


def test_quit_closes_the_socket_normally() -> None:
    with TestClient(app) as client, client.websocket_connect("/room") as websocket:
        send_action(websocket, "quit")
        assert receive_close(websocket) == (1000, "")


def test_plain_text_replies_are_read_as_text() -> None:
    with TestClient(app) as client, client.websocket_connect("/room") as websocket:
        send_action(websocket, "motd")
        assert receive_text(websocket) == "Be nice."
