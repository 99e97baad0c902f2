"""Typing: mypy passes over the package, the docs samples and the demo, and rejects misused action keywords."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Kept verbatim from the reference README and PyPI page, so not held to our typing.
VERBATIM_SEEDS = {"example/readme_example.py", "example/pypi_example.py"}
SOURCE_LOG = re.compile(r"^LOG: +Found source: +BuildSource\(path='([^']+)'", re.M)


def test_mypy_with_project_config_passes_over_package_samples_and_demo(tmp_path: Path) -> None:
    # The mypy of the running interpreter, as the README's test command installs it, with a fresh cache so
    # that nothing left from an earlier run hides an error. --verbose logs every file it checks.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--verbose", "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    output, log, exit_code = result.stdout, result.stderr, result.returncode
    assert exit_code == 0, output + "\n".join(line for line in log.splitlines() if not line.startswith("LOG:"))
    checked = {(ROOT / path).relative_to(ROOT).as_posix() for path in SOURCE_LOG.findall(log)}
    expected = {
        path.relative_to(ROOT).as_posix()
        for folder in ("fastapi_channels", "docs_src", "example")
        for path in (ROOT / folder).rglob("*.py")
    }
    assert checked == expected - VERBATIM_SEEDS


# Each call misspells or mistypes one keyword of @action / room.action / router.action / include_router, the
# line marked "fine" uses them as documented: mypy must reject exactly the former (``ActionOptions`` at work).
ACTION_KEYWORDS_SNIPPET = """
from fastapi_channels import ActionRouter, Channel, DenyAll, action

router = ActionRouter()
room = Channel()


@action("a", permisson=DenyAll)  # wrong
async def a() -> None: ...


@room.action("b", tags=["x"], deprecate=True)  # wrong
async def b() -> None: ...


@router.action("c", summary=3)  # wrong
async def c() -> None: ...


@router.action("d", permission=DenyAll, tags=["x"], dependencies=[], response_model=None)  # fine
async def d() -> None: ...


class Room(Channel):
    pass


Room.include_router(router, prefix="x.")  # fine
room.include_router(router)  # fine
room.include_router(router, prefx="y.")  # wrong
"""


def test_mypy_rejects_unknown_or_mistyped_action_keywords(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(ACTION_KEYWORDS_SNIPPET)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "mypy-cache"), str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    lines = ACTION_KEYWORDS_SNIPPET.splitlines()
    flagged = {int(number) for number in re.findall(r"^[^:\n]+snippet\.py:(\d+): error:", result.stdout, re.M)}
    wrong = {number for number, line in enumerate(lines, 1) if line.endswith("# wrong")}
    assert result.returncode == 1 and flagged == wrong, result.stdout
    for keyword in ("permisson", "deprecate", "prefx"):
        assert f'Unexpected keyword argument "{keyword}"' in result.stdout
