"""Typing: mypy, with the project's configuration, passes over the package, the docs samples and the demo."""

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
