"""Shared helpers for the test suite (not fixtures: those live in conftest.py)."""

from __future__ import annotations

import contextlib
import os

import pytest
import stamina

from zoom_s2s import AccessToken, RetryPolicy
from zoom_s2s.testing import FakeClock


def in_ci() -> bool:
    """Whether this run is CI's (``CI`` set to a true value)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(message: str, in_ci_too: str) -> None:
    """Skip the test on a developer's machine; fail it in CI, which must provide the thing.

    A silent skip in CI would hide a broken setup.
    """
    if in_ci():
        pytest.fail(f"{message}; {in_ci_too}", pytrace=False)
    pytest.skip(message)


# Retries as in production, minus the waiting.
FAST_RETRY = RetryPolicy(attempts=4, timeout=10.0, wait_initial=0.01, wait_max=0.02, wait_jitter=0)

SECRET = "s3cr3t-client-secret-DO-NOT-LEAK"


def instant_retries() -> contextlib.AbstractContextManager[None]:
    """stamina's retries without their back-off: each policy keeps its number of attempts.

    Their back-off sleeps in real time, during which a FakeClock's time would jump.
    """
    return stamina.set_testing(True, attempts=1_000, cap=True)


async def sleep_into_refresh_window(clock: FakeClock, token: AccessToken) -> None:
    """Let ``clock`` run until 0.7 s before ``token`` expires.

    For a 3 s token that is past every process's refresh moment (at the latest
    0.75 s before expiry) and before callers must wait (0.3 s before expiry).
    """
    await clock.sleep(max(0.0, token.expires_ts - 0.7 - clock.wall()))
