"""Secret hygiene over a full run: neither the client secret nor any token leaks."""

from __future__ import annotations

import logging

import pytest

from zoom_s2s import Credentials, MemoryTokenStore, TokenManager, ZoomS2SError
from zoom_s2s.testing import FakeClock, FakeZoom, Fault

from ..support import FAST_RETRY, SECRET, instant_retries, sleep_into_refresh_window


async def test_logs_reprs_and_errors_of_a_full_run_hold_no_secret_or_token(
    caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with FakeZoom(client_secret=SECRET, expires_in=3) as zoom:
        store = MemoryTokenStore()
        async with TokenManager(
            zoom.credentials, store=store, token_url=zoom.token_url, retry=FAST_RETRY
        ) as tokens:
            zoom.fail_next(2, fault=Fault(status=503))  # retries get logged
            token = await tokens.get_token()
            texts += [repr(token), str(token), repr(tokens), repr(store), repr(tokens.stats())]
            texts.append(repr(zoom.credentials))
            await tokens.invalidate(token)
            token = await tokens.get_token()
            # Refresh-ahead inside the window, with a failure in it.
            await sleep_into_refresh_window(fake_clock, token)
            zoom.fail_next(1, fault=Fault(status=500))
            with instant_retries():
                await tokens.get_token()
                await fake_clock.sleep(0.3)
        for body in ("<html>oops</html>", {"access_token": "", "expires_in": 1}):
            zoom.fail_next(1, fault=Fault(status=200, body=body))
            async with TokenManager(zoom.credentials, token_url=zoom.token_url) as fresh:
                with pytest.raises(ZoomS2SError) as info:
                    await fresh.get_token()
                texts += [str(info.value), repr(info.value)]
        wrong = Credentials(zoom.credentials.account_id, zoom.credentials.client_id, SECRET + "x")
        async with TokenManager(wrong, token_url=zoom.token_url, retry=FAST_RETRY) as bad:
            with pytest.raises(ZoomS2SError) as info:
                await bad.get_token()
            texts += [str(info.value), repr(info.value), repr(bad)]
        issued = list(zoom.issued_tokens)

    logged = [record.getMessage() for record in caplog.records]
    assert any("token fetched" in line for line in logged)  # DEBUG logging was on
    assert len(issued) >= 3
    for text in texts + logged:
        assert SECRET not in text
        for access_token in issued:
            assert access_token not in text
