"""The websocket proxy, end to end: a client, the proxy app under a real uvicorn process, and a real upstream
process (websockets' own server, tests/apps/proxy_upstream.py) that describes each handshake and logs each close."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from fastapi_channels.proxy import WebSocketProxy, quote_path
from tests.apps.proxy_upstream import UpstreamProcess
from tests.apps.sockets import Peer
from tests.conftest import ROOT, UvicornProcess, free_port
from tests.helpers import unread_socket

FLOOD_FRAMES = 1024
FLOOD_FRAME_SIZE = 256 * 1024  # 256 MiB in all: many times what the socket buffers and the proxy's queue hold


@dataclass
class Stack:
    """An upstream, the proxy in front of it, and the upstream's log."""

    upstream: UpstreamProcess
    proxy: UvicornProcess
    log: Path

    def url(self, path: str) -> str:
        """Return the proxy's websocket URL for ``path``."""
        return f"ws://127.0.0.1:{self.proxy.port}{path}"

    async def line(self, prefix: str, timeout: float = 10) -> str:
        """Wait until the upstream has logged a line starting with ``prefix``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log.read_text().splitlines() if self.log.exists() else []
            found = [line for line in lines if line.startswith(prefix)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no {prefix!r} within {timeout} s: {lines}"
            await asyncio.sleep(0.02)


@contextlib.contextmanager
def running_stack(log: Path, silent_port: int) -> Iterator[Stack]:
    """Start an upstream and the proxy app in front of it."""
    upstream = UpstreamProcess(log)
    env = {
        "PROXY_UPSTREAM": upstream.url,
        "PROXY_DEAD": f"ws://127.0.0.1:{free_port()}",
        "PROXY_SILENT": f"ws://127.0.0.1:{silent_port}",
    }
    proxy = UvicornProcess("tests.apps.proxy_app:app", env=env)
    try:
        upstream.wait_until_serving()
        proxy.wait_until_serving()
        yield Stack(upstream, proxy, log)
    finally:
        proxy.close()
        upstream.close()


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port whose listener takes TCP connections (the kernel does) and never answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, silent_port: int) -> Iterator[Stack]:
    """One upstream and proxy for the tests that do not kill them; each test uses paths of its own."""
    with running_stack(tmp_path_factory.mktemp("proxy") / "upstream.log", silent_port) as running:
        yield running


@pytest.fixture
def path() -> str:
    """An upstream path no other test uses, so that the upstream's log lines of this test are its own."""
    return f"/{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def proxied(stack: Stack, path: str, **options: Any) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    """Connect through the proxy; yield the client and the upstream's description of the handshake it saw."""
    options.setdefault("ping_interval", None)
    async with connect(stack.url(path), **options) as client:
        hello = json.loads(await asyncio.wait_for(client.recv(), 5))
        yield client, hello


async def release(stack: Stack, path: str) -> None:
    """Have the upstream's connection of ``path``, stalled by ``!stall``, read again."""
    async with proxied(stack, f"/proxy{path}-release") as (other, _):
        await other.send(f"!release {path}")


async def closed_with(client: ClientConnection, timeout: float = 10) -> tuple[int, str]:
    """Read until the connection ends; return the code and reason of the close frame the client got."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(client.recv(), timeout)
    assert closed.value.rcvd is not None, f"no close frame: {closed.value}"
    return closed.value.rcvd.code, closed.value.rcvd.reason


def headers_of(hello: dict[str, Any]) -> dict[str, list[str]]:
    """Return the upstream's request headers by lower-case name."""
    headers: dict[str, list[str]] = {}
    for name, value in hello["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    return headers


# -- frames, subprotocols, headers -----------------------------------------------------------------------


async def test_proxy_text_and_binary_frames_round_trip_with_their_type(stack: Stack, path: str) -> None:
    async with proxied(stack, f"/proxy{path}") as (client, _):
        for message in ["héllo ✓", "", b"\x00\xff" * 1000, b""]:
            await client.send(message)
            echoed = await asyncio.wait_for(client.recv(), 5)
            assert echoed == message and type(echoed) is type(message)


async def test_proxy_subprotocol_the_upstream_chose_is_the_one_the_client_gets(stack: Stack, path: str) -> None:
    # The upstream prefers chat.v2: the client offering chat.v1 first still gets chat.v2, the upstream's choice.
    async with proxied(stack, f"/proxy{path}", subprotocols=["chat.v1", "chat.v2"]) as (client, hello):
        assert client.subprotocol == hello["subprotocol"] == "chat.v2"
        assert headers_of(hello)["sec-websocket-protocol"] == ["chat.v1, chat.v2"]
    async with proxied(stack, f"/proxy{path}", subprotocols=["other"]) as (client, hello):
        assert client.subprotocol is None and hello["subprotocol"] is None
    async with proxied(stack, f"/proxy{path}") as (client, hello):
        assert client.subprotocol is None and "sec-websocket-protocol" not in headers_of(hello)


async def test_proxy_allowlisted_and_x_forwarded_headers_reach_the_upstream_and_no_others(
    stack: Stack, path: str
) -> None:
    sent = {
        "Authorization": "Bearer t0ken",
        "Cookie": "session=abc",
        "Origin": "http://app.example",
        "X-Secret": "not for the upstream",
        "X-Forwarded-Host": "evil.example",
    }
    options = {"additional_headers": sent, "user_agent_header": "test-client/1.0"}
    async with proxied(stack, f"/proxy{path}", **options) as (client, hello):
        headers = headers_of(hello)
        assert headers["authorization"] == ["Bearer t0ken"] and headers["cookie"] == ["session=abc"]
        assert headers["origin"] == ["http://app.example"] and headers["user-agent"] == ["test-client/1.0"]
        assert "x-secret" not in headers
        assert headers["x-forwarded-for"] == ["127.0.0.1"] and headers["x-forwarded-proto"] == ["http"]
        assert headers["x-forwarded-host"] == [f"127.0.0.1:{stack.proxy.port}"]  # not the client's own
        # The handshake headers are the proxy's own, made for the upstream, one of each.
        assert headers["host"] == [f"127.0.0.1:{stack.upstream.port}"]
        assert headers["upgrade"] == ["websocket"] and headers["connection"] == ["Upgrade"]
        assert client.request is not None
        assert headers["sec-websocket-key"] != [client.request.headers["Sec-WebSocket-Key"]]


async def test_proxy_path_and_query_string_reach_the_upstream(stack: Stack, path: str) -> None:
    async with proxied(stack, f"/proxy{path}/rooms/42?token=abc&name=a%20b") as (_, hello):
        assert hello["path"] == f"{path}/rooms/42?token=abc&name=a%20b"
    # The route's path parameter arrives decoded: what a URL cannot hold as it is is escaped again.
    async with proxied(stack, f"/proxy{path}/a%20b%23c/%C3%A9") as (_, hello):
        assert hello["path"] == f"{path}/a%20b%23c/%C3%A9"


async def test_proxy_path_parameter_delimiters_reach_the_upstream_escaped_not_as_delimiters(
    stack: Stack, path: str
) -> None:
    # Decoded by the server, "?" would start the upstream's query and "%25" be decoded once more upstream; every
    # character but the unreserved ones is escaped, which decodes to the same path parameter upstream.
    async with proxied(stack, f"/proxy{path}/lobby%3Fadmin=1?token=abc") as (_, hello):
        assert hello["path"] == f"{path}/lobby%3Fadmin%3D1?token=abc"
    async with proxied(stack, f"/proxy{path}/100%2525/%3B%2C") as (_, hello):
        assert hello["path"] == f"{path}/100%2525/%3B%2C"


async def test_proxy_path_parameter_with_a_dot_segment_is_refused_with_400(stack: Stack) -> None:
    for climbing in ("/proxy/rooms/..%2F..%2Fadmin", "/proxy/%2E%2E/admin", "/proxy/rooms/%2E"):
        status_code, body = await refused_status(stack.url(climbing))
        assert (status_code, body) == (400, b"The path may not have a '.' or '..' segment.")


async def handshake_status(stack: Stack, path: str, *header_lines: str) -> int:
    """Send a websocket handshake with ``header_lines`` as they are; return the HTTP status of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.proxy.port)
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade"]
    lines += ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", *header_lines]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_proxy_subprotocol_name_that_is_no_token_is_refused_with_400(stack: Stack, path: str) -> None:
    assert await handshake_status(stack, f"/proxy{path}", "Sec-WebSocket-Protocol: chat.v1, bad@name") == 400
    assert await handshake_status(stack, f"/proxy{path}", "Sec-WebSocket-Protocol: chat.v1, ") == 101


# -- closing both ends together --------------------------------------------------------------------------


async def test_proxy_upstream_close_code_and_reason_reach_the_client(stack: Stack, path: str) -> None:
    async with proxied(stack, f"/proxy{path}") as (client, _):
        await client.send("!close 4001 bye now")
        assert await closed_with(client) == (4001, "bye now")


async def test_proxy_upstream_close_without_a_code_reaches_the_client_as_1000(stack: Stack, path: str) -> None:
    async with proxied(stack, f"/proxy{path}") as (client, _):
        await client.send("!close-empty")
        assert await closed_with(client) == (1000, "")


async def test_proxy_client_close_code_and_reason_reach_the_upstream(stack: Stack, path: str) -> None:
    async with proxied(stack, f"/proxy{path}") as (client, _):
        await client.close(4002, "done here")
    assert await stack.line(f"closed {path} ") == f"closed {path} 4002 done here"


async def test_proxy_client_that_vanishes_closes_the_upstream_with_1001(stack: Stack, path: str) -> None:
    async with proxied(stack, f"/proxy{path}") as (client, _):
        client.transport.abort()  # a TCP reset, no close frame
    assert await stack.line(f"closed {path} ") == f"closed {path} 1001 The client went away."


async def test_proxy_upstream_killed_mid_session_closes_the_client_with_1014(
    tmp_path: Path, silent_port: int, path: str
) -> None:
    with running_stack(tmp_path / "upstream.log", silent_port) as own:
        async with proxied(own, f"/proxy{path}") as (client, _):
            await client.send("still there?")
            assert await asyncio.wait_for(client.recv(), 5) == "still there?"
            own.upstream.kill()
            assert await closed_with(client) == (1014, "The upstream connection was lost.")


# -- an upstream that cannot be had ----------------------------------------------------------------------


async def refused_status(url: str) -> tuple[int, bytes]:
    """Return the HTTP status and body with which the proxy refused the client's handshake."""
    with pytest.raises(InvalidStatus) as refused:
        await asyncio.wait_for(connect(url), 10)
    return refused.value.response.status_code, bytes(refused.value.response.body or b"")


async def test_proxy_unreachable_upstream_refuses_the_handshake_with_502(stack: Stack) -> None:
    status_code, body = await refused_status(stack.url("/dead"))
    assert status_code == 502 and body.startswith(b"The upstream server could not be reached")


async def test_proxy_upstream_that_never_answers_refuses_the_handshake_with_504(stack: Stack) -> None:
    assert await refused_status(stack.url("/silent")) == (504, b"The upstream server did not answer in time.")


async def test_proxy_upstream_refusal_passes_on_4xx_and_turns_5xx_into_502(stack: Stack) -> None:
    assert (await refused_status(stack.url("/proxy/deny/401")))[0] == 401
    assert (await refused_status(stack.url("/proxy/deny/404")))[0] == 404
    assert (await refused_status(stack.url("/proxy/deny/503")))[0] == 502


async def test_proxy_function_returning_a_bad_url_fails_the_handshake_with_500(stack: Stack) -> None:
    assert (await refused_status(stack.url("/misrouted")))[0] == 500
    assert "The upstream must be a ws:// or wss:// URL" in stack.proxy.output()


async def test_proxy_without_the_denial_extension_refuses_with_close_1014() -> None:
    peer = Peer()  # an ASGI server that cannot send an HTTP response to a websocket handshake
    scope = {"type": "websocket", "path": "/", "headers": [], "query_string": b"", "client": ("127.0.0.1", 1)}
    await WebSocketProxy(f"ws://127.0.0.1:{free_port()}")(WebSocket(scope, peer.receive, peer.send))
    closed = await peer.next()
    assert (closed["type"], closed["code"]) == ("websocket.close", 1014)
    assert closed["reason"].startswith("The upstream server could not be reached")


async def test_proxy_cancelled_mid_session_closes_both_sides_with_1001(stack: Stack, path: str) -> None:
    peer = Peer()  # the client, in this process; the upstream is the real one
    scope = {"type": "websocket", "path": "/", "headers": [], "query_string": b"", "client": ("127.0.0.1", 1)}
    proxy = WebSocketProxy(f"{stack.upstream.url}{path}")
    relaying = asyncio.ensure_future(proxy(WebSocket(scope, peer.receive, peer.send)))
    assert (await peer.next())["type"] == "websocket.accept"
    assert json.loads(await peer.next_text())["path"] == path
    relaying.cancel()  # what a server shutting down, or a test client leaving, may do to an endpoint
    with pytest.raises(asyncio.CancelledError):
        await relaying
    closed = await peer.next()
    assert (closed["type"], closed["code"]) == ("websocket.close", 1001)
    assert closed["reason"] == "The proxy is shutting down."
    assert await stack.line(f"closed {path} ") == f"closed {path} 1001 The proxy is shutting down."


# -- hostile sizes and speeds ----------------------------------------------------------------------------


async def test_proxy_upstream_message_over_max_size_closes_both_sides_with_1009(stack: Stack, path: str) -> None:
    async with proxied(stack, f"/proxy{path}") as (client, _):
        await client.send(f"!big {2 * 1024 * 1024}")  # the proxy app's max_size is the default, 1 MiB
        code, reason = await closed_with(client)
    assert code == 1009 and reason.startswith("Upstream: ")
    assert (await stack.line(f"closed {path} ")).startswith(f"closed {path} 1009 ")


async def test_proxy_client_message_over_the_server_limit_closes_both_sides_with_1009(stack: Stack, path: str) -> None:
    async with proxied(stack, f"/proxy{path}", compression=None) as (client, _):
        with contextlib.suppress(ConnectionClosed):
            await client.send(b"x" * (16 * 1024 * 1024 + 1))  # uvicorn's --ws-max-size is 16 MiB
        assert (await closed_with(client))[0] == 1009
    assert (await stack.line(f"closed {path} ")).startswith(f"closed {path} 1009 ")


async def test_proxy_client_that_never_reads_holds_up_the_upstream_instead_of_filling_the_proxy(
    stack: Stack, path: str
) -> None:
    # A tiny receive buffer, a client that takes no frame off it (max_queue=1), and no compression.
    raw = unread_socket(stack.proxy.url)
    options = {"sock": raw, "max_queue": 1, "compression": None, "max_size": None}
    async with proxied(stack, f"/patient{path}", **options) as (client, _):
        await client.send(f"!flood {FLOOD_FRAMES} {FLOOD_FRAME_SIZE}")
        # The upstream's sends soon have to wait: what it got out is bounded by buffers, far below the flood.
        blocked = await stack.line(f"blocked {path} ", timeout=60)
        assert int(blocked.split()[-1]) < FLOOD_FRAMES // 2, blocked
        assert not [line for line in stack.log.read_text().splitlines() if line.startswith(f"flooded {path} ")]
        # Nothing was lost or reordered on the way: the client reads the flood from its start.
        numbers = [int((await asyncio.wait_for(client.recv(), 10))[:8]) for _ in range(32)]
        assert numbers == list(range(32))
        client.transport.abort()
    assert await stack.line(f"closed {path} ") == f"closed {path} 1001 The client went away."


async def test_proxy_client_flooding_a_stalled_upstream_is_held_up_instead_of_filling_the_proxy(
    stack: Stack, path: str
) -> None:
    async with proxied(stack, f"/patient{path}", compression=None) as (client, _):
        await client.send("!stall")
        frame = b"y" * FLOOD_FRAME_SIZE
        sent = 0
        while sent < FLOOD_FRAMES:
            sending = asyncio.ensure_future(client.send(frame))
            done, _ = await asyncio.wait({sending}, timeout=1)
            if not done:
                break
            sent += 1
        # The client's own sends had to wait: the proxy read no faster than the upstream, which reads nothing.
        assert sent < FLOOD_FRAMES // 2, sent
        await release(stack, path)
        await asyncio.wait_for(sending, 30)  # the upstream reads again: the held-up send goes through
        await client.close(4003, "enough")
    assert await stack.line(f"closed {path} ") == f"closed {path} 4003 enough"


async def test_proxy_gives_up_on_a_client_that_stopped_reading_after_write_timeout(stack: Stack, path: str) -> None:
    raw = unread_socket(stack.proxy.url)
    options = {"sock": raw, "max_queue": 1, "compression": None, "max_size": None}
    async with proxied(stack, f"/impatient{path}", **options) as (client, _):
        await client.send(f"!flood {FLOOD_FRAMES} {FLOOD_FRAME_SIZE}")
        # One write waited a second (the route's write_timeout): the upstream is let go of, the flood is cut.
        assert await stack.line(f"closed {path} ", timeout=30) == f"closed {path} 1001 The client stopped reading."
        client.transport.abort()


async def test_proxy_gives_up_on_an_upstream_that_stopped_reading_and_closes_the_client_with_1013(
    stack: Stack, path: str
) -> None:
    async with proxied(stack, f"/impatient{path}", compression=None) as (client, _):
        await client.send("!stall")

        async def flood() -> None:
            with contextlib.suppress(ConnectionClosed):
                for _ in range(FLOOD_FRAMES):
                    await client.send(b"y" * FLOOD_FRAME_SIZE)

        flooding = asyncio.ensure_future(flood())
        assert await closed_with(client, timeout=30) == (1013, "The upstream server stopped reading.")
        await asyncio.wait_for(flooding, 10)
    # Once the upstream reads again, it finds the proxy's close frame behind the client's frames.
    await release(stack, path)
    assert await stack.line(f"closed {path} ") == f"closed {path} 1001 You stopped reading."


# -- configuration mistakes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"upstream": "http://example.com/ws"}, "The upstream must be a ws:// or wss:// URL"),
        ({"forward_headers": ["Authorization", "Upgrade"]}, "'upgrade' header belongs to one connection"),
        ({"forward_headers": ["sec-websocket-key"]}, "'sec-websocket-key' header belongs to one connection"),
        ({"forward_headers": ["X-Forwarded-For"]}, "pass x_forwarded=False to forward the client's"),
        ({"forward_headers": "authorization"}, "forward_headers=['authorization']"),
        ({"connect_options": {"max_size": None}}, "pass WebSocketProxy(max_size=...)"),
        ({"connect_options": {"additional_headers": {}}}, "forward_headers"),
    ],
)
def test_proxy_configuration_mistakes_raise_at_definition_with_the_fix(arguments: dict[str, Any], message: str) -> None:
    arguments = {"upstream": "ws://127.0.0.1:9000", **arguments}
    with pytest.raises(ValueError) as error:
        WebSocketProxy(**arguments)
    assert message in str(error.value)


def test_proxy_endpoint_signature_names_its_websocket_parameter_with_the_class() -> None:
    # What FastAPI reads to pass the websocket; older releases do not resolve string annotations themselves.
    parameters = inspect.signature(WebSocketProxy("ws://127.0.0.1:9000")).parameters
    assert list(parameters) == ["websocket"] and parameters["websocket"].annotation is WebSocket


def test_proxy_forwards_the_clients_x_forwarded_headers_only_when_told_to() -> None:
    scope = {
        "type": "websocket",
        "path": "/",
        "headers": [(b"x-forwarded-for", b"10.0.0.7"), (b"host", b"gateway.example"), (b"cookie", b"a=1")],
        "query_string": b"",
        "client": ("127.0.0.1", 1),
    }
    websocket = WebSocket(scope, Peer().receive, Peer().send)
    proxy = WebSocketProxy("ws://127.0.0.1:9000", forward_headers=["x-forwarded-for"], x_forwarded=False)
    assert proxy.upstream_headers(websocket) == [("x-forwarded-for", "10.0.0.7")]
    assert WebSocketProxy("ws://127.0.0.1:9000").upstream_headers(websocket) == [
        ("cookie", "a=1"),
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "gateway.example"),
    ]


def test_proxy_module_without_websockets_says_which_extra_to_install() -> None:
    code = "import sys; sys.modules['websockets'] = None; import fastapi_channels.proxy"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "pip install 'fastapi-channels[proxy]'" in result.stderr


def test_package_import_does_not_import_websockets() -> None:
    code = "import sys, fastapi_channels, fastapi_channels.api; print('websockets' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.parametrize(
    ("decoded", "quoted"),
    [
        ("rooms/42", "rooms/42"),
        ("lobby?admin=1", "lobby%3Fadmin%3D1"),
        ("100%25/a b#c", "100%2525/a%20b%23c"),
        ("é/..x/.hidden", "%C3%A9/..x/.hidden"),
        ("", ""),
    ],
)
def test_quote_path_escapes_each_segment_whole_and_keeps_the_separators(decoded: str, quoted: str) -> None:
    assert quote_path(decoded) == quoted


@pytest.mark.parametrize("climbing", ["..", ".", "a/../b", "../../admin", "a/."])
def test_quote_path_with_a_dot_segment_raises_value_error(climbing: str) -> None:
    with pytest.raises(ValueError, match=r"may not have a '\.' or '\.\.' segment"):
        quote_path(climbing)
