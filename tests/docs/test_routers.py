"""The routers page: actions declared in several modules and included into a channel, per object, nested, clashes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fastapi_channels.testing import receive_json
from fastapi_channels.throttling import get_limits
from tests.docs.samples import error_frame, load


def reply(action: str, request_id: Any, data: Any) -> dict[str, Any]:
    return {"type": "response", "status": "ok", "action": action, "request_id": request_id, "data": data}


@pytest.fixture
def package_modules() -> Iterator[None]:
    """Forget the sample package's modules afterwards, so that each test runs them afresh."""
    yield
    for name in [name for name in sys.modules if name.startswith("docs_src.routers")]:
        del sys.modules[name]


def test_routers_from_two_modules_included_into_one_channel(package_modules: None, capsys: Any) -> None:
    chat = load("routers/chat.py", module_name="docs_src.routers.chat")
    admin = load("routers/admin.py", module_name="docs_src.routers.admin")
    main = load("routers/main.py", module_name="docs_src.routers.main")
    assert capsys.readouterr().out == "['ping', 'chat.send', 'chat.count', 'admin.announce', 'admin.mute']\n"
    assert main.chat is chat and main.admin is admin  # the main module's relative imports found these modules
    assert main.lobby.get_action("admin.mute").spec.tags == ("admin", "users")
    with TestClient(main.app) as client:
        with client.websocket_connect("/lobby") as guest, client.websocket_connect("/lobby?role=moderator") as mod:
            guest.send_json({"action": "ping", "request_id": 1})
            assert receive_json(guest) == reply("ping", 1, "pong")
            guest.send_json({"action": "chat.send", "text": "hi"})
            assert receive_json(guest) == receive_json(mod) == {"action": "chat.message", "text": "hi"}
            guest.send_json({"action": "chat.count", "request_id": 2})
            assert receive_json(guest) == reply("chat.count", 2, 2)
            guest.send_json({"action": "chat.send", "request_id": 3, "text": ""})
            assert error_frame(guest)["detail"][0]["loc"] == ["payload", "text"]
            # The router's permission: only moderators run the admin actions; the socket stays open.
            guest.send_json({"action": "admin.announce", "request_id": 4, "text": "closing soon"})
            denied = error_frame(guest)
            assert (denied["request_id"], denied["code"], denied["close"]) == (4, 1008, False)
            mod.send_json({"action": "admin.announce", "text": "closing soon"})
            expected = {"action": "admin.announcement", "text": "closing soon"}
            assert receive_json(guest) == receive_json(mod) == expected
            mod.send_json({"action": "admin.mute", "request_id": 5, "user": "eve"})
            assert receive_json(mod) == reply("admin.mute", 5, {"muted": "eve"})
            # The router's limit: 10 calls a minute for each admin action (one announce and one mute so far).
            for request_id in range(6, 15):
                mod.send_json({"action": "admin.mute", "request_id": request_id, "user": "eve"})
                assert receive_json(mod) == reply("admin.mute", request_id, {"muted": "eve"})
            mod.send_json({"action": "admin.mute", "request_id": "over", "user": "eve"})
            over = error_frame(mod)
            assert (over["request_id"], over["code"], over["close"]) == ("over", 1013, False)
    # chat.send keeps its own @limiter, and the router adds none: only its 5 a second.
    send = main.lobby.get_action("chat.send")
    assert [str(limit) for limit in get_limits(send.function(main.lobby))] == ["5/1000ms"]
    assert [str(limit) for limit in get_limits(main.lobby.get_action("admin.mute").function(main.lobby))] == [
        "10/60000ms"
    ]


def test_routers_included_per_object_and_nested(capsys: Any) -> None:
    sample = load("routers/per_object.py")
    assert capsys.readouterr().out == "['poll.vote'] ['v1.poll.vote']\n"
    with TestClient(sample.app) as client:
        with client.websocket_connect("/meeting") as meeting, client.websocket_connect("/lecture") as lecture:
            meeting.send_json({"action": "poll.vote", "option": "tea"})
            assert receive_json(meeting) == {"action": "poll.tally", "tally": {"tea": 1}}
            lecture.send_json({"action": "poll.vote", "request_id": 1, "option": "tea"})
            assert error_frame(lecture)["errors"] == "The action 'poll.vote' does not exist."
            lecture.send_json({"action": "v1.poll.vote", "option": "coffee"})
            assert receive_json(lecture) == {"action": "poll.tally", "tally": {"coffee": 1}}


def test_routers_clash_raises_at_include_and_a_prefix_resolves_it(capsys: Any) -> None:
    load("routers/clash.py", module_name="clash")
    assert capsys.readouterr().out.splitlines() == [
        "The action 'ping' of clash.ping cannot be included into Room, which already has an action of that name "
        '(Room.ping): rename one of them or include the router with a prefix, as include_router(router, prefix="...").',
        "['ping', 'router.ping']",
    ]
