"""Shared helpers for the test suite (not fixtures: those live in conftest.py)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from zoom_s2s import AccessToken, RetryPolicy


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


async def sleep_into_refresh_window(token: AccessToken) -> None:
    """Sleep until 0.7 s before ``token`` expires.

    For a 3 s token that is past every process's refresh moment (at the latest
    0.75 s before expiry) and before callers must wait (0.3 s before expiry).
    """
    await asyncio.sleep(max(0.0, token.expires_at - 0.7 - time.time()))
