"""add_channel: defaults, the app lifespan, validation, startup failures, handlers and app-bound channels."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from broadcaster import Broadcast
from fastapi import BackgroundTasks, FastAPI, Request, WebSocket
from fastapi.testclient import TestClient
from starlette.applications import Starlette

from fastapi_channels import FastAPIChannel, add_channel
from fastapi_channels.api import get_channel_config
from fastapi_channels.channels import BaseChannel, Channel
from fastapi_channels.decorators import action
from fastapi_channels.exceptions import PermissionDenied, WebSocketException
from fastapi_channels.testing import receive_json, receive_text
from tests.apps.backends import CountingMemoryBackend
from tests.conftest import free_port

JOINED = "joined"


def relay_room() -> BaseChannel:
    """A relaying room that tells each client when it has joined."""
    room = BaseChannel()
    room.add_event_handler("join", lambda websocket, channel: room.broadcast_to_personal(websocket, JOINED))
    return room


def route(app: FastAPI, room: BaseChannel) -> None:
    @app.websocket("/ws/{name}")
    async def endpoint(websocket: WebSocket, name: str) -> None:
        await room.connect(websocket, channel=name)


# -- defaults and the app lifespan ---------------------------------------------------------------------------


def test_add_channel_without_url_relays_in_memory(channel_name: str) -> None:
    app = FastAPI()
    assert add_channel(app) is app
    route(app, relay_room())
    config = app.state.fastapi_channels
    assert isinstance(config, FastAPIChannel)
    assert config.url == "memory://"
    with TestClient(app) as client:
        with (
            client.websocket_connect(f"/ws/{channel_name}") as first,
            client.websocket_connect(f"/ws/{channel_name}") as second,
        ):
            assert receive_text(first) == JOINED
            assert receive_text(second) == JOINED
            first.send_text("in memory")
            assert receive_text(first) == "in memory"
            assert receive_text(second) == "in memory"


def test_add_channel_keeps_user_lifespan_running_inside_ours_with_its_state(
    backend: dict[str, Any], channel_name: str
) -> None:
    steps: list[str] = []
    room = BaseChannel()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        # Ours has started: the channel layer is usable from the user's startup.
        assert get_channel_config().started
        await room.broadcast_to_channel(channel_name, "from the user's startup")
        steps.append("user startup")
        yield {"greeting": "hello from the user's lifespan"}
        await room.broadcast_to_channel(channel_name, "from the user's shutdown")
        steps.append("user shutdown")

    app = FastAPI(lifespan=lifespan)
    add_channel(app, **backend)

    @room.on_event("join")
    async def greet(websocket: WebSocket, channel: str) -> None:
        await room.broadcast_to_personal(websocket, websocket.state.greeting)

    route(app, room)

    @app.get("/greeting")
    async def greeting(request: Request) -> dict[str, str]:
        return {"greeting": request.state.greeting}

    with TestClient(app) as client:
        assert steps == ["user startup"]
        assert client.get("/greeting").json() == {"greeting": "hello from the user's lifespan"}
        with client.websocket_connect(f"/ws/{channel_name}") as ws:
            assert receive_text(ws) == "hello from the user's lifespan"
    assert steps == ["user startup", "user shutdown"]


def test_add_channel_connects_broadcaster_at_startup_and_disconnects_at_shutdown(channel_name: str) -> None:
    counting = CountingMemoryBackend()
    app = FastAPI()
    add_channel(app, backend=counting)
    route(app, relay_room())
    room = BaseChannel()
    assert (counting.connects, counting.disconnects) == (0, 0)
    with TestClient(app) as client:
        assert (counting.connects, counting.disconnects) == (1, 0)
        with client.websocket_connect(f"/ws/{channel_name}") as ws:
            assert receive_text(ws) == JOINED
            ws.send_text("through the backend")
            assert receive_text(ws) == "through the backend"
    assert (counting.connects, counting.disconnects) == (1, 1)
    # Published under the namespace and the relay's group: other apps and channel classes never hear it.
    assert counting.published == [(f"fastapi-channels:{room.topic(channel_name)}", "through the backend")]
    with pytest.raises(RuntimeError, match="No app with channels is running"):
        get_channel_config()
    with pytest.raises(RuntimeError, match=r"add_channel\(app\)"):
        asyncio.run(room.broadcast_to_channel(channel_name, "after shutdown"))


def test_add_channel_with_user_managed_broadcast_leaves_connecting_to_the_user(channel_name: str) -> None:
    counting = CountingMemoryBackend()
    broadcast = Broadcast(backend=counting)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with broadcast:
            yield

    app = FastAPI(lifespan=lifespan)
    add_channel(app, broadcast=broadcast)
    room = relay_room()
    route(app, room)
    with TestClient(app) as client:
        assert (counting.connects, counting.disconnects) == (1, 0)
        with client.websocket_connect(f"/ws/{channel_name}") as ws:
            assert receive_text(ws) == JOINED
            ws.send_text("through the user's broadcast")
            assert receive_text(ws) == "through the user's broadcast"
    # Connected and disconnected once each: by the user's lifespan, never by add_channel.
    assert (counting.connects, counting.disconnects) == (1, 1)
    assert counting.published == [(f"fastapi-channels:{room.topic(channel_name)}", "through the user's broadcast")]


# -- validation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "memory://", "backend": CountingMemoryBackend()}, "only one of url=, backend= and broadcast="),
        ({"url": "memory://", "broadcast": Broadcast("memory://")}, "only one of url=, backend= and broadcast="),
        ({"backend": CountingMemoryBackend(), "broadcast": Broadcast("memory://")}, "only one of url="),
        ({"limiter_url": "http://127.0.0.1:6379"}, "limiter_url must be a redis://"),
        ({"limiter_url": "postgres://127.0.0.1/test"}, "limiter_url must be a redis://"),
        ({"url": "carrier-pigeon://coop"}, "Unsupported broadcast URL 'carrier-pigeon://coop'"),
        ({"send_queue_size": 0}, "send_queue_size must be a positive number of frames or None"),
        ({"send_queue_size": -5}, "send_queue_size must be a positive number of frames or None"),
        ({"send_queue_bytes": 0}, "send_queue_bytes must be a positive integer"),
        ({"write_timeout": 0}, "write_timeout must be a positive number of seconds"),
        ({"write_timeout": True}, "write_timeout must be a positive number of seconds"),
    ],
    ids=[
        "url-and-backend",
        "url-and-broadcast",
        "backend-and-broadcast",
        "limiter-http",
        "limiter-postgres",
        "unsupported-url",
        "queue-zero",
        "queue-negative",
        "queue-bytes-zero",
        "write-timeout-zero",
        "write-timeout-bool",
    ],
)
def test_add_channel_invalid_options_raise_value_error_saying_what_is_wrong(
    options: dict[str, Any], message: str
) -> None:
    app = FastAPI()
    with pytest.raises(ValueError, match=message):
        add_channel(app, **options)
    assert not hasattr(app.state, "fastapi_channels")


def test_add_channel_on_non_fastapi_app_raises_type_error() -> None:
    with pytest.raises(TypeError, match="takes a FastAPI app, not Starlette"):
        add_channel(Starlette())


@pytest.mark.parametrize("option", ["url", "limiter_url"])
def test_add_channel_unreachable_redis_fails_startup_with_connection_error_naming_url(option: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = FastAPI()
    add_channel(app, **{option: url})
    with pytest.raises(ConnectionError) as info:
        with TestClient(app):
            pass
    assert repr(url) in str(info.value)
    assert "Cannot reach Redis" in str(info.value)
    # Nothing stays running after a failed startup.
    with pytest.raises(RuntimeError, match="No app with channels is running"):
        get_channel_config()


# -- exception handlers -------------------------------------------------------------------------------------------


def test_add_channel_registers_websocket_exception_handler_in_app_registry() -> None:
    app = FastAPI()
    add_channel(app)
    assert WebSocketException in app.exception_handlers


def test_add_channel_without_exception_handlers_registers_none_but_still_answers_errors(channel_name: str) -> None:
    class Room(Channel):
        @action()
        async def forbidden(self, websocket: WebSocket, channel: str, data: dict[str, Any]) -> None:
            raise PermissionDenied(close=False)

    app = FastAPI()
    add_channel(app, add_exception_handlers=False)
    assert WebSocketException not in app.exception_handlers
    route(app, Room())
    with TestClient(app) as client, client.websocket_connect(f"/ws/{channel_name}") as ws:
        ws.send_json({"action": "forbidden", "request_id": 1})
        frame = receive_json(ws)
        assert (frame["action"], frame["request_id"], frame["code"], frame["close"]) == ("forbidden", 1, 1008, False)


# -- channels bound to an app ----------------------------------------------------------------------------------------


def announcing_app(channel_name: str) -> tuple[FastAPI, BaseChannel]:
    """An app whose room (bound with app=) is announced to from an HTTP endpoint and a background task."""
    app = FastAPI()
    add_channel(app)
    room = BaseChannel(app=app)
    room.add_event_handler("join", lambda websocket, channel: room.broadcast_to_personal(websocket, JOINED))
    route(app, room)

    @app.post("/announce/{text}")
    async def announce(text: str, background: BackgroundTasks) -> dict[str, int]:
        await room.broadcast_to_channel(channel_name, {"now": text})
        background.add_task(room.broadcast_to_channel, channel_name, {"later": text})
        return {"listeners": await room.get_connection_count(channel_name)}

    return app, room


def test_channel_bound_to_app_broadcasts_from_http_endpoint_and_background_task(channel_name: str) -> None:
    app, _ = announcing_app(channel_name)
    with TestClient(app) as client, client.websocket_connect(f"/ws/{channel_name}") as ws:
        assert receive_text(ws) == JOINED
        response = client.post("/announce/hello")
        assert response.json() == {"listeners": 1}
        assert receive_json(ws) == {"now": "hello"}
        assert receive_json(ws) == {"later": "hello"}


def test_channel_bound_to_app_finds_its_app_while_another_app_runs(channel_name: str) -> None:
    app, _ = announcing_app(channel_name)
    other = FastAPI()
    add_channel(other)
    unbound = BaseChannel()

    @other.post("/unbound")
    async def from_unbound() -> None:
        await unbound.broadcast_to_channel(channel_name, "which app?")

    with TestClient(app) as client, TestClient(other) as other_client:
        with client.websocket_connect(f"/ws/{channel_name}") as ws:
            assert receive_text(ws) == JOINED
            assert client.post("/announce/mine").json() == {"listeners": 1}
            assert receive_json(ws) == {"now": "mine"}
            assert receive_json(ws) == {"later": "mine"}
        with pytest.raises(RuntimeError, match="pass app="):
            other_client.post("/unbound")


def test_frames_pass_through_user_middleware_added_before_and_after_add_channel() -> None:
    seen: dict[str, list[str]] = {"before": [], "after": []}

    def tap(name: str) -> type:
        class Tap:
            """Record the text of every frame the app sends, as a logging middleware would."""

            def __init__(self, app: Any) -> None:
                self.app = app

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                async def recording_send(message: dict[str, Any]) -> None:
                    if message["type"] == "websocket.send":
                        seen[name].append(message["text"])
                    await send(message)

                await self.app(scope, receive, recording_send)

        return Tap

    app = FastAPI()
    app.add_middleware(tap("before"))
    add_channel(app)
    app.add_middleware(tap("after"))
    room = BaseChannel(channel="tapped")
    route(app, room)
    with (
        TestClient(app) as client,
        client.websocket_connect("/ws/tapped") as first,
        client.websocket_connect("/ws/tapped") as second,
    ):
        first.send_text("hello")
        assert receive_text(first) == receive_text(second) == "hello"
    assert seen["before"] == seen["after"] == ["hello", "hello"]
