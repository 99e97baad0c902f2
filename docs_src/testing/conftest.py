import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # fastapi-channels runs on asyncio; anyio would try trio too
