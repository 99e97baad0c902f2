import pytest
from fastapi import FastAPI
from main import create_app

from fastapi_channels.testing import ChannelCommunicator

pytestmark = pytest.mark.anyio

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory://", REDIS])
def app(request: pytest.FixtureRequest) -> FastAPI:
    server: FastAPI = create_app(url=request.param)  # the one argument that changes
    return server


async def test_say_reaches_everyone_in_the_room(app: FastAPI) -> None:
    async with ChannelCommunicator(app, "/room") as alice, ChannelCommunicator(app, "/room") as bob:
        await alice.send_action("say", text="hi")
        assert await bob.receive_json() == {"action": "say", "text": "hi"}


async def test_two_servers_sharing_redis_share_the_room() -> None:
    server_1, server_2 = create_app(url=REDIS), create_app(url=REDIS)
    async with ChannelCommunicator(server_1, "/room") as alice, ChannelCommunicator(server_2, "/room") as bob:
        await alice.send_action("say", text="hi from server 1")
        assert await bob.receive_json() == {"action": "say", "text": "hi from server 1"}
