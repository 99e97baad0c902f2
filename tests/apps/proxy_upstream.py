"""The websocket server behind the proxy in tests/test_proxy.py: websockets' own server, not uvicorn or Starlette.

Run as ``python -m tests.apps.proxy_upstream PORT LOG``, or from a test as ``UpstreamProcess(LOG)``. Every
connection first gets a JSON text frame that describes the handshake the server saw (path with query string,
headers, subprotocol), then has its frames echoed, text as text and binary as binary. A text frame starting
with ``!`` is a command:

- ``!close CODE REASON``: close with that code and reason; ``!close-empty``: close with no code at all;
- ``!big SIZE``: send one binary message of SIZE bytes;
- ``!flood COUNT SIZE``: send COUNT binary messages of SIZE bytes, each starting with its number on 8 digits;
- ``!stall``: stop reading until another connection sends ``!release PATH``, then read and drop every frame.

What the tests wait for goes to LOG, a line each: ``blocked PATH N`` when the send of message N of a flood has
waited a second (the proxy stopped reading), ``flooded PATH COUNT`` when a flood is over, ``closed PATH CODE
REASON`` when a connection ended (``closed PATH lost`` without a close frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

SUBPROTOCOLS = [Subprotocol("chat.v2"), Subprotocol("chat.v1")]
"""The subprotocols this server speaks, the one it prefers first."""
BLOCKED_AFTER = 1.0
"""Seconds a send of a flood waits before the server logs that it is blocked."""
RELEASED: dict[str, asyncio.Event] = {}
"""For each path, set once ``!release PATH`` came: a connection of that path that stalled reads again."""


def log(line: str) -> None:
    """Append ``line`` to the log the tests read."""
    with Path(sys.argv[2]).open("a") as file:
        file.write(line + "\n")


def select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Pick this server's favourite among the subprotocols the client offered; none if there is no match."""
    return next((subprotocol for subprotocol in SUBPROTOCOLS if subprotocol in offered), None)


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    """Refuse the handshake of ``/deny/STATUS`` with that HTTP status."""
    if request.path.startswith("/deny/"):
        return connection.respond(int(request.path.removeprefix("/deny/")), "Denied by the upstream.\n")
    return None


async def flood(connection: ServerConnection, path: str, count: int, size: int) -> None:
    """Send ``count`` numbered binary messages of ``size`` bytes, logging when a send has to wait."""
    padding = b"x" * (size - 8)
    blocked = False
    for number in range(count):
        sending = asyncio.ensure_future(connection.send(b"%08d" % number + padding))
        done, _ = await asyncio.wait({sending}, timeout=BLOCKED_AFTER)
        if not done and not blocked:
            blocked = True
            log(f"blocked {path} {number}")
        await sending
    log(f"flooded {path} {count}")


async def command(connection: ServerConnection, path: str, words: list[str]) -> None:
    """Run one ``!`` command."""
    if words[0] == "close":
        await connection.close(int(words[1]), words[2] if len(words) > 2 else "")
    elif words[0] == "close-empty":
        await connection.close(None, "")  # type: ignore[arg-type]  # an empty close frame: no code, no reason
    elif words[0] == "big":
        await connection.send(b"x" * int(words[1]))
    elif words[0] == "flood":
        await flood(connection, path, int(words[1]), int(words[2]))
    elif words[0] == "stall":
        await RELEASED.setdefault(path, asyncio.Event()).wait()
        async for _ in connection:
            pass
    elif words[0] == "release":
        RELEASED.setdefault(words[1], asyncio.Event()).set()


async def handler(connection: ServerConnection) -> None:
    """Describe the handshake, then echo frames and run commands until the connection ends."""
    request = connection.request
    assert request is not None
    path = request.path
    hello = {"path": path, "headers": list(request.headers.raw_items()), "subprotocol": connection.subprotocol}
    try:
        await connection.send(json.dumps(hello))
        async for message in connection:
            if isinstance(message, str) and message.startswith("!"):
                await command(connection, path, message[1:].split(" ", 2))
            else:
                await connection.send(message)
    except ConnectionClosed:
        pass
    await connection.wait_closed()
    received = connection.protocol.close_rcvd
    log(f"closed {path} lost" if received is None else f"closed {path} {received.code} {received.reason}".rstrip())


async def main() -> None:
    """Serve on 127.0.0.1 at the port given on the command line until killed."""
    # No compression, so a flood weighs on the socket buffers what it says; no pings, so a stall stays a stall.
    async with serve(
        handler,
        "127.0.0.1",
        int(sys.argv[1]),
        select_subprotocol=select_subprotocol,
        process_request=process_request,
        compression=None,
        ping_interval=None,
        max_size=None,
    ) as server:
        await server.serve_forever()


class UpstreamProcess:
    """tests/apps/proxy_upstream.py in a process of its own, on a free port, logging to ``log``."""

    def __init__(self, log: Path) -> None:
        from tests.conftest import ROOT, free_port  # here: the server process itself needs neither

        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self._output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.apps.proxy_upstream", str(self.port), str(log)],
            cwd=ROOT,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )

    def wait_until_serving(self, timeout: float = 20) -> None:
        """Wait until the port accepts connections; fail with the server's output if it exits first."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"the upstream exited early:\n{self.output()}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            assert time.monotonic() < deadline, f"the upstream did not start within {timeout} s:\n{self.output()}"
            time.sleep(0.05)

    def output(self) -> str:
        """Return what the server has printed so far."""
        self._output.flush()
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    def kill(self) -> None:
        """End the process at once with SIGKILL: no close frames, like a crash."""
        self.process.kill()
        self.process.wait(10)

    def close(self) -> None:
        """Stop the server and drop its output."""
        if self.process.poll() is None:
            self.kill()
        self._output.close()


if __name__ == "__main__":
    asyncio.run(main())
