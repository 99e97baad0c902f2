#!/usr/bin/env bash
# Run the test suite from a fresh checkout: set up .venv, install the package with its test tools, run pytest.
# With no arguments the whole suite runs with a coverage floor; any arguments go to pytest as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,postgres]"

# The suite uses the Redis on 127.0.0.1:6379 when it answers, else starts its own redis-server.
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "The tests need Redis: install redis-server (apt-get install redis-server)." >&2
        exit 1
    fi
fi

if [ "$#" -eq 0 ]; then
    set -- --cov=fastapi_channels --cov-report=term --cov-fail-under=85
fi
exec .venv/bin/python -m pytest "$@"
