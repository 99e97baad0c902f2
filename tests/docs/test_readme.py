"""The README: its chat example is the docs_src file, and it broadcasts, counts and limits as it says."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.docs.samples import README, SRC, error_frame, load


def test_readme_example_is_the_docs_src_file() -> None:
    sample = (SRC / "readme/chat.py").read_text()
    assert f"<!-- docs_src/readme/chat.py -->\n```python\n{sample}```\n" in README.read_text()


def test_readme_chat_broadcasts_to_the_room_and_counts_its_connections() -> None:
    sample = load("readme/chat.py")
    with TestClient(sample.app) as client:
        with client.websocket_connect("/chat/lobby") as ann, client.websocket_connect("/chat/lobby") as bob:
            with client.websocket_connect("/chat/kitchen") as cook:
                ann.send_json({"action": "message", "user": "ann", "text": "hi"})
                assert ann.receive_json() == {"user": "ann", "text": "hi"}
                assert bob.receive_json() == {"user": "ann", "text": "hi"}
                cook.send_json({"action": "count"})
                assert cook.receive_json() == {"online": 1}  # the kitchen never heard the lobby
            bob.send_json({"action": "count"})
            assert bob.receive_json() == {"online": 2}


def test_readme_chat_limits_messages_per_client() -> None:
    sample = load("readme/chat.py")
    with TestClient(sample.app) as client, client.websocket_connect("/chat/lobby") as websocket:
        for number in range(5):
            websocket.send_json({"action": "message", "user": "ann", "text": str(number)})
            assert websocket.receive_json()["text"] == str(number)
        websocket.send_json({"action": "message", "user": "ann", "text": "one too many"})
        error = error_frame(websocket)
        assert (error["code"], error["close"]) == (1013, False)
        assert 1 < error["retry_after"] <= 2  # refilled at 5 per 10 seconds: one every 2 seconds
