"""Fixtures of the client tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from zoom_s2s.testing import FakeZoom


@pytest.fixture
async def elsewhere() -> AsyncIterator[FakeZoom]:
    """A second server on another port: another origin, recording the tokens it receives."""
    async with FakeZoom() as other:
        yield other
