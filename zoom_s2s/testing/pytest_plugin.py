"""pytest plugin (auto-registered): the ``fake_zoom`` fixture.

Needs pytest-asyncio in the test environment; without it the fixture is not
defined and nothing else changes.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator

from .fake_zoom import FakeZoom

if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def fake_zoom() -> AsyncIterator[FakeZoom]:
        """A running :class:`FakeZoom` on a free loopback port, closed after the test."""
        async with FakeZoom() as zoom:
            yield zoom
