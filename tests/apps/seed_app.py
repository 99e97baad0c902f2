"""The seed example served by uvicorn on a chosen backend, without editing the example file.

``SEED_EXAMPLE`` names the file in ``example/`` (``readme_example.py`` by default) and ``SEED_URL`` the
URL that replaces ``redis://localhost:6379`` on its ``add_channel(...)`` line (``memory://`` by default).
``SEED_NAMESPACE``, when set, is passed to that call as ``namespace=`` and ``limiter_prefix=``.
"""

from __future__ import annotations

import os
import sys
import types
import uuid
from pathlib import Path

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "example"
SEED_URL = "redis://localhost:6379"
CALL = "add_channel(app, "


def load_seed(filename: str, url: str, namespace: str | None = None) -> types.ModuleType:
    """Run ``example/<filename>`` as a fresh module whose ``add_channel(...)`` line uses ``url`` and ``namespace``."""
    path = EXAMPLE_DIR / filename
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    targets = [index for index, line in enumerate(lines) if line.startswith(CALL) and SEED_URL in line]
    if len(targets) != 1:
        raise RuntimeError(f"{path} should have exactly one {CALL}...) line using {SEED_URL!r}")
    line = lines[targets[0]].replace(SEED_URL, url)
    if namespace is not None:
        line = line.replace(CALL, f"{CALL}namespace={namespace!r}, limiter_prefix={namespace!r}, ", 1)
    lines[targets[0]] = line
    name = f"seed_{path.stem}_{uuid.uuid4().hex[:8]}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        exec(compile("".join(lines), str(path), "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    return module


app = load_seed(
    os.environ.get("SEED_EXAMPLE", "readme_example.py"),
    os.environ.get("SEED_URL", "memory://"),
    os.environ.get("SEED_NAMESPACE"),
).app
