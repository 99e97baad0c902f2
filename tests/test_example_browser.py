"""The demo page in real headless Chromium sessions, driven by Selenium against the demo served by uvicorn.

It needs Debian's Chromium and its ChromeDriver (``apt-get install chromium chromium-driver``) and fails, never
skips, without them; nothing here downloads a browser or a driver. Screenshots of every session are saved in
``tests/artifacts/``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from example.app import JOIN_NOTICE, LEAVE_NOTICE, URL_VARIABLE
from fastapi_channels.exceptions import PermissionDenied
from tests.conftest import ROOT, run_uvicorn

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
        self.driver.get(base_url + "/")
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


def test_demo_page_two_browsers_chat_see_own_errors_and_leave_notice(
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


def test_demo_page_phone_width_no_horizontal_overflow(demo_url: str, open_page: Callable[..., DemoPage]) -> None:
    phone = open_page("phone", width=375, height=800)
    phone.driver.get(demo_url + "/")
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


def test_demo_page_server_gone_shows_drop_and_retries(open_page: Callable[..., DemoPage]) -> None:
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
