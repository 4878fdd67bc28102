"""Shared helpers for the test suite (not fixtures: those live in conftest.py)."""

from __future__ import annotations

from zoom_s2s import RetryPolicy

# Retries as in production, minus the waiting.
FAST_RETRY = RetryPolicy(attempts=4, timeout=10.0, wait_initial=0.01, wait_max=0.02, wait_jitter=0)

SECRET = "s3cr3t-client-secret-DO-NOT-LEAK"
