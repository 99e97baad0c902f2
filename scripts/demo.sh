#!/usr/bin/env bash
# Run the bundled chat demo at http://127.0.0.1:8000 on the in-memory backend (no Redis needed).
# FASTAPI_CHANNELS_URL=redis://127.0.0.1:6379 switches broadcasting and rate limits to Redis; PORT picks the port.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[example]"
exec .venv/bin/python -m uvicorn example.app:app --host 127.0.0.1 --port "${PORT:-8000}"
