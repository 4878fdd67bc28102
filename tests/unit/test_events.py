"""What the default hook logs: a failure once, by whoever reports it."""

from __future__ import annotations

import logging

import attrs
import pytest

from zoom_s2s import AccessToken, MemoryTokenStore, TokenManager
from zoom_s2s.errors import InvalidCredentialsError
from zoom_s2s.stores import LockLease
from zoom_s2s.testing import FakeClock, FakeZoom, Fault

from ..support import FAST_RETRY, instant_retries, sleep_into_refresh_window


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("zoom_s2s") and r.levelno >= logging.WARNING
    ]


async def test_a_failure_raised_to_the_caller_is_not_logged_as_well(
    fake_zoom: FakeZoom, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = attrs.evolve(fake_zoom.credentials, client_secret="wrong-secret-0123456789")
    caplog.set_level(logging.DEBUG, "zoom_s2s")
    async with TokenManager(wrong, token_url=fake_zoom.token_url, retry=FAST_RETRY) as tokens:
        with pytest.raises(InvalidCredentialsError):
            await tokens.get_token()
    assert warnings_of(caplog) == []
    assert any("refresh_failed" in r.getMessage() for r in caplog.records)  # at DEBUG


async def test_a_failed_background_refresh_is_logged_once_as_a_warning(
    fake_zoom: FakeZoom, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake_zoom.expires_in = 3
    caplog.set_level(logging.DEBUG, "zoom_s2s")
    async with TokenManager(
        fake_zoom.credentials, token_url=fake_zoom.token_url, retry=FAST_RETRY
    ) as tokens:
        old = await tokens.get_token()
        await sleep_into_refresh_window(fake_clock, old)
        fake_zoom.fail_next(100, fault=Fault(status=500))
        with instant_retries():
            assert await tokens.get_token() is old  # starts the refresh, which fails
            await fake_clock.sleep(0.2)
        assert await tokens.get_token() is old
    logged = warnings_of(caplog)
    assert len(logged) == 1, logged
    assert "refresh_failed" in logged[0]


class _WriteFails(MemoryTokenStore):
    backend_errors = (OSError,)

    async def write(self, lease: LockLease, token: AccessToken, *, release: bool = False) -> bool:
        raise OSError("connection reset by peer")


async def test_a_store_error_the_manager_works_around_is_a_warning(
    fake_zoom: FakeZoom, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "zoom_s2s")
    async with TokenManager(
        fake_zoom.credentials, token_url=fake_zoom.token_url, retry=FAST_RETRY,
        store=_WriteFails(),
    ) as tokens:
        await tokens.get_token()  # served although the store could not keep it
    assert any("store_error" in line for line in warnings_of(caplog))
