"""The AsyncAPI page of the demo in real headless Chromium, served by a real uvicorn process.

Like the demo's browser tests, it needs Debian's Chromium and ChromeDriver and fails, never skips, without
them. The screenshot of the whole page is saved in the test's temporary folder.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from example.app import URL_VARIABLE, create_app
from tests.conftest import run_uvicorn
from tests.test_example_browser import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, require_chromium

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[WebDriver]:
    """A headless Chromium session with a fresh profile."""
    require_chromium()
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager never downloads a driver
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def full_page_screenshot(driver: WebDriver, path: Path) -> bytes:
    """Save the whole page, beyond the window, as a PNG at ``path`` and return it."""
    height = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
    width = driver.execute_script("return window.innerWidth")
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    image = base64.b64decode(shot["data"])
    path.write_bytes(image)
    return image


def test_asyncapi_page_in_chromium_shows_actions_schemas_and_close_codes(browser: WebDriver, tmp_path: Path) -> None:
    demo_rooms = create_app("memory://").state.demo_rooms
    with run_uvicorn("example.app:app", env={URL_VARIABLE: "memory://"}) as base_url:
        browser.set_window_size(1100, 1400)
        browser.get(base_url + "/asyncapi")
        assert browser.title == "fastapi-channels demo 0.1.0 – AsyncAPI"

        # Every action of every room, under its room's address.
        for key, room in demo_rooms.items():
            section = browser.find_element(By.ID, f"channel-chatroom_ws_{key}")
            assert section.find_element(By.CSS_SELECTOR, "h2").text.startswith(f"/{key}")
            shown = [
                item.get_attribute("data-action") for item in section.find_elements(By.CSS_SELECTOR, "article.action")
            ]
            assert shown == (list(room.channel.actions) or ["text"])

        # The typed action: its summary, its payload field with the constraints, and its reply.
        shout = browser.find_element(By.ID, "chatroom_ws_group-shout")
        shout.location_once_scrolled_into_view  # noqa: B018 - scrolls it into the window
        assert shout.is_displayed() and "Shout a message back to its sender" in shout.text
        field = shout.find_element(By.CSS_SELECTOR, "tr.field[data-field='message']")
        assert field.is_displayed() and field.text.split() == [
            "message",
            "string",
            "required",
            "length",
            "≥",
            "1",
            "length",
            "≤",
            "200",
        ]
        assert "Reply data: string" in shout.text
        deprecated = browser.find_element(By.ID, "chatroom_ws_person-deprecated_action")
        assert "deprecated" in deprecated.find_element(By.CSS_SELECTOR, "h4").text
        assert "2 per 50 min per client" in browser.find_element(By.ID, "chatroom_ws_person-count").text

        # What the server sends: declared messages, and the frames every channel uses.
        group = browser.find_element(By.ID, "channel-chatroom_ws_group")
        sent = [item.get_attribute("data-message") for item in group.find_elements(By.CSS_SELECTOR, "article.sent")]
        assert sent == ["chat", "joined", "left"]
        assert '"Join successfully"' in group.find_element(By.CSS_SELECTOR, "article.sent[data-message='joined']").text
        codes = [row.text.split()[0] for row in browser.find_elements(By.CSS_SELECTOR, "tr.close-code")]
        assert {"1000", "1007", "1008", "1011", "1012", "1013", "4408"} <= set(codes)
        assert browser.find_element(By.ID, "schema-ChatMessage").is_displayed()

        # Nothing comes from elsewhere: what was loaded, and every link, is on this server.
        resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(resource.startswith(base_url + "/") for resource in resources), resources  # the favicon at most
        links = browser.execute_script(
            "return [...document.querySelectorAll('[href],[src]')].map(e => e.href || e.src)"
        )
        assert links and all(link.startswith(base_url + "/") for link in links), links
        image = full_page_screenshot(browser, tmp_path / "asyncapi.png")
        assert image.startswith(PNG_SIGNATURE) and len(image) > 50_000

        # At a phone's width the page wraps instead of overflowing.
        browser.set_window_size(375, 800)
        sizes = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert sizes[0] <= sizes[1], f"the page is {sizes[0]} px wide in a {sizes[1]} px window"
        full_page_screenshot(browser, tmp_path / "asyncapi-phone.png")

        # The link to the JSON document works.
        browser.set_window_size(1100, 1400)
        browser.find_element(By.LINK_TEXT, "the JSON document").click()
        assert '"asyncapi":"3.0.0"' in browser.find_element(By.TAG_NAME, "body").text
