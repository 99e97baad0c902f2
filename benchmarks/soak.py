"""Soak test: hold many websocket connections with steady traffic, joins and leaves, and watch the server's memory.

A real uvicorn process serves ``benchmarks/soak_app.py``; this process holds ``--connections`` clients spread over
``--rooms`` rooms, sends ``--rate`` messages a second (half broadcast to the sender's room, half echoed to the
sender alone), and every second replaces ``--churn`` connections (half closed cleanly, half dropped without a
close frame). Every ``--interval`` seconds it prints the server's RSS, task count, live connections and gc object
count (read right after a full collection, so that cyclic garbage waiting for the collector does not pass for a
leak) next to the client's counters; at the end, the RSS growth per 10 minutes after the warm-up, from a
least-squares slope. Loopback only, and every run stops by itself after ``--minutes``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0
"""Seconds any single network step (open, welcome, send, close, stats request) may take."""
MAX_OPENING = 50
"""Connections being opened at once: the initial ramp-up must not look like a connection storm."""
TICK = 0.05
"""Seconds between two rounds of the traffic and churn loops."""


class SoakFailed(Exception):
    """The soak could not run as asked (the server did not start, connections could not be opened)."""


@dataclass
class Counters:
    """What the client side did, cumulative since the start."""

    sent: int = 0
    received: int = 0
    connects: int = 0
    clean_closes: int = 0
    abrupt_closes: int = 0
    errors: int = 0
    max_lag: float = 0.0  # the client's worst event-loop delay in the current interval, seconds


@dataclass
class Client:
    """One connection, its room and the task that reads everything the server sends it."""

    ws: ClientConnection
    room: int
    reader: asyncio.Task[None] | None = None
    leaving: bool = False  # set before we close it, so that its end is not counted as an error


@dataclass
class Sample:
    """One reading of the server, taken every interval."""

    minute: float
    rss_mib: float
    tasks: int
    connections: int
    handlers: int
    gc_objects: int
    gc_collected: int


@dataclass
class Soak:
    """The client side: keeps ``target`` connections open and busy until ``stop_at``."""

    port: int
    target: int
    rooms: int
    rate: float
    churn: float
    counters: Counters = field(default_factory=Counters)
    live: list[Client] = field(default_factory=list)
    opening: int = 0
    background: set[asyncio.Task[None]] = field(default_factory=set)

    # -- connections -----------------------------------------------------------------------------------

    async def open_one(self) -> None:
        """Open a connection in a random room, wait for its welcome, then start draining it."""
        room = random.randrange(self.rooms)
        try:
            # max_queue=None: the client buffers whatever arrives, so it never pushes back on the server.
            ws = await connect(f"ws://{HOST}:{self.port}/soak/ws/{room}", open_timeout=TIMEOUT, max_queue=None)
        except (OSError, asyncio.TimeoutError, WebSocketException):
            self.counters.errors += 1
            return
        try:
            # The first frame (the join handler's welcome, or a broadcast to the room) comes once the server has
            # joined the connection: from then on it counts it.
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        except (asyncio.TimeoutError, ConnectionClosed):
            self.counters.errors += 1
            ws.transport.abort()
            return
        self.counters.connects += 1
        self.counters.received += 1
        client = Client(ws, room)
        client.reader = asyncio.create_task(self.read(client))
        self.live.append(client)

    async def read(self, client: Client) -> None:
        """Drain every frame of ``client`` until it closes; a close we did not ask for is an error."""
        # No timeout of its own: the client's keepalive pings end it if the server goes silent, and the
        # teardown cancels whatever still runs.
        try:
            async for text in client.ws:
                self.counters.received += 1
                if isinstance(text, str) and '"errors"' in text:  # an error frame: cheaper than decoding all
                    self.counters.errors += 1
        except ConnectionClosed:
            pass
        if not client.leaving:
            self.counters.errors += 1
            with contextlib.suppress(ValueError):
                self.live.remove(client)  # the churn loop opens a replacement

    async def close_cleanly(self, client: Client) -> None:
        """Close with a close frame and wait for the server's answer."""
        try:
            await asyncio.wait_for(client.ws.close(), TIMEOUT)
        except (asyncio.TimeoutError, OSError):
            self.counters.errors += 1
            client.ws.transport.abort()
            return
        self.counters.clean_closes += 1

    def leave_one(self) -> None:
        """Take a random connection away: half the time cleanly, else by dropping the TCP connection."""
        if not self.live:
            return
        client = self.live.pop(random.randrange(len(self.live)))
        client.leaving = True
        if random.random() < 0.5:
            self.spawn(self.close_cleanly(client))
        else:
            # No close frame: the server must notice the TCP close and clean up on its own.
            client.ws.transport.abort()
            self.counters.abrupt_closes += 1

    def top_up(self) -> None:
        """Start opening connections until ``target`` are open or on the way, a bounded number at a time."""
        missing = self.target - len(self.live) - self.opening
        for _ in range(max(0, min(missing, MAX_OPENING - self.opening))):
            self.opening += 1
            self.spawn(self.open_counted())

    async def open_counted(self) -> None:
        try:
            await self.open_one()
        finally:
            self.opening -= 1

    def spawn(self, coroutine: Any) -> None:
        """Run ``coroutine`` in the background, keeping a reference until it ends."""
        task = asyncio.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def ramp_up(self, timeout: float) -> None:
        """Open the first ``target`` connections, or give up after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.live) < self.target:
            if time.monotonic() > deadline:
                raise SoakFailed(f"only {len(self.live)} of {self.target} connections opened in {timeout:.0f}s")
            self.top_up()
            await asyncio.sleep(TICK)

    async def close_all(self) -> None:
        """Close every connection cleanly (bounded), then stop whatever still runs in the background."""
        # Let the opens still under way finish first (each is bounded): one cancelled just after its handshake
        # would leave a connection open that the server goes on counting.
        if self.background:
            await asyncio.wait(self.background, timeout=2 * TIMEOUT)
        clients, self.live = self.live, []
        for client in clients:
            client.leaving = True
        await asyncio.gather(*(self.close_cleanly(client) for client in clients))
        leftovers = [*self.background, *(client.reader for client in clients if client.reader is not None)]
        for task in leftovers:
            task.cancel()
        await asyncio.wait_for(asyncio.gather(*leftovers, return_exceptions=True), TIMEOUT)

    # -- load ------------------------------------------------------------------------------------------

    async def send_one(self) -> None:
        """Send one message from a random connection: a broadcast to its room or an echo, half and half."""
        client = random.choice(self.live)
        action = "say" if random.random() < 0.5 else "echo"
        try:
            await asyncio.wait_for(client.ws.send(f'{{"action": "{action}", "text": "soak"}}'), TIMEOUT)
        except ConnectionClosed:
            if not client.leaving:
                self.counters.errors += 1
            return
        except asyncio.TimeoutError:
            self.counters.errors += 1
            return
        self.counters.sent += 1

    async def traffic(self, stop_at: float) -> None:
        """Send ``rate`` messages a second until ``stop_at``, spread evenly over the ticks."""
        owed, last = 0.0, time.monotonic()
        while (asleep := time.monotonic()) < stop_at:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            # A late wakeup means the client itself is busy: the figure shows whether the client kept up.
            self.counters.max_lag = max(self.counters.max_lag, now - asleep - TICK)
            owed += self.rate * (now - last)
            last = now
            while owed >= 1 and self.live:
                owed -= 1
                await self.send_one()

    async def churn_loop(self, stop_at: float) -> None:
        """Replace ``churn`` connections a second until ``stop_at``; also replaces any the server dropped."""
        owed, last = 0.0, time.monotonic()
        while time.monotonic() < stop_at:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            owed += self.churn * (now - last)
            last = now
            while owed >= 1:
                owed -= 1
                self.leave_one()
            self.top_up()


# -- the server ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(port: int, url: str, namespace: str, rooms: int) -> subprocess.Popen[bytes]:
    """Start uvicorn serving ``soak_app`` from the repository root, so it runs this checkout's library."""
    env = {**os.environ, "FASTAPI_CHANNELS_URL": url, "SOAK_NAMESPACE": namespace, "SOAK_ROOMS": str(rooms)}
    command = [sys.executable, "-m", "uvicorn", "benchmarks.soak_app:app", "--host", HOST, "--port", str(port)]
    server = subprocess.Popen([*command, "--log-level", "warning", "--no-access-log"], cwd=REPO, env=env)
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return server
        if server.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise SoakFailed("uvicorn did not start")
        time.sleep(0.05)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(TIMEOUT)


def rss_mib(pid: int) -> float:
    """Read the resident set size of process ``pid`` from ``/proc``, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise RuntimeError(f"no VmRSS for process {pid}")


def fetch_stats(port: int) -> dict[str, int]:
    """Ask the server for its task count, live connections and gc object count."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/soak/stats", timeout=TIMEOUT) as response:
        stats: dict[str, int] = json.load(response)
        return stats


async def read_stats(server: subprocess.Popen[bytes], port: int) -> dict[str, int]:
    """Fetch the server's stats without stopping the clients: a blocking request, in a thread."""
    try:
        return await asyncio.to_thread(fetch_stats, port)
    except OSError as exc:  # refused, reset or timed out
        raise SoakFailed(f"the server did not answer /soak/stats ({exc}); exit code {server.poll()}") from exc


async def take_sample(server: subprocess.Popen[bytes], port: int, started: float) -> Sample:
    """Read the server's stats and RSS, stamped with the minutes since ``started``."""
    stats = await read_stats(server, port)
    minute = (time.monotonic() - started) / 60
    # The RSS is read after the stats request, whose full collection has just freed the cyclic garbage.
    rss = rss_mib(server.pid)
    return Sample(
        minute,
        rss,
        stats["tasks"],
        stats["connections"],
        stats["handlers"],
        stats["gc_objects"],
        stats["gc_collected"],
    )


# -- reporting -----------------------------------------------------------------------------------------


def report_line(sample: Sample, soak: Soak) -> str:
    """One line per interval: the server's figures, then the client's (``opening``: handshakes under way)."""
    counters = soak.counters
    return (
        f"min={sample.minute:6.2f} rss={sample.rss_mib:7.1f}MiB tasks={sample.tasks:5d} "
        f"server_conns={sample.connections:5d} handlers={sample.handlers:5d} "
        f"gc={sample.gc_objects:7d} freed={sample.gc_collected:6d} | "
        f"open={len(soak.live):5d} opening={soak.opening:2d} sent={counters.sent} recv={counters.received} "
        f"connects={counters.connects} clean={counters.clean_closes} abrupt={counters.abrupt_closes} "
        f"errors={counters.errors} client_lag={counters.max_lag * 1000:.0f}ms"
    )


def summarize(samples: list[Sample], warmup: float) -> list[str]:
    """RSS at minute 10 and at the end, growth per 10 minutes after the warm-up, task counts after the warm-up."""
    lines = []
    at_ten = next((sample for sample in samples if sample.minute >= 10 - 1e-6), None)
    ten = f"{at_ten.rss_mib:.1f} MiB" if at_ten else "n/a (run shorter than 10 minutes)"
    end = samples[-1]
    lines.append(f"rss at minute 10: {ten}; at the end (minute {end.minute:.1f}): {end.rss_mib:.1f} MiB")
    steady = [sample for sample in samples if sample.minute >= warmup]
    if len(steady) < 2:
        lines.append(f"growth: n/a (fewer than 2 samples after the {warmup:g}-minute warm-up)")
        return lines
    # A least-squares slope over every sample rather than end minus start: one noisy sample cannot swing it.
    slope, _ = statistics.linear_regression([s.minute for s in steady], [s.rss_mib for s in steady])
    verdict = "within" if slope * 10 < 1 else "ABOVE"
    lines.append(
        f"rss growth after the {warmup:g}-minute warm-up: {slope * 10:+.3f} MiB per 10 minutes "
        f"({verdict} the 1 MiB goal; {len(steady)} samples)"
    )
    tasks = [sample.tasks for sample in steady]
    lines.append(f"server tasks after the warm-up: min {min(tasks)}, max {max(tasks)}")
    return lines


async def settle(server: subprocess.Popen[bytes], port: int) -> dict[str, int]:
    """Wait until the server holds no connections (bounded), and return its last stats."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        stats = await read_stats(server, port)
        if stats["connections"] == stats["handlers"] == 0 or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.2)


# -- the run -------------------------------------------------------------------------------------------


def sample_times(minutes: float, interval: float) -> list[float]:
    """Seconds after the start at which to report: every ``interval``, and once more at the very end."""
    total = minutes * 60
    count = int(total // interval)
    times = [index * interval for index in range(count + 1)]
    return times if total - times[-1] < 1e-6 else [*times, total]


async def run(args: argparse.Namespace, server: subprocess.Popen[bytes], port: int, warmup: float) -> None:
    """Ramp up, keep the load on for ``--minutes`` while reporting, then leave and summarize."""
    soak = Soak(port, args.connections, args.rooms, args.rate, args.churn)
    await soak.ramp_up(timeout=60 + args.connections / 20)
    started = time.monotonic()
    stop_at = started + args.minutes * 60
    loops = [asyncio.create_task(soak.traffic(stop_at)), asyncio.create_task(soak.churn_loop(stop_at))]
    samples = []
    for offset in sample_times(args.minutes, args.interval):
        await asyncio.sleep(max(0.0, started + offset - time.monotonic()))
        sample = await take_sample(server, port, started)
        samples.append(sample)
        print(report_line(sample, soak), flush=True)
        soak.counters.max_lag = 0.0
    await asyncio.wait_for(asyncio.gather(*loops), TIMEOUT)
    await soak.close_all()
    after = await settle(server, port)
    print(
        f"after every client left: tasks={after['tasks']} server_conns={after['connections']} "
        f"handlers={after['handlers']} gc={after['gc_objects']} rss={rss_mib(server.pid):.1f}MiB"
    )
    for line in summarize(samples, warmup):
        print(line)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the description's paragraphs and show each option's default."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--url", default="memory://", help="broadcast URL: memory:// or redis://host:port")
    parser.add_argument("--connections", type=int, default=1000, help="connections held open")
    parser.add_argument("--rooms", type=int, default=20, help="rooms the connections are spread over")
    parser.add_argument("--rate", type=float, default=200, help="messages per second, all connections together")
    parser.add_argument("--churn", type=float, default=5, help="connections replaced per second")
    parser.add_argument("--minutes", type=float, default=60, help="how long the steady phase lasts")
    parser.add_argument("--interval", type=float, default=60, help="seconds between two report lines")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="minutes left out of the growth figure; None: 5, capped at a quarter of the run",
    )
    args = parser.parse_args()
    if min(args.connections, args.rooms, args.minutes, args.interval) <= 0 or min(args.rate, args.churn) < 0:
        parser.error("--connections, --rooms, --minutes and --interval must be positive; --rate and --churn >= 0")
    # Short runs still get a growth figure: the warm-up never takes more than a quarter of the run.
    warmup = args.warmup if args.warmup is not None else min(5.0, args.minutes / 4)
    namespace = f"soak-{uuid.uuid4().hex[:8]}"  # unique: a shared Redis may serve tests or another soak

    port = free_port()
    try:
        server = start_server(port, args.url, namespace, args.rooms)
    except SoakFailed as exc:
        raise SystemExit(f"soak: {exc}") from None
    print(
        f"backend={args.url} namespace={namespace} connections={args.connections} rooms={args.rooms} "
        f"rate={args.rate:g}/s churn={args.churn:g}/s minutes={args.minutes:g} interval={args.interval:g}s "
        f"warmup={warmup:g}min server_pid={server.pid}",
        flush=True,
    )
    try:
        # The outer bound: ramp-up, the run itself and the teardown, with room to spare.
        bound = 60 + args.connections / 20 + args.minutes * 60 + 120
        asyncio.run(asyncio.wait_for(run(args, server, port, warmup), bound))
    except SoakFailed as exc:
        raise SystemExit(f"soak: {exc}") from None
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
