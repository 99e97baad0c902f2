import pytest
from main import app, room  # the module that defines your FastAPI app

from fastapi_channels.testing import ChannelCommunicator, ChannelListener, HandshakeRefused

pytestmark = pytest.mark.anyio  # anyio's pytest plugin comes with FastAPI; pytest-asyncio works too


async def test_say_reaches_everyone_in_the_room() -> None:
    async with ChannelCommunicator(app, "/room") as alice, ChannelCommunicator(app, "/room") as bob:
        await alice.send_action("say", text="hi")
        assert await alice.receive_json() == {"action": "say", "text": "hi"}
        assert await bob.receive_json() == {"action": "say", "text": "hi"}


async def test_whoami_answers_the_user_the_test_logs_in() -> None:
    async with ChannelCommunicator(app, "/room", user="alice") as alice:
        reply = await alice.request("whoami")
        assert reply == {"type": "response", "status": "ok", "action": "whoami", "request_id": 1, "data": "alice"}


async def test_anonymous_whoami_gets_an_error_frame_and_stays_connected() -> None:
    async with ChannelCommunicator(app, "/room") as anonymous:
        error = await anonymous.request("whoami")
        assert error["errors"] == "You do not have permission to perform this action."
        assert (error["code"], error["close"]) == (1008, False)
        await anonymous.assert_nothing()  # no close follows


async def test_third_message_within_a_minute_is_rate_limited() -> None:
    async with ChannelCommunicator(app, "/room") as client:
        for text in ("one", "two"):
            await client.send_action("say", text=text)
            assert (await client.receive_json())["text"] == text
        await client.send_action("say", text="three")
        error = await client.receive_json()
        assert (error["code"], error["close"]) == (1013, False)


async def test_quit_closes_the_socket_normally() -> None:
    async with ChannelCommunicator(app, "/room") as client:
        await client.send_action("quit")
        assert await client.receive_close() == (1000, "")


async def test_those_who_stay_hear_who_left() -> None:
    async with ChannelCommunicator(app, "/room") as alice:
        async with ChannelCommunicator(app, "/room"):
            pass  # leaving the block disconnects, and waits until the leave handlers have run
        assert await alice.receive_json() == {"action": "left"}


async def test_a_test_hears_the_room_without_a_socket() -> None:
    async with ChannelListener(app, room) as broadcasts, ChannelCommunicator(app, "/room") as alice:
        await alice.send_action("say", text="hi")
        await broadcasts.assert_broadcast({"action": "say", "text": "hi"})


async def test_a_page_of_another_site_is_refused() -> None:
    with pytest.raises(HandshakeRefused) as refused:
        async with ChannelCommunicator(app, "/room", headers={"origin": "https://evil.example"}):
            pass
    assert refused.value.code == 1008
