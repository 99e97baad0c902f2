"""The browser client, fastapi_channels/static/channels.js, in headless Chromium against real uvicorn servers.

Each test loads the page of tests/apps/client_app.py, which imports the client from where ``add_channel`` serves
it, makes clients with ``window.makeClient`` and reads every event they emitted. The restart tests keep history in
a real Redis under a namespace of their own, kill or drain the server, publish through a second server while the
first is down, start it again on the same port, and check that the client has every publication, in order, once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import subprocess
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from fastapi_channels import add_channel, browser
from fastapi_channels.browser import CLIENT_FILES, client_source
from tests.conftest import ROOT, UvicornProcess, free_port
from tests.test_example_browser import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, require_chromium

WAIT = 30.0  # seconds a condition may take in the browser
APP = "tests.apps.client_app:app"
T = TypeVar("T")
# Short delays, so that the reconnects of a test take a fraction of a second each.
FAST_BACKOFF = {"initial": 50, "max": 400, "factor": 2, "jitter": 0.5}


class ClientPage:
    """The test page in one Chromium session: make clients, call them, read their events."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    def load(self, base_url: str) -> None:
        self.driver.get(base_url + "/")
        self.wait(lambda: self.js("return window.ready === true"), "the page to import the client")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def settle(self, expression: str, *args: Any) -> dict[str, Any]:
        """Evaluate ``expression`` (a promise; ``args`` are ``arguments[0]``...) and return how it settled."""
        script = f"const done = arguments[arguments.length - 1]; window.settle(Promise.resolve({expression}), done);"
        result = self.driver.execute_async_script(script, *args)
        assert isinstance(result, dict)
        return result

    def make(self, name: str, path: str, **options: Any) -> None:
        """Make the client ``name`` for ``path`` (it does not connect yet)."""
        self.js("window.makeClient(arguments[0], arguments[1], arguments[2])", name, path, options)

    def connect(self, name: str, path: str, **options: Any) -> dict[str, Any]:
        """Make the client ``name`` and connect it; return how ``connect()`` settled."""
        self.make(name, path, **options)
        return self.settle(f"window.clients[{json.dumps(name)}].client.connect()")

    def call(self, name: str, method: str, *args: Any) -> dict[str, Any]:
        """Call ``client.<method>(...args)`` and return how its promise settled."""
        return self.settle(f"window.clients[{json.dumps(name)}].client.{method}(...arguments[0])", list(args))

    def events(self, name: str, *types: str) -> list[dict[str, Any]]:
        """The events of client ``name`` (of these types, if given), oldest first: ``{"type", "detail"}``."""
        events = self.js("return window.clients[arguments[0]].events", name)
        assert isinstance(events, list)
        return [event for event in events if not types or event["type"] in types]

    def details(self, name: str, kind: str) -> list[dict[str, Any]]:
        return [event["detail"] for event in self.events(name, kind)]

    def state(self, name: str) -> str:
        return str(self.js("return window.clients[arguments[0]].client.state", name))

    def wait(self, condition: Callable[[], T], what: str) -> T:
        return WebDriverWait(self.driver, WAIT).until(lambda _: condition(), f"waited {WAIT:.0f} s for {what}")

    def wait_numbers(self, name: str, count: int, channel: str = "lobby") -> list[int]:
        """Wait until client ``name`` handled ``count`` publications of ``channel``; return their numbers in order."""
        script = "return (window.clients[arguments[0]].numbers[arguments[1]] ?? []).length"
        self.wait(lambda: self.js(script, name, channel) >= count, f"{count} publications of {channel}")
        numbers = self.js("return window.clients[arguments[0]].numbers[arguments[1]]", name, channel)
        assert isinstance(numbers, list)
        return numbers


@pytest.fixture
def open_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[[], ClientPage]]:
    """Start headless Chromium sessions with fresh profiles; quit them at the end."""
    require_chromium()
    monkeypatch.setenv("SE_OFFLINE", "true")
    drivers: list[WebDriver] = []

    def open_page() -> ClientPage:
        options = Options()
        options.binary_location = str(CHROMIUM)
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / f'profile-{len(drivers)}'}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_script_timeout(WAIT)
        drivers.append(driver)
        return ClientPage(driver)

    try:
        yield open_page
    finally:
        for driver in drivers:
            driver.quit()


@contextlib.contextmanager
def serve(app: str = APP, *, env: dict[str, str] | None = None, port: int | None = None) -> Iterator[UvicornProcess]:
    """Serve ``app`` with a real uvicorn process (on ``port``, if given) until the block ends."""
    server = UvicornProcess(app, env=env, port=port)
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.close()


def post(url: str) -> Any:
    request = urllib.request.Request(url, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def redis_env(redis_url: str) -> dict[str, str]:
    """Settings for client_app with history in the real Redis, under a namespace of this test's own."""
    return {"CLIENT_URL": redis_url, "CLIENT_NAMESPACE": f"test-client-{uuid.uuid4().hex}"}


# -- serving the client ----------------------------------------------------------------------------------


def test_client_files_served_with_etag_and_revalidated() -> None:
    app = FastAPI()
    add_channel(app)
    with TestClient(app) as client:
        script = client.get("/fastapi-channels/channels.js")
        types = client.get("/fastapi-channels/channels.d.ts")
        again = client.get("/fastapi-channels/channels.js", headers={"If-None-Match": script.headers["etag"]})
    assert script.status_code == 200 and script.headers["content-type"] == CLIENT_FILES["channels.js"]
    assert script.content == client_source("channels.js") and b"export class ChannelClient" in script.content
    assert script.headers["cache-control"] == "no-cache"
    assert script.headers["x-typescript-types"] == "/fastapi-channels/channels.d.ts"
    assert types.status_code == 200 and b"export declare class ChannelClient" in types.content
    assert again.status_code == 304 and again.content == b""


def test_client_etag_is_the_files_digest_worked_out_once_and_served_as_it_is() -> None:
    app = FastAPI()
    add_channel(app)
    with TestClient(app) as client:
        for name, url in (
            ("channels.js", "/fastapi-channels/channels.js"),
            ("channels.d.ts", "/fastapi-channels/channels.d.ts"),
        ):
            etag = browser.client_etag(name)
            assert etag == f'"{hashlib.sha256(client_source(name)).hexdigest()[:32]}"'
            assert browser.client_etag(name) is etag  # kept, not worked out again per request
            assert client.get(url).headers["etag"] == etag


def test_client_url_elsewhere_or_none_and_a_route_of_the_app_wins() -> None:
    moved, off = FastAPI(), FastAPI()
    add_channel(moved, client_url="/js/live.js")
    add_channel(off, client_url=None)

    @moved.get("/js/live.d.ts")
    async def own_types() -> dict[str, str]:
        return {"mine": "yes"}

    with TestClient(moved) as client:
        assert client.get("/js/live.js").content == client_source("channels.js")
        assert client.get("/js/live.d.ts").json() == {"mine": "yes"}
        assert client.get("/fastapi-channels/channels.js").status_code == 404
    with TestClient(off) as client:
        assert client.get("/fastapi-channels/channels.js").status_code == 404


@pytest.mark.parametrize("url", ["channels.js", "/channels", "/client/.js", "/x.mjs", 42])
def test_client_url_not_a_js_path_raises_before_changing_the_app(url: Any) -> None:
    app = FastAPI()
    with pytest.raises(ValueError, match="client_url must be a path ending in '.js'"):
        add_channel(app, client_url=url)
    assert not hasattr(app.state, "fastapi_channels")


def test_client_files_ship_in_the_package_and_stay_small() -> None:
    source = client_source("channels.js").decode()
    assert len(source.splitlines()) <= 420  # readable in one sitting: a client, not a framework
    assert "import " not in source.split("export const RETRY_CODES")[0]  # no dependencies
    with pytest.raises(ValueError, match="has no file 'app.js'"):
        client_source("app.js")


def test_client_logic_in_node_backoff_close_policy_positions_gaps_and_subscriptions() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("The client's unit tests need Node.js 20 or later: apt-get install nodejs.", pytrace=False)
    result = subprocess.run(
        [node, "--test", str(ROOT / "tests" / "js" / "channels.test.mjs")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout and "# pass 12" in result.stdout


def test_client_declarations_name_every_export_of_the_module() -> None:
    script, types = client_source("channels.js").decode(), client_source("channels.d.ts").decode()
    exported = set(re.findall(r"^export (?:const|function|class) (\w+)", script, re.M))
    declared = set(re.findall(r"^export declare (?:const|function|class) (\w+)", types, re.M))
    assert (
        exported
        == declared
        == {"RETRY_CODES", "RESYNC_CODE", "shouldRetry", "backoffDelay", "ChannelError", "ChannelClient"}
    )
    methods = set(re.findall(r"^  (?:async )?([a-z]\w*)\(", script, re.M)) - {"constructor"}
    for method in methods:
        assert re.search(rf"^  {method}[<(]", types, re.M), f"channels.d.ts does not declare {method}()"
    getters = set(re.findall(r"^  get (\w+)\(\)", script, re.M))
    for getter in getters:
        assert re.search(rf"^  readonly {getter}: ", types, re.M), f"channels.d.ts does not declare {getter}"


# -- requests, replies and errors ------------------------------------------------------------------------


def test_client_request_resolves_with_reply_and_rejects_with_error_frame(open_page: Callable[[], ClientPage]) -> None:
    page = open_page()
    with serve() as server:
        page.load(server.url)
        page.make("offline", "/room/lobby")
        refused = page.call("offline", "request", "echo", {"text": "hi"})
        assert refused["ok"] is False and refused["isChannelError"] and "Not connected (idle)" in refused["message"]

        assert page.connect("alice", "/room/lobby")["ok"] is True
        assert page.call("alice", "request", "echo", {"text": "hi"}) == {"ok": True, "value": {"text": "hi"}}

        denied = page.call("alice", "request", "refuse")
        assert denied["ok"] is False and denied["isChannelError"] and denied["code"] == 1008
        frame = denied["frame"]
        assert frame["status"] == "bad" and frame["action"] == "refuse" and frame["close"] is False
        assert denied["message"] == frame["errors"]

        invalid = page.call("alice", "request", "echo", {"text": ["not", "a", "string"]})
        assert invalid["code"] == 1007 and invalid["frame"]["detail"][0]["loc"] == ["payload", "text"]

        silent = page.call("alice", "request", "quiet", {}, {"timeout": 300})
        assert silent["ok"] is False and silent["timeout"] is True and "No reply to 'quiet'" in silent["message"]

        # Each request had its own request_id, echoed by the answer that settled it.
        sent = [detail["frame"] for detail in page.details("alice", "send")]
        assert [frame["request_id"] for frame in sent] == [1, 2, 3, 4]
        # send() waits for nothing: its error frame carries no request_id and becomes an "error" event.
        page.js("window.clients.alice.client.send('refuse', {})")
        errors = page.wait(lambda: page.details("alice", "error"), "the error event")
        assert errors[0]["frame"]["action"] == "refuse" and errors[0]["frame"]["request_id"] is None
        assert page.state("alice") == "open"


# -- closes, reconnects and resuming ---------------------------------------------------------------------


def test_client_denied_with_1008_reads_why_and_does_not_retry(open_page: Callable[[], ClientPage]) -> None:
    page = open_page()
    with serve() as server:
        page.load(server.url)
        # The server accepts the socket so that the client can read why, then closes it.
        assert page.connect("denied", "/closed", backoff=FAST_BACKOFF)["ok"] is True
        page.wait(lambda: page.details("denied", "close"), "the close")
        kinds = [event["type"] for event in page.events("denied", "open", "error", "close", "reconnecting")]
        assert kinds == ["open", "error", "close"]
        error, close = page.details("denied", "error")[0], page.details("denied", "close")[0]
        assert error["frame"]["code"] == 1008 and error["frame"]["close"] is True
        assert close["code"] == 1008 and close["willRetry"] is False
        # No timer is left to try again: the client is stopped.
        assert page.state("denied") == "closed"


def test_client_answers_heartbeat_pings_and_stays_open(open_page: Callable[[], ClientPage]) -> None:
    page = open_page()
    with serve("tests.apps.client_app:heartbeat_app") as server:  # a ping after 0.3 s of silence, closed after 0.6 s
        page.load(server.url)
        assert page.connect("steady", "/room/lobby")["ok"] is True

        def pings() -> int:
            return sum(1 for detail in page.details("steady", "frame") if detail["frame"].get("type") == "ping")

        page.wait(lambda: pings() >= 4, "four pings")
        pongs = [detail["frame"] for detail in page.details("steady", "send")]
        assert len(pongs) >= 3 and all(frame == {"action": "pong"} for frame in pongs)
        # A client that did not answer would have been closed with 4408 before the third ping.
        assert page.details("steady", "close") == [] and page.state("steady") == "open"


class Publisher:
    """Publish numbered messages through a server, one after the other, from a thread, until stopped."""

    def __init__(self, base_url: str, *rooms: str) -> None:
        self.urls = [f"{base_url}/publish/{room}" for room in rooms]
        self.sent: list[int] = []  # each number went to every room
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def publish(self, count: int) -> None:
        for _ in range(count):
            self._next()

    def _next(self) -> None:
        number = len(self.sent) + 1
        for url in self.urls:
            post(f"{url}?n={number}")
        self.sent.append(number)

    def _run(self) -> None:
        # At most about 50 a second: history (1000 kept) covers a restart that takes several seconds.
        while not self._stop.wait(0.02):
            self._next()

    def __enter__(self) -> Publisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(20)


@pytest.mark.parametrize("how", ["killed", "drained"])
def test_client_server_restarted_resumes_every_publication_in_order_once(
    open_page: Callable[[], ClientPage], redis_env: dict[str, str], how: str
) -> None:
    page = open_page()
    port = free_port()
    with serve(env=redis_env) as publisher_server:
        room = Publisher(publisher_server.url, "lobby", "side")
        first = UvicornProcess(APP, env=redis_env, port=port)
        try:
            first.wait_until_serving()
            page.load(first.url)
            # The connection's own channel resumes through the URL, the subscribed one through its subscribe frame.
            assert page.connect("follower", "/room/lobby", backoff=FAST_BACKOFF)["ok"] is True
            assert page.call("follower", "subscribe", "side") == {"ok": True, "value": {"channel": "side"}}
            room.publish(10)
            assert page.wait_numbers("follower", 10) == page.wait_numbers("follower", 10, "side") == list(range(1, 11))
            with room:  # publishing all along, through the other server
                page.wait(lambda: len(room.sent) >= 15, "publications while connected")
                if how == "killed":
                    first.kill()  # no goodbye: the browser sees 1006
                else:
                    post(f"{first.url}/drain")  # a drain frame with a delay, then 1012
                    first.stop()
                page.wait(lambda: page.details("follower", "reconnecting"), "the client to try again")
                sent_while_down = len(room.sent)
                page.wait(lambda: len(room.sent) >= sent_while_down + 10, "publications while the server is down")
                first.close()
                first = UvicornProcess(APP, env=redis_env, port=port)
                first.wait_until_serving()
                page.wait(lambda: len(page.details("follower", "resume")) >= 4, "the client to resume both rooms")
                resumed_at = len(room.sent)
                page.wait(lambda: len(room.sent) >= resumed_at + 10, "publications after the restart")
            numbers = page.wait_numbers("follower", len(room.sent))
            side = page.wait_numbers("follower", len(room.sent), "side")
            assert page.state("follower") == "open"
            client = "window.clients.follower.client"
            assert page.js(f"return {client}.position('lobby')")["offset"] == len(room.sent)
            # The next connection names the position it has reached in the query string.
            assert f"offset={len(room.sent)}&epoch=" in page.js(f"return {client}.url")
        finally:
            first.close()
    assert numbers == side == room.sent == list(range(1, len(room.sent) + 1))
    for channel in ("lobby", "side"):
        resumes = [resume for resume in page.details("follower", "resume") if resume["channel"] == channel]
        assert [resume["recovered"] for resume in resumes] == [False, True]  # a first visit, then all was there
        assert resumes[1]["epoch"] == resumes[0]["epoch"]
    joins = [detail["channel"] for detail in page.details("follower", "join")]
    assert joins == ["side", "side"]  # subscribed again after the restart, by itself
    closes = page.details("follower", "close")
    assert closes[0]["willRetry"] is True and closes[0]["code"] == (1006 if how == "killed" else 1012)
    # Every delay stays within the backoff; after a drain the first one is the delay the server asked for.
    delays = [detail["delay"] for detail in page.details("follower", "reconnecting")]
    if how == "drained":
        drained = page.details("follower", "drain")[0]
        assert 200 <= delays[0] == round(drained["reconnectIn"] * 1000) <= 400
    assert all(delay <= FAST_BACKOFF["max"] for delay in delays[1:])


def test_client_subscribe_and_unsubscribe_extra_channels_on_one_connection(open_page: Callable[[], ClientPage]) -> None:
    page = open_page()
    with serve() as server:
        page.load(server.url)
        assert page.connect("reader", "/room/lobby")["ok"] is True
        assert page.call("reader", "subscribe", "side") == {"ok": True, "value": {"channel": "side"}}
        page.wait(lambda: [r for r in page.details("reader", "resume") if r["channel"] == "side"], "the side resume")
        for room, number in (("side", 1), ("lobby", 2), ("side", 3)):
            post(f"{server.url}/publish/{room}?n={number}")
        assert page.wait_numbers("reader", 2, "side") == [1, 3]
        assert page.wait_numbers("reader", 1, "lobby") == [2]
        assert page.js("return window.clients.reader.client.channels") == ["side"]

        # Subscribing again changes nothing; a refused subscription rejects with the error frame.
        assert page.call("reader", "subscribe", "side")["ok"] is True
        refused = page.call("reader", "subscribe", "x" * 300)
        assert refused["ok"] is False and refused["code"] == 1007 and refused["frame"]["action"] == "subscribe"
        assert page.js("return window.clients.reader.client.channels") == ["side"]
        # The connection's own channel cannot be left.
        own = page.call("reader", "request", "unsubscribe", {"channel": "lobby"})
        assert own["ok"] is False and own["code"] == 1008

        assert page.call("reader", "unsubscribe", "side") == {"ok": True, "value": {"channel": "side"}}
        assert page.js("return window.clients.reader.client.channels") == []
        assert page.js("return window.clients.reader.client.position('side')") is None
        # Published in this order, the side message would arrive before the lobby one: it never comes.
        post(f"{server.url}/publish/side?n=4")
        post(f"{server.url}/publish/lobby?n=5")
        assert page.wait_numbers("reader", 2, "lobby") == [2, 5]
        assert page.wait_numbers("reader", 2, "side") == [1, 3]
        assert [event["type"] for event in page.events("reader", "join", "leave")] == ["join", "leave"]
