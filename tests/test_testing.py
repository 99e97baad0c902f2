"""``fastapi_channels.testing``: the in-process ``ChannelCommunicator`` and ``ChannelListener``, and the timed
reads and writes for Starlette's ``TestClient``."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.authentication import SimpleUser
from starlette.testclient import WebSocketTestSession

from fastapi_channels import add_channel
from fastapi_channels.api import send_to_user
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.config import STATE_KEY
from fastapi_channels.decorators import action
from fastapi_channels.history import Position
from fastapi_channels.outbox import SEND_KEY
from fastapi_channels.permission import IsAuthenticated
from fastapi_channels.testing import (
    ChannelCommunicator,
    ChannelListener,
    HandshakeRefused,
    receive,
    receive_close,
    receive_json,
    receive_text,
    send_action,
)
from tests.helpers import serve

# -- ChannelCommunicator ---------------------------------------------------------------------------------


class Chat(Channel):
    @action()
    async def say(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
        await self.broadcast_to_channel(channel, {"said": data["text"]})

    @action()
    async def echo(self, websocket: WebSocket, data: dict[str, Any]) -> Any:
        await self.broadcast_to_personal(websocket, {"note": "before the answer"})
        return data["value"]

    @action(permission=IsAuthenticated)
    async def whoami(self, websocket: WebSocket) -> str:
        return str(websocket.user.display_name)

    @action()
    async def quit(self, websocket: WebSocket) -> None:
        await self.close(websocket, 1000, "bye")


@pytest.fixture
def chat(backend: dict[str, Any]) -> FastAPI:
    """An app serving a ``Chat`` at /ws (and /ws/{name}), on each backend."""
    return serve(Chat(), **backend)


def lifespan_app(events: list[str]) -> FastAPI:
    """An app with channels whose own lifespan records its startup and shutdown, and hands a greeting on."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        events.append("startup")
        yield {"greeting": "hello from the lifespan"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    add_channel(app)
    room = Chat()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await room.connect(websocket)

    @app.websocket("/greeting")
    async def greeting(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.state.greeting)
        await websocket.close()

    return app


async def test_communicator_request_after_other_frames_returns_its_answer_and_keeps_the_rest_in_order(
    chat: FastAPI,
) -> None:
    async with ChannelCommunicator(chat, "/ws") as alice, ChannelCommunicator(chat, "/ws") as bob:
        await bob.send_action("say", text="from bob")
        assert await bob.receive_json() == {"said": "from bob"}  # delivered to alice in the same fan-out
        reply = await alice.request("echo", value={"n": 1})
        assert reply == {"type": "response", "status": "ok", "action": "echo", "request_id": 1, "data": {"n": 1}}
        assert await alice.receive_json() == {"said": "from bob"}
        assert await alice.receive_json() == {"note": "before the answer"}
        assert (await alice.request("echo", value="again"))["request_id"] == 2
        assert await alice.receive_json() == {"note": "before the answer"}
        await alice.assert_nothing()


async def test_communicator_request_refused_or_unknown_action_returns_its_error_frame(chat: FastAPI) -> None:
    async with ChannelCommunicator(chat, "/ws") as anonymous:
        denied = await anonymous.request("whoami")
        assert (denied["status"], denied["action"], denied["request_id"]) == ("bad", "whoami", 1)
        assert (denied["code"], denied["close"]) == (1008, False)
        unknown = await anonymous.request("dance", style="tango")
        assert (unknown["request_id"], unknown["errors"]) == (2, "The action 'dance' does not exist.")
        await anonymous.assert_nothing()  # the socket stays open: no close follows


async def test_communicator_request_with_own_request_id_raises_type_error_naming_send_action(chat: FastAPI) -> None:
    async with ChannelCommunicator(chat, "/ws") as client:
        with pytest.raises(TypeError, match=r"use send_action\(\)"):
            await client.request("echo", value=1, request_id=7)


async def test_communicator_request_action_without_answer_fails_saying_to_use_send_action(chat: FastAPI) -> None:
    async with ChannelCommunicator(chat, "/ws", timeout=0.2) as client:
        with pytest.raises(AssertionError) as failed:
            await client.request("say", text="nobody answers this")
        message = str(failed.value)
        assert message.startswith("Waited 0.2 s for the answer to 'say' (request_id 1)")
        assert "An action that returns None sends no answer: call it with send_action()" in message


async def test_communicator_request_closed_before_the_answer_fails_and_keeps_the_close(chat: FastAPI) -> None:
    async with ChannelCommunicator(chat, "/ws") as client:
        with pytest.raises(AssertionError, match=r"closed the connection \(close 1000 'bye'\) before answering 'quit'"):
            await client.request("quit")
        assert await client.receive_close() == (1000, "bye")


async def test_communicator_assert_nothing_passes_when_silent_and_fails_naming_what_arrived(chat: FastAPI) -> None:
    async with ChannelCommunicator(chat, "/ws") as client:
        await client.assert_nothing()
        await client.send_action("say", text="hi")
        # It fails as soon as the frame arrives, long before its window ends.
        with pytest.raises(AssertionError, match='Expected nothing from the app, but it sent:\n  {"said":"hi"}'):
            await client.assert_nothing(timeout=60)


async def test_communicator_foreign_origin_raises_handshake_refused_with_its_code_and_stops_the_app(
    chat: FastAPI,
) -> None:
    with pytest.raises(HandshakeRefused) as refused:
        async with ChannelCommunicator(chat, "/ws", headers={"origin": "https://evil.example"}):
            pass
    assert (refused.value.code, refused.value.reason) == (1008, "")
    assert "refused the connection to '/ws' with close code 1008" in str(refused.value)
    assert not getattr(chat.state, STATE_KEY).started  # the lifespan it started was shut down


async def test_communicator_path_without_route_raises_handshake_refused_asking_for_the_route(chat: FastAPI) -> None:
    with pytest.raises(HandshakeRefused, match=r"close code 1000 \(does a websocket route serve this path\?\)"):
        async with ChannelCommunicator(chat, "/nowhere"):
            pass


async def test_communicator_anonymous_in_authenticated_channel_reads_error_frame_then_close(
    backend: dict[str, Any],
) -> None:
    app = serve(Chat(permission_classes=IsAuthenticated), **backend)
    async with ChannelCommunicator(app, "/ws") as anonymous:
        error = await anonymous.receive_json()
        assert (error["status"], error["code"], error["close"]) == ("bad", 1008, True)
        code, _ = await anonymous.receive_close()
        assert code == 1008


@pytest.mark.parametrize("user", ["alice", SimpleUser("alice")], ids=["name", "base-user"])
async def test_communicator_user_is_the_logged_in_user_of_the_connection(
    backend: dict[str, Any], user: str | SimpleUser
) -> None:
    app = serve(Chat(permission_classes=IsAuthenticated), **backend)
    async with ChannelCommunicator(app, "/ws", user=user) as alice:
        assert (await alice.request("whoami"))["data"] == "alice"
        # The channel layer addresses the connection by that user too.
        await send_to_user("alice", {"for": "alice"}, app=app)
        assert await alice.receive_json() == {"for": "alice"}


async def test_communicator_user_with_authentication_middleware_fails_saying_what_to_pass_instead() -> None:
    app = serve(Chat(), authenticated=True)  # the x-user header names the user
    with pytest.raises(RuntimeError, match=r"AuthenticationMiddleware\) replaced user=: pass what it reads"):
        async with ChannelCommunicator(app, "/ws", user="alice"):
            pass
    async with ChannelCommunicator(app, "/ws", headers={"x-user": "carol"}) as carol:
        assert (await carol.request("whoami"))["data"] == "carol"


async def test_communicator_two_on_one_app_hear_each_other(chat: FastAPI) -> None:
    async with ChannelCommunicator(chat, "/ws/lobby") as alice, ChannelCommunicator(chat, "/ws/lobby") as bob:
        await alice.send_action("say", text="hi bob")
        assert await bob.receive_json() == {"said": "hi bob"}
        await bob.send_action("say", text="hi alice")
        assert await alice.receive_json() == {"said": "hi bob"}
        assert await alice.receive_json() == {"said": "hi alice"}


async def test_communicator_leave_handlers_have_run_when_the_block_or_disconnect_ends(
    backend: dict[str, Any],
) -> None:
    left: list[str] = []
    room = Chat()

    @room.on_event("leave")
    async def goodbye(websocket: WebSocket, channel: str) -> None:
        await room.broadcast_to_channel(channel, {"left": websocket.query_params["name"]})
        left.append(websocket.query_params["name"])

    app = serve(room, **backend)
    async with ChannelCommunicator(app, "/ws?name=alice") as alice:
        async with ChannelCommunicator(app, "/ws?name=bob"):
            pass
        assert left == ["bob"]
        assert await alice.receive_json() == {"left": "bob"}
        async with ChannelCommunicator(app, "/ws?name=carol") as carol:
            await carol.disconnect(4000)
            assert left == ["bob", "carol"]
            with pytest.raises(RuntimeError, match="has disconnected"):
                await carol.send_action("say", text="too late")
        assert await alice.receive_json() == {"left": "carol"}
    assert left == ["bob", "carol", "alice"]


def crashing_app() -> FastAPI:
    """An app whose /crash endpoint raises ZeroDivisionError with the first text it receives."""
    app = FastAPI()

    @app.websocket("/crash")
    async def crash(websocket: WebSocket) -> None:
        await websocket.accept()
        raise ZeroDivisionError(await websocket.receive_text())

    @app.websocket("/crash-at-once")
    async def crash_at_once(websocket: WebSocket) -> None:
        raise ZeroDivisionError("before accepting")

    return app


async def test_communicator_app_exception_is_raised_where_the_test_waits_and_only_once() -> None:
    async with ChannelCommunicator(crashing_app(), "/crash") as client:
        await client.send_text("boom")
        with pytest.raises(ZeroDivisionError, match="boom"):
            await client.receive_json()
        with pytest.raises(AssertionError, match=r"finished with the connection \(it raised an exception\)"):
            await client.receive_json()


async def test_communicator_app_exception_nobody_waited_for_is_raised_when_the_block_ends() -> None:
    with pytest.raises(ZeroDivisionError, match="boom"):
        async with ChannelCommunicator(crashing_app(), "/crash") as client:
            await client.send_text("boom")


async def test_communicator_app_exception_before_accepting_is_raised_on_entering() -> None:
    with pytest.raises(ZeroDivisionError, match="before accepting"):
        async with ChannelCommunicator(crashing_app(), "/crash-at-once"):
            pass


async def test_communicator_waits_fail_naming_what_they_waited_for_and_what_is_queued(chat: FastAPI) -> None:
    async with ChannelCommunicator(chat, "/ws", timeout=0.1) as client:
        with pytest.raises(AssertionError, match=r"^Waited 0\.1 s for a text frame; the app sent: nothing$"):
            await client.receive_json()
        assert (await client.request("echo", value=1))["data"] == 1
        with pytest.raises(AssertionError, match='Expected the app to close the connection, got {"note":"before'):
            await client.receive_close()
        assert await client.receive_json() == {"note": "before the answer"}  # the frame stayed queued
        await client.send_action("quit")
        with pytest.raises(AssertionError, match="Expected a text frame from the app, got close 1000 'bye'"):
            await client.receive_text()
        assert await client.receive_close() == (1000, "bye")  # the close stayed queued
        with pytest.raises(AssertionError, match="Expected a text frame, but the app has finished with the connection"):
            await client.receive_text(timeout=60)  # nothing more can come: it fails at once


async def test_communicator_app_that_never_answers_fails_entering_and_leaving_after_the_timeout() -> None:
    app = FastAPI()

    @app.websocket("/silent")
    async def silent(websocket: WebSocket) -> None:
        await asyncio.Event().wait()

    @app.websocket("/stuck")
    async def stuck(websocket: WebSocket) -> None:
        await websocket.accept()
        await asyncio.Event().wait()  # never reads the disconnect

    with pytest.raises(AssertionError, match=r"^Waited 0\.1 s for the app to accept the connection"):
        async with ChannelCommunicator(app, "/silent", timeout=0.1):
            pass
    with pytest.raises(AssertionError, match=r"did not finish with the connection to '/stuck' within 0\.1 s"):
        async with ChannelCommunicator(app, "/stuck", timeout=0.1):
            pass


async def test_communicator_app_that_holds_on_after_cancellation_fails_leaving_instead_of_hanging() -> None:
    app = FastAPI()
    release, finished = asyncio.Event(), asyncio.Event()

    @app.websocket("/stubborn")
    async def stubborn(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await asyncio.Event().wait()  # never reads the disconnect
        except asyncio.CancelledError:
            await release.wait()  # and holds on after its cancellation, until the test lets it go
            raise
        finally:
            finished.set()

    client = ChannelCommunicator(app, "/stubborn", timeout=0.1)
    await client.connect()
    with pytest.raises(AssertionError, match=r"did not finish with the connection to '/stubborn' within 0\.1 s"):
        await asyncio.wait_for(client.disconnect(), 10)
    assert not finished.is_set()
    release.set()
    await asyncio.wait_for(finished.wait(), 10)


async def test_communicator_app_returning_without_closing_fails_the_next_wait_saying_so() -> None:
    app = FastAPI()

    @app.websocket("/gone")
    async def gone(websocket: WebSocket) -> None:
        await websocket.accept()

    async with ChannelCommunicator(app, "/gone") as client:
        with pytest.raises(AssertionError, match=r"finished with the connection \(it returned without closing it\)"):
            await client.receive_close()


async def test_communicator_starts_the_lifespan_once_for_all_and_shuts_it_down_after_the_last() -> None:
    events: list[str] = []
    app = lifespan_app(events)
    config = getattr(app.state, STATE_KEY)
    async with ChannelCommunicator(app, "/ws") as first:
        assert config.started and events == ["startup"]
        async with ChannelCommunicator(app, "/greeting") as second:
            assert await second.receive_text() == "hello from the lifespan"  # the lifespan state reaches the scope
        assert config.started and events == ["startup"]
        assert (await first.request("echo", value=1))["data"] == 1
    assert not config.started and events == ["startup", "shutdown"]
    async with ChannelCommunicator(app, "/ws"):
        assert events == ["startup", "shutdown", "startup"]  # a later test starts it afresh
    assert events == ["startup", "shutdown", "startup", "shutdown"]


async def test_communicators_connecting_at_once_share_one_start_of_the_lifespan() -> None:
    events: list[str] = []
    app = lifespan_app(events)
    clients = [ChannelCommunicator(app, "/ws") for _ in range(3)]
    await asyncio.gather(*(client.connect() for client in clients))
    assert events == ["startup"]
    await clients[0].send_action("say", text="all here")
    for client in clients:
        assert await client.receive_json() == {"said": "all here"}
    await asyncio.gather(*(client.disconnect() for client in clients))
    assert events == ["startup", "shutdown"]


async def test_communicator_app_already_running_is_used_and_left_running() -> None:
    events: list[str] = []
    app = lifespan_app(events)
    async with app.router.lifespan_context(app):
        async with ChannelCommunicator(app, "/ws") as client:
            assert (await client.request("echo", value=1))["data"] == 1
        assert events == ["startup"] and getattr(app.state, STATE_KEY).started
    assert events == ["startup", "shutdown"]


def test_communicator_left_connected_by_a_finished_event_loop_does_not_stop_a_later_test() -> None:
    events: list[str] = []
    app = lifespan_app(events)

    async def connect_and_never_leave() -> None:
        await ChannelCommunicator(app, "/ws").connect()

    async def talk() -> Any:
        async with ChannelCommunicator(app, "/ws") as client:
            return (await client.request("echo", value="later"))["data"]

    asyncio.run(connect_and_never_leave())
    assert asyncio.run(talk()) == "later"


async def test_communicator_app_failing_to_start_raises_its_exception() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise LookupError("no database")
        yield

    app = FastAPI(lifespan=lifespan)
    with pytest.raises(LookupError, match="no database"):
        async with ChannelCommunicator(app, "/ws"):
            pass


async def test_communicator_asgi_app_without_lifespan_support_is_served_as_it_is() -> None:
    async def app(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        assert scope["type"] == "websocket", "this app speaks no lifespan"
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": scope["path"]})
        await send({"type": "websocket.close", "code": 4000, "reason": "done"})

    async with ChannelCommunicator(app, "/raw") as client:
        assert await client.receive_text() == "/raw"
        assert await client.receive_close() == (4000, "done")


async def test_communicator_scope_carries_path_query_headers_subprotocols_and_client() -> None:
    app = FastAPI()

    @app.websocket("/echo/{name}")
    async def echo(websocket: WebSocket, name: str) -> None:
        await websocket.accept(subprotocol="chat.v2")
        await websocket.send_json(
            {
                "name": name,
                "query": dict(websocket.query_params),
                "headers": {key: websocket.headers.get(key) for key in ("host", "x-test", "origin")},
                "client": [websocket.client.host, websocket.client.port] if websocket.client else None,
                "subprotocols": websocket.scope["subprotocols"],
            }
        )

    communicator = ChannelCommunicator(
        app,
        "/echo/caf%C3%A9?q=1&r=two",
        headers=[("X-Test", "yes")],
        subprotocols=["chat.v1", "chat.v2"],
        client=("10.0.0.7", 4321),
    )
    async with communicator as client:
        assert await client.receive_json() == {
            "name": "café",
            "query": {"q": "1", "r": "two"},
            "headers": {"host": "testserver", "x-test": "yes", "origin": None},
            "client": ["10.0.0.7", 4321],
            "subprotocols": ["chat.v1", "chat.v2"],
        }
        assert client.subprotocol == "chat.v2"


async def test_communicator_send_is_a_coroutine_function_so_the_outbox_writes_through_it(chat: FastAPI) -> None:
    async with ChannelCommunicator(chat, "/ws") as client:
        assert inspect.iscoroutinefunction(client.scope[SEND_KEY])
        assert (await client.request("echo", value="through"))["data"] == "through"


async def test_communicator_misuse_raises_errors_saying_what_to_do(chat: FastAPI) -> None:
    with pytest.raises(ValueError, match=r"Pass the path to connect to, such as '/room\?token=abc'"):
        ChannelCommunicator(chat, "ws://testserver/ws")
    client = ChannelCommunicator(chat, "/ws")
    with pytest.raises(RuntimeError, match=r"use `async with ChannelCommunicator\(...\)`"):
        await client.send_action("say", text="not connected yet")
    async with client:
        with pytest.raises(RuntimeError, match="make a new one"):
            await client.connect()


# -- ChannelListener -------------------------------------------------------------------------------------


async def test_listener_assert_broadcast_takes_the_matching_one_and_keeps_the_others(backend: dict[str, Any]) -> None:
    room = Chat()
    app = serve(room, **backend)
    async with (
        ChannelListener(app, room, "lobby") as lobby,
        ChannelListener(app, room, "elsewhere") as elsewhere,
        ChannelCommunicator(app, "/ws/lobby") as client,
    ):
        await client.send_action("say", text="one")
        await client.send_action("say", text="two")
        assert await lobby.assert_broadcast({"said": "two"}) == {"said": "two"}
        assert await lobby.receive_json() == {"said": "one"}
        await elsewhere.assert_nothing()
        with pytest.raises(AssertionError, match=r"^Waited 0\.1 s for the broadcast {'said': 'three'} on 'lobby'"):
            await lobby.assert_broadcast({"said": "three"}, timeout=0.1)


async def test_listener_of_a_communicator_hears_raw_text_relayed_by_a_base_channel(backend: dict[str, Any]) -> None:
    relay = BaseChannel(channel="relay")
    app = serve(relay, **backend)
    async with ChannelCommunicator(app, "/ws") as client, client.listen(relay) as heard:
        await client.send_text("not JSON at all")
        assert await heard.assert_broadcast("not JSON at all") == "not JSON at all"
        await client.send_text("[1, 2]")
        assert await heard.receive_json() == [1, 2]
        await client.send_text("again not JSON")
        with pytest.raises(AssertionError, match="Expected a JSON broadcast on 'relay', heard 'again not JSON'"):
            await heard.receive_json()
        await heard.assert_nothing()


class Journal(Chat):
    history_size = 10


async def test_listener_of_a_channel_with_history_hears_the_messages_and_keeps_their_positions(
    backend: dict[str, Any],
) -> None:
    room = Journal()
    app = serve(room, **backend)
    async with ChannelListener(app, room, "lobby") as lobby, ChannelCommunicator(app, "/ws/lobby") as client:
        assert lobby.position is None
        await client.send_action("say", text="one")
        assert await lobby.assert_broadcast({"said": "one"}) == {"said": "one"}
        first = lobby.position
        assert first is not None and first.offset >= 1
        await room.broadcast_to_channel("lobby", "plain text")
        assert await lobby.assert_broadcast("plain text") == "plain text"
        assert lobby.position == Position(first.offset + 1, first.epoch)
        await room.broadcast_to_channel("lobby", [1, 2])
        assert await lobby.receive_json() == [1, 2]
        assert lobby.position == Position(first.offset + 2, first.epoch)
        await lobby.assert_nothing()


async def test_listener_app_without_channels_fails_saying_to_call_add_channel() -> None:
    with pytest.raises(RuntimeError, match=r"call add_channel\(app\)"):
        async with ChannelListener(FastAPI(), Chat()):
            pass


# -- the TestClient helpers --------------------------------------------------------------------------------


SHORT = 0.1


def scripted_app() -> FastAPI:
    """An app whose socket at /ws obeys ``say <text>``, ``bytes <text>`` and ``close <code> <reason>``.

    Any other text is sent back unchanged.
    """
    app = FastAPI()

    @app.websocket("/ws")
    async def script(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            command, _, rest = text.partition(" ")
            if command == "say":
                await websocket.send_text(rest)
            elif command == "bytes":
                await websocket.send_bytes(rest.encode())
            elif command == "close":
                code, _, reason = rest.partition(" ")
                await websocket.close(int(code), reason)
                return
            else:
                await websocket.send_text(text)

    return app


@pytest.fixture
def ws() -> Iterator[WebSocketTestSession]:
    with TestClient(scripted_app()) as client, client.websocket_connect("/ws") as session:
        yield session


def test_receive_frame_sent_returns_its_message(ws: WebSocketTestSession) -> None:
    ws.send_text("say hello")
    assert receive(ws) == {"type": "websocket.send", "text": "hello"}


def test_receive_text_and_json_frame_sent_return_text_and_decoded_value(ws: WebSocketTestSession) -> None:
    ws.send_text("say plain words")
    assert receive_text(ws) == "plain words"
    ws.send_text('say {"n": [1, 2], "ok": true}')
    assert receive_json(ws) == {"n": [1, 2], "ok": True}


def test_receive_nothing_sent_raises_assertion_error_after_timeout(ws: WebSocketTestSession) -> None:
    with pytest.raises(AssertionError, match=r"The server sent nothing within 0\.1 s\."):
        receive(ws, SHORT)
    # The wait that timed out is taken over, not lost: the frame sent later still arrives.
    ws.send_text("say late")
    assert receive_text(ws) == "late"


def test_receive_several_timeouts_then_frames_none_lost_and_in_order(ws: WebSocketTestSession) -> None:
    with pytest.raises(AssertionError):
        receive_text(ws, SHORT)
    with pytest.raises(AssertionError):
        receive_json(ws, SHORT)
    ws.send_text("say first")
    ws.send_text("say second")
    ws.send_text("say third")
    assert receive_text(ws) == "first"
    assert receive_text(ws) == "second"
    assert receive(ws) == {"type": "websocket.send", "text": "third"}


def test_receive_close_server_closes_returns_code_and_reason(ws: WebSocketTestSession) -> None:
    ws.send_text("close 4001 come back later")
    assert receive_close(ws) == (4001, "come back later")


def test_receive_close_without_reason_returns_empty_reason(ws: WebSocketTestSession) -> None:
    ws.send_text("close 1000")
    assert receive_close(ws) == (1000, "")


@pytest.mark.parametrize(
    ("command", "read", "expected", "named"),
    [
        ("say not a close", receive_close, "Expected the server to close the socket", ["not a close"]),
        ("close 1008 go away", receive_text, "Expected a text frame", ["websocket.close", "1008"]),
        ("bytes raw", receive_text, "Expected a text frame", ["bytes"]),
    ],
    ids=["close-got-text", "text-got-close", "text-got-bytes"],
)
def test_receive_other_kind_of_message_fails_naming_what_arrived(
    ws: WebSocketTestSession,
    command: str,
    read: Callable[[WebSocketTestSession], object],
    expected: str,
    named: list[str],
) -> None:
    ws.send_text(command)
    with pytest.raises(AssertionError, match=expected) as caught:
        read(ws)
    for part in named:
        assert part in str(caught.value)


def test_send_action_sends_one_json_object_with_action_and_fields(ws: WebSocketTestSession) -> None:
    send_action(ws, "chat", request_id=7, message="café", tags=["a", "b"], extra=None)
    assert json.loads(receive_text(ws)) == {
        "action": "chat",
        "request_id": 7,
        "message": "café",
        "tags": ["a", "b"],
        "extra": None,
    }


def test_send_action_without_fields_sends_only_the_action(ws: WebSocketTestSession) -> None:
    send_action(ws, "ping")
    assert receive_json(ws) == {"action": "ping"}
