"""The Origin check: same site by default, listed sites, programs without an Origin; refused at the handshake."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import websockets
from starlette.datastructures import Headers

from fastapi_channels.origin import check_allowed_origins, origin_allowed
from tests.conftest import UvicornProcess


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "expected"),
    [
        (None, "example.com", None, True),  # not a browser
        ("https://example.com", "example.com", None, True),
        ("https://example.com", "example.com:443", None, True),
        ("http://example.com:8000", "example.com:8000", None, True),
        ("HTTPS://Example.COM", "example.com", None, True),
        ("https://evil.example", "example.com", None, False),
        ("https://example.com.evil.example", "example.com", None, False),
        ("https://example.com:8443", "example.com", None, False),
        ("null", "example.com", None, False),
        ("null", "example.com", ("null",), True),
        ("https://app.example", "api.example", ("https://app.example",), True),
        ("https://other.example", "api.example", ("https://app.example",), False),
        ("https://anyone.example", "api.example", ("*",), True),
        ("https://example.com", None, None, False),  # no Host: nothing to compare with
    ],
)
def test_origin_allowed_decides_by_host_and_list(
    origin: str | None, host: str | None, allowed: tuple[str, ...] | None, expected: bool
) -> None:
    headers = {key: value for key, value in (("origin", origin), ("host", host)) if value is not None}
    assert origin_allowed(Headers(headers), allowed) is expected


@pytest.mark.parametrize("allowed", ["https://example.com", ["example.com"], ["https://example.com/path"], [5]])
def test_check_allowed_origins_refuses_what_is_not_a_list_of_origins(allowed: object) -> None:
    with pytest.raises(ValueError, match="origin"):
        check_allowed_origins(allowed)


def test_check_allowed_origins_keeps_origins_without_a_trailing_slash() -> None:
    assert check_allowed_origins(["https://example.com/", "*"]) == ("https://example.com", "*")


async def test_foreign_origin_is_refused_with_403_before_any_socket_opens(tmp_path: Path) -> None:
    env = {"FAULTS_LOG": str(tmp_path / "events"), "FAULTS_ORIGINS": "https://app.example"}
    server = UvicornProcess("tests.apps.faults_app:app", env=env)
    try:
        server.wait_until_serving()
        host = server.url.removeprefix("http://")
        url = f"ws://{host}/ws/lobby"
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url, origin=websockets.Origin("https://evil.example"))
        assert refused.value.response.status_code == 403
        for origin in (f"http://{host}", "https://app.example", None):  # own site, listed site, no browser
            async with websockets.connect(url, origin=websockets.Origin(origin) if origin else None) as client:
                assert await asyncio.wait_for(client.recv(), 5) == "joined"
        # The refused page never joined: nothing ran for it.
        assert (tmp_path / "events").read_text().count("join lobby") == 3
    finally:
        server.close()
