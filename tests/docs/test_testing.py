"""The testing page: its sample tests pass in process, on both backends, and under anyio's pytest plugin alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.docs.samples import SRC, load


@pytest.fixture(autouse=True)
def own_main(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let each test import the sample app afresh as the reader's own ``main`` module, and forget it after."""
    monkeypatch.delitem(sys.modules, "main", raising=False)
    yield
    monkeypatch.delitem(sys.modules, "main", raising=False)


def sample_tests(module: ModuleType) -> list[Any]:
    return [value for name, value in vars(module).items() if name.startswith("test_")]


async def test_testing_page_communicator_samples_pass() -> None:
    main = load("testing/main.py", module_name="main")
    sample = load("testing/test_main.py")
    assert sample.app is main.app
    tests = sample_tests(sample)
    assert len(tests) == 8
    for test in tests:
        await test()


async def test_testing_page_backend_samples_pass_on_memory_and_redis(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    main = load("testing/main.py", module_name="main")
    sample = load("testing/test_backends.py")
    # The sample's own apps, in a namespace of this test's: runs sharing the Redis server never hear each other.
    namespace = f"test-{uuid.uuid4().hex}"
    monkeypatch.setattr(sample, "create_app", lambda **options: main.create_app(namespace=namespace, **options))
    monkeypatch.setattr(sample, "REDIS", redis_url)
    for url in ("memory://", redis_url):
        await sample.test_say_reaches_everyone_in_the_room(sample.create_app(url=url))
    await sample.test_two_servers_sharing_redis_share_the_room()
    assert [name for name in vars(sample) if name.startswith("test_")] == [
        "test_say_reaches_everyone_in_the_room",
        "test_two_servers_sharing_redis_share_the_room",
    ]


def test_testing_page_testclient_samples_pass() -> None:
    main = load("testing/main.py", module_name="main")
    sample = load("testing/test_with_testclient.py")
    assert sample.app is main.app
    tests = sample_tests(sample)
    assert len(tests) == 2
    for test in tests:
        test()


def test_testing_page_samples_pass_under_anyio_pytest_plugin_without_pytest_asyncio(tmp_path: Path) -> None:
    assert hasattr(load("testing/conftest.py"), "anyio_backend")
    for name in ("main.py", "conftest.py", "test_main.py", "test_with_testclient.py"):
        shutil.copy(SRC / "testing" / name, tmp_path / name)
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:asyncio", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 passed" in result.stdout, result.stdout
