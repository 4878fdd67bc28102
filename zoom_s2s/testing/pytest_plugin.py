"""pytest plugin (auto-registered): the ``fake_clock`` and ``fake_zoom`` fixtures.

``fake_zoom`` needs pytest-asyncio in the test environment; without it that
fixture is not defined and nothing else changes. An ``async def`` test that
uses it runs on asyncio in any pytest-asyncio mode: in the default strict mode
the plugin gives it the ``asyncio`` marker (other async tests still need the
marker, or ``asyncio_mode = "auto"``). See ``docs/testing.rst``.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

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

    # Inside pytest-asyncio's own wrapper of this hook (trylast: innermost), so
    # the marker is there when it decides which tests run on asyncio.
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_pycollect_makeitem(
        collector: pytest.Module | pytest.Class, name: str, obj: object
    ) -> Generator[None, Any, Any]:
        """Mark ``async def`` tests that use ``fake_zoom`` with ``pytest.mark.asyncio``."""
        collected = yield
        if inspect.iscoroutinefunction(obj):
            items = collected if isinstance(collected, list) else [collected]
            for item in items:
                if (
                    isinstance(item, pytest.Function)
                    and "fake_zoom" in item.fixturenames
                    and item.get_closest_marker("asyncio") is None
                ):
                    item.add_marker(pytest.mark.asyncio)
        return collected
