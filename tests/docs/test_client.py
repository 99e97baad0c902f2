"""The browser client page: its sample app and page, served by uvicorn and driven in headless Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from websockets.asyncio.client import connect

from fastapi_channels.browser import client_source
from tests.conftest import ROOT, run_uvicorn
from tests.docs.samples import DOCS, load
from tests.test_example_browser import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, require_chromium

PAGE = ROOT / "docs_src" / "client" / "page.html"
WAIT = 20.0


def test_client_page_shows_the_sample_page_verbatim() -> None:
    text = (DOCS / "client.md").read_text()
    assert f"<!-- docs_src/client/page.html -->\n```html\n{PAGE.read_text()}```\n" in text


def test_client_sample_app_serves_the_page_and_the_client() -> None:
    sample = load("client/app.py")
    with TestClient(sample.app) as client:
        assert client.get("/").text == PAGE.read_text()
        assert client.get("/fastapi-channels/channels.js").content == client_source("channels.js")
        with client.websocket_connect("/boards/general") as ws:
            assert ws.receive_json()["type"] == "resume"
            ws.send_json({"action": "post", "text": "hi", "request_id": 1})
            frames = [ws.receive_json(), ws.receive_json()]
    assert {"type": "response", "status": "ok", "action": "post", "request_id": 1, "data": {"offset": 1}} in frames


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[WebDriver]:
    require_chromium()
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


async def test_client_sample_page_posts_and_follows_a_second_board(browser: WebDriver) -> None:
    load("client/app.py")  # the module uvicorn serves below
    with run_uvicorn("docs_src.client.app:app") as base_url:
        browser.get(base_url + "/")
        wait = WebDriverWait(browser, WAIT)

        def posts() -> list[str]:
            script = "return [...document.querySelectorAll('#posts li')].map((item) => item.textContent)"
            return list(browser.execute_script(script))

        def status() -> str:
            return str(browser.execute_script("return document.querySelector('#status').textContent"))

        wait.until(lambda _: status() == "open, following news too", "the page to follow news")
        browser.find_element(By.ID, "text").send_keys("hello")
        browser.find_element(By.CSS_SELECTOR, "#form button").click()
        wait.until(lambda _: posts() == ["general #1: hello"], "the page's own post")
        assert status() == "posted as #1"
        async with connect(base_url.replace("http://", "ws://") + "/boards/news") as other:
            assert json.loads(await other.recv())["type"] == "resume"
            await other.send(json.dumps({"action": "post", "text": "extra", "request_id": 1}))
            wait.until(lambda _: posts() == ["general #1: hello", "news #1: extra"], "the news post")
