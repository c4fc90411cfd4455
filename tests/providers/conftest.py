from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from provider_wire import Wire


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    w = Wire()
    yield w
    await w.client.aclose()
