"""The demo page in real headless Chromium sessions, driven by Selenium against the demo served by uvicorn.

It needs Debian's Chromium and its ChromeDriver (``apt-get install chromium chromium-driver``) and fails, never
skips, without them; nothing here downloads a browser or a driver. Screenshots of every session are saved in
``tests/artifacts/``.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from example.app import JOIN_NOTICE, LEAVE_NOTICE, NAMESPACE_VARIABLE, URL_VARIABLE
from fastapi_channels.exceptions import PermissionDenied
from tests.conftest import ROOT, UvicornProcess, free_port, run_uvicorn

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "tests" / "artifacts"
# The flags Chromium needs on a machine without a display, a sandbox or a network beyond loopback.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WAIT = 20.0  # seconds a condition may take; the page polls the live count every 3 s
T = TypeVar("T")


class DemoPage:
    """One browser session on the demo page, with the few moves a person makes on it."""

    def __init__(self, driver: WebDriver, name: str) -> None:
        self.driver = driver
        self.name = name
        self.open = True

    def wait(self, condition: Callable[[WebDriver], T], what: str) -> T:
        """Wait until ``condition`` returns something truthy; fail saying ``what`` was awaited."""
        return WebDriverWait(self.driver, WAIT).until(condition, f"{self.name}: waited {WAIT:.0f} s for {what}")

    def element(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def entries(self, kind: str, action: str | None = None) -> list[WebElement]:
        """The log entries of one kind (broadcast, own, error, limited, notice, closed, sent, reply)."""
        selector = f"#log .entry[data-kind='{kind}']" + (f"[data-action='{action}']" if action else "")
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def entry_texts(self, kind: str, action: str | None = None) -> list[str]:
        return [entry.find_element(By.CSS_SELECTOR, ".entry-body").text for entry in self.entries(kind, action)]

    def wait_entries(self, kind: str, count: int, action: str | None = None) -> list[WebElement]:
        """Wait until the log holds ``count`` entries of ``kind`` (for ``action``); return them, newest first."""
        self.wait(lambda _: len(self.entries(kind, action)) >= count, f"{count} {kind} entries ({action})")
        entries = self.entries(kind, action)
        assert len(entries) == count, [entry.text for entry in entries]
        return entries

    def state(self) -> str:
        return self.element("body").get_attribute("data-state") or ""

    def count(self) -> str | None:
        return self.element("#count").get_attribute("data-connections")

    def wait_count(self, connections: int) -> None:
        self.wait(lambda _: self.count() == str(connections), f"the live count to show {connections}")

    def join(self, base_url: str, room: str = "/group") -> None:
        """Load the page, fill in the name, pick ``room`` and connect."""
        self.driver.get(base_url + "/explore")
        self.element("#user").send_keys(self.name)
        Select(self.element("#room")).select_by_value(room)
        self.element("#connect-button").click()
        self.wait(lambda _: self.state() == "open", "the connection to open")

    def click_action(self, action: str) -> None:
        self.element(f"#action-buttons button[data-action='{action}']").click()

    def screenshot(self, label: str) -> None:
        """Save the whole page, not just the window, as ``tests/artifacts/demo-<label>.png``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        height = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
        # The whole window's width: captured beyond the viewport, the page is laid out without a scrollbar.
        width = self.driver.execute_script("return window.innerWidth")
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
        (ARTIFACTS / f"demo-{label}.png").write_bytes(base64.b64decode(shot["data"]))

    def quit(self) -> None:
        if self.open:
            self.open = False
            self.driver.quit()


def require_chromium() -> None:
    """Fail, naming the packages to install, when Debian's Chromium or ChromeDriver is missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(
            f"The browser test needs Debian's Chromium and ChromeDriver; missing: {', '.join(missing)}. "
            "Install them with `apt-get install chromium chromium-driver`.",
            pytrace=False,
        )


@pytest.fixture
def demo_url() -> Iterator[str]:
    """The demo served by a real uvicorn process on memory://, fresh for each test (and its rate limits)."""
    with run_uvicorn("example.app:app", env={URL_VARIABLE: "memory://"}) as base_url:
        yield base_url


@pytest.fixture
def open_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., DemoPage]]:
    """Start headless Chromium sessions, each with a fresh profile; quit those still open at the end."""
    require_chromium()
    # Selenium Manager is skipped when the driver path is given; offline mode makes sure it never downloads.
    monkeypatch.setenv("SE_OFFLINE", "true")
    pages: list[DemoPage] = []

    def open_page(name: str, width: int = 1100, height: int = 1500) -> DemoPage:
        options = Options()
        options.binary_location = str(CHROMIUM)
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / f'profile-{name}'}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        page = DemoPage(driver, name)
        pages.append(page)
        driver.set_window_size(width, height)
        return page

    try:
        yield open_page
    finally:
        for page in pages:
            page.quit()


def test_demo_explorer_two_browsers_chat_see_own_errors_and_leave_notice(
    demo_url: str, open_page: Callable[..., DemoPage]
) -> None:
    alice = open_page("alice")
    bob = open_page("bob")
    alice.join(demo_url)
    assert alice.entry_texts("notice") == [JOIN_NOTICE]
    assert "1 message per 3 s" in alice.element("#room-about").text  # the room's description, from the app
    alice.wait_count(1)
    bob.join(demo_url)
    assert bob.wait_entries("notice", 1)[0].text.endswith(JOIN_NOTICE)
    # The live count: bob's page reads 2 at once, alice's page catches up by polling.
    bob.wait_count(2)
    alice.wait_count(2)

    # Alice says hello twice in a row: the room allows one message per 3 s per client, so the second one
    # is refused with an error frame that tells alice, and only alice, when to try again.
    alice.element("#message").send_keys("hello bob")
    alice.element("#send-button").click()
    alice.element("#send-button").click()
    assert bob.wait_entries("broadcast", 1, "message")[0].get_attribute("data-user") == "alice"
    assert bob.entry_texts("broadcast", "message") == ["alice: hello bob"]
    assert alice.wait_entries("own", 1, "message")[0].get_attribute("data-user") == "alice"
    limited = alice.wait_entries("limited", 1, "message")[0]
    assert 0 < float(limited.get_attribute("data-retry-after") or 0) <= 3
    assert "Retry in" in limited.text and "try again in" in limited.text and "only you see this" in limited.text

    # A typed action: its reply is what it returned, for alice alone.
    alice.click_action("shout")
    assert alice.wait_entries("reply", 1, "shout")[0].find_element(By.CSS_SELECTOR, ".entry-body").text == "HELLO BOB"

    # An action nobody has the permission for: bob sees its error frame, the socket stays open.
    bob.click_action("error_false")
    denied = bob.wait_entries("error", 1, "error_false")[0]
    assert denied.find_element(By.CSS_SELECTOR, ".entry-body").text == PermissionDenied.default_error_msg
    assert "code 1008" in denied.text and "still connected" in denied.text
    assert bob.state() == "open"

    # error_true closes bob's socket with 1008: the page shows the drop and a Reconnect button.
    bob.click_action("error_true")
    bob.wait(lambda _: bob.state() == "closed", "the page to show the dropped connection")
    banner = bob.element("#banner")
    assert banner.is_displayed() and "1008" in banner.text
    assert bob.element("#reconnect-button").is_displayed()
    assert alice.wait_entries("notice", 2)[0].text.endswith(LEAVE_NOTICE)
    bob.element("#reconnect-button").click()
    bob.wait(lambda _: bob.state() == "open", "the connection to reopen")
    bob.wait_entries("notice", 2)
    assert not banner.is_displayed()
    alice.wait_count(2)

    # Error frames and replies reach their sender only: no page shows the other one's.
    assert bob.entries("limited") == [] and bob.entries("reply") == []
    assert alice.entries("error") == []
    assert len(bob.entries("error")) == 2  # error_false and error_true
    alice.screenshot("alice")
    bob.screenshot("bob")

    bob.quit()
    assert alice.wait_entries("notice", 3)[0].text.endswith(LEAVE_NOTICE)
    alice.wait_count(1)
    alice.screenshot("alice-after-bob-left")


def test_demo_explorer_phone_width_no_horizontal_overflow(demo_url: str, open_page: Callable[..., DemoPage]) -> None:
    phone = open_page("phone", width=375, height=800)
    phone.driver.get(demo_url + "/explore")
    width = phone.driver.execute_script("return window.innerWidth")
    assert isinstance(width, int) and width <= 375

    def overflow() -> list[int]:
        sizes = phone.driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
        )
        assert isinstance(sizes, list)
        return [int(size) for size in sizes]

    scroll, inner, body = overflow()
    assert scroll <= inner and body <= inner, "the empty page is wider than a phone"

    phone.element("#user").send_keys("phone")
    Select(phone.element("#room")).select_by_value("/group")
    phone.element("#connect-button").click()
    phone.wait(lambda _: phone.state() == "open", "the connection to open")
    # A long word, an error frame and a dropped connection: the entries and the banner must wrap, not overflow.
    phone.element("#message").send_keys("a-very-long-word-without-any-space-" * 4)
    phone.element("#send-button").click()
    phone.wait_entries("own", 1, "message")
    phone.click_action("error_false")
    phone.wait_entries("error", 1, "error_false")
    phone.click_action("error_true")
    phone.wait(lambda _: phone.state() == "closed", "the page to show the dropped connection")
    assert phone.element("#banner").is_displayed()
    scroll, inner, body = overflow()
    assert scroll <= inner and body <= inner, f"the page is {scroll} px wide in a {inner} px window"
    phone.screenshot("phone")


def test_demo_explorer_server_gone_shows_drop_and_retries(open_page: Callable[..., DemoPage]) -> None:
    page = open_page("dropped")
    with run_uvicorn("example.app:app", env={URL_VARIABLE: "memory://"}) as base_url:
        page.join(base_url)
        page.wait_count(1)
    # The server is gone: the page says so and tries again by itself, with a growing delay.
    page.wait(lambda _: page.state() == "closed", "the page to show the dropped connection")
    banner = page.element("#banner")
    assert banner.is_displayed() and page.element("#reconnect-button").is_displayed()
    page.wait(lambda _: "attempt 2 of" in banner.text, "a second automatic attempt")
    assert "Reconnecting in" in banner.text
    assert len(page.entries("closed")) >= 2
    # The first drop is uvicorn's shutdown (1012, or 1006 if it could not say goodbye), told in words.
    first_drop = page.entry_texts("closed")[-1]
    assert "the server is restarting" in first_drop or "the network or the server went away" in first_drop
    assert page.element("#connect-button").is_displayed() and not page.element("#send-button").is_enabled()
    page.screenshot("server-gone")
    page.element("#stop-retry-button").click()
    assert banner.text.startswith("Stopped reconnecting") and page.element("#reconnect-button").is_displayed()


# -- the chat, built on the browser client ---------------------------------------------------------------


class ChatPage:
    """One person in the chat, in a Chromium session of their own."""

    def __init__(self, page: DemoPage) -> None:
        self.page = page
        self.driver = page.driver
        self.name = page.name

    def sign_in(self, base_url: str) -> None:
        """Load the chat, sign in under the session's name and wait until the connection is open."""
        self.driver.get(base_url + "/")
        self.type_name(self.name)
        self.page.wait(lambda _: self.state() == "open", "the chat to connect")
        assert self.page.element("#signed-in-as").text == self.name

    def type_name(self, name: str) -> None:
        field = self.page.element("#signin-name")
        field.clear()
        field.send_keys(name)
        self.page.element("#signin-button").click()

    def state(self) -> str:
        # Read by script: right after signing in the page reloads, and an element found before would be stale.
        return str(self.driver.execute_script("return document.body?.dataset.state ?? ''"))

    def members(self) -> list[str]:
        # Read in one script: the page re-renders its lists, which would leave Selenium holding stale elements.
        script = "return [...document.querySelectorAll('#members li')].map((li) => li.dataset.user)"
        return list(self.driver.execute_script(script))

    def wait_members(self, names: list[str]) -> None:
        self.page.wait(lambda _: self.members() == names, f"the members {names} (now {self.members()})")

    def messages(self, kind: str = "message") -> list[tuple[str, str]]:
        """The (user, text) of the messages shown in the open room, oldest first."""
        script = (
            "return [...document.querySelectorAll(`#messages .msg[data-kind='${arguments[0]}']`)]"
            ".map((li) => [li.dataset.user, li.querySelector('.msg-text').textContent])"
        )
        return [(user, text) for user, text in self.driver.execute_script(script, kind)]

    def wait_messages(self, expected: list[tuple[str, str]], kind: str = "message") -> None:
        self.page.wait(lambda _: self.messages(kind)[-len(expected) :] == expected, f"the messages {expected}")

    def say(self, text: str, to: str | None = None) -> None:
        Select(self.page.element("#recipient")).select_by_value(to or "")
        self.page.element("#message-input").send_keys(text, Keys.ENTER)

    def open_room(self, room: str) -> None:
        self.page.element(f"#rooms button[data-room='{room}']").click()
        self.page.wait(lambda _: f"{room.lstrip('@')}" in self.page.element("#room-title").text, f"the room {room}")

    def unread(self, room: str) -> str:
        badge = self.page.element(f"#rooms button[data-room='{room}'] .unread")
        return badge.text if badge.is_displayed() else ""

    def devlog(self, direction: str, kind: str) -> list[str]:
        script = (
            "const [direction, kind] = arguments;"
            "return [...document.querySelectorAll(`#devlog .frame[data-dir='${direction}'][data-kind='${kind}']`)]"
            ".map((li) => li.querySelector('code').textContent)"
        )
        return list(self.driver.execute_script(script, direction, kind))

    def banner(self) -> str:
        banner = self.page.element("#banner")
        return banner.text if banner.is_displayed() else ""


def test_chat_two_people_talk_whisper_join_a_room_and_see_its_history(
    demo_url: str, open_page: Callable[..., DemoPage]
) -> None:
    alice, bob, carol = (ChatPage(open_page(name)) for name in ("alice", "bob", "carol"))
    alice.driver.get(demo_url + "/")
    alice.type_name("<alice>")  # not a name: the page says why and stays on the form
    problem = alice.page.wait(lambda _: alice.page.element("#signin-error").text, "the sign-in error")
    assert "letters, digits" in problem
    alice.type_name("alice")
    alice.page.wait(lambda _: alice.state() == "open", "the chat to connect")
    bob.sign_in(demo_url)
    alice.wait_members(["alice", "bob"])
    bob.wait_members(["alice", "bob"])
    assert ("", "bob joined") not in alice.messages()  # join notices are notices, not messages
    alice.page.wait(lambda _: "bob joined" in alice.page.element("#messages").text, "bob's join notice")

    alice.say("hello bob")
    bob.wait_messages([("alice", "hello bob")])
    bob.say("hi alice")
    alice.wait_messages([("alice", "hello bob"), ("bob", "hi alice")])
    assert bob.messages() == alice.messages()

    # Bob opens a room alice is not in and talks there; alice's lobby never shows it.
    bob.open_room("random")
    bob.say("anyone in random?")
    bob.wait_messages([("bob", "anyone in random?")])
    # Alice joins later: the room's history is there for her.
    alice.open_room("random")
    alice.wait_messages([("bob", "anyone in random?")])
    bob.page.wait(lambda _: bob.members() == ["bob", "alice"], "alice in random's member list")

    # A private message reaches bob, and alice's own pages, and nobody else.
    carol.sign_in(demo_url)
    alice.wait_members(["bob", "alice"])  # the member list of the room alice has open
    alice.say("meet me in help", to="bob")
    bob.page.wait(lambda _: bob.unread("@private") == "1", "bob's private badge")
    bob.open_room("@private")
    bob.wait_messages([("alice", "meet me in help")], kind="private")
    alice.open_room("@private")
    alice.wait_messages([("alice", "meet me in help")], kind="private")
    carol.open_room("@private")
    carol.say("hello everyone")  # in the lobby: whatever carol receives from now on comes after the whisper
    alice.open_room("lobby")
    alice.wait_messages([("carol", "hello everyone")])
    assert carol.messages("private") == [] and carol.unread("@private") == ""

    # The developer panel shows the frames both ways, and the error frame of a refused request.
    assert any('"action":"whisper"' in text for text in alice.devlog("out", "whisper"))
    assert any('"kind":"private"' in text for text in bob.devlog("in", "private"))
    Select(alice.page.element("#recipient")).select_by_value("")  # the recipient stays until changed: back to all
    for number in range(10):  # 10 messages per 10 s: the eleventh is refused
        alice.page.element("#message-input").send_keys(f"burst {number}", Keys.ENTER)
        alice.page.wait(lambda _: alice.page.element("#message-input").get_attribute("value") == "", "the send")
    alice.page.element("#message-input").send_keys("one too many", Keys.ENTER)
    error = alice.page.wait(lambda _: alice.page.element("#composer-error").text, "the rate-limit error")
    assert "retry in" in error
    assert alice.page.element("#message-input").get_attribute("value") == "one too many"  # kept, to send again
    alice.page.screenshot("chat-alice")
    bob.page.screenshot("chat-bob")

    # Leaving: bob's last page goes, and the others' member lists follow.
    bob.page.quit()
    alice.wait_members(["alice", "carol"])
    assert alice.state() == "open"


def test_chat_server_restart_caught_up_by_the_page(open_page: Callable[..., DemoPage], redis_url: str) -> None:
    env = {URL_VARIABLE: redis_url, NAMESPACE_VARIABLE: f"test-chat-{uuid.uuid4().hex}"}
    alice, bob = ChatPage(open_page("alice")), ChatPage(open_page("bob"))
    port = free_port()
    with run_uvicorn("example.app:app", env=env) as other_url:
        first = UvicornProcess("example.app:app", env=env, port=port)
        try:
            first.wait_until_serving()
            alice.sign_in(first.url)
            bob.sign_in(other_url)  # the other server: it goes on while alice's restarts
            alice.wait_members(["alice", "bob"])
            bob.say("before the restart")
            alice.wait_messages([("bob", "before the restart")])
            first.kill()
            alice.page.wait(lambda _: "reconnecting" in alice.banner(), "the page to say it reconnects")
            for number in range(3):
                bob.say(f"while you were away {number}")
            bob.wait_messages([("bob", f"while you were away {number}") for number in range(3)])
            first.close()
            first = UvicornProcess("example.app:app", env=env, port=port)
            first.wait_until_serving()
            expected = [("bob", "before the restart")] + [("bob", f"while you were away {n}") for n in range(3)]
            alice.wait_messages(expected)
            alice.page.wait(lambda _: "up to date" in alice.banner(), "the page to say it caught up")
            assert alice.messages() == expected  # each once, in order
            assert alice.state() == "open"
            alice.say("back")
            bob.wait_messages([("alice", "back")])
            assert any("close code 1006" in text for text in alice.devlog("event", "close"))
            alice.page.screenshot("chat-restarted")
        finally:
            first.close()


def test_chat_phone_width_no_horizontal_overflow(demo_url: str, open_page: Callable[..., DemoPage]) -> None:
    phone = ChatPage(open_page("phone", width=375, height=800))
    phone.sign_in(demo_url)
    phone.say("a-very-long-word-without-any-space-" * 4)
    phone.page.wait(lambda _: phone.messages(), "the message")
    sizes = phone.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert sizes[0] <= sizes[1], f"the chat is {sizes[0]} px wide in a {sizes[1]} px window"
    phone.page.screenshot("chat-phone")
