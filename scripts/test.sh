#!/usr/bin/env bash
# Run the test suite from a fresh checkout: set up .venv, install the package with its test tools, run pytest.
# With no arguments the whole suite runs with a coverage floor; any arguments go to pytest as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,postgres]"

# Install Debian packages the suite needs, when they are missing and this script may (root with apt-get).
need_packages() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "The tests need these Debian packages: apt-get install $*" >&2
        exit 1
    fi
}

# The suite uses the Redis on 127.0.0.1:6379 when it answers, else starts its own redis-server; the tests
# that restart Redis under live connections always start one of their own.
if ! command -v redis-server >/dev/null; then
    need_packages redis-server
fi
# The browser client's pure logic is unit-tested with Node.js's own test runner.
if ! command -v node >/dev/null; then
    need_packages nodejs
fi
# The demo page is tested in Debian's headless Chromium, driven through its ChromeDriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    need_packages chromium chromium-driver
fi

if [ "$#" -eq 0 ]; then
    set -- --cov=fastapi_channels --cov-report=term --cov-fail-under=85
fi
exec .venv/bin/python -m pytest "$@"
