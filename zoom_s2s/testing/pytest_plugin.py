"""pytest plugin (auto-registered): the ``fake_clock`` and ``fake_zoom`` fixtures.

``fake_zoom`` needs pytest-asyncio in the test environment; without it that
fixture is not defined and nothing else changes.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Iterator

import pytest

from .clock import FakeClock
from .fake_zoom import FakeZoom


@pytest.fixture
def fake_clock() -> Iterator[FakeClock]:
    """Virtual time for the test (a :class:`FakeClock`): zoom-s2s's sleeps end at once."""
    with FakeClock() as clock:
        yield clock


if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def fake_zoom() -> AsyncIterator[FakeZoom]:
        """A running :class:`FakeZoom` on a free loopback port, closed after the test."""
        async with FakeZoom() as zoom:
            yield zoom
