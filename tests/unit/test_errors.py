"""The error tree: docstrings that say what to do, and one meaning for retry_after."""

from __future__ import annotations

import datetime as dt
import inspect
import time

import pytest

from zoom_s2s import errors
from zoom_s2s.errors import (
    DailyLimitExceededError,
    RateLimitedError,
    TokenEndpointError,
    TokenRateLimitedError,
    ZoomS2SError,
)

API_FIELDS: dict[str, object] = {
    "status": 429,
    "code": None,
    "message": None,
    "tracking_id": None,
    "method": "GET",
    "path": "/users/me",
}

ERROR_CLASSES = [
    getattr(errors, name)
    for name in errors.__all__
    if inspect.isclass(getattr(errors, name)) and issubclass(getattr(errors, name), ZoomS2SError)
]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_class_documents_itself(cls: type[ZoomS2SError]) -> None:
    doc = cls.__dict__.get("__doc__")
    assert doc, f"{cls.__name__} has no docstring of its own"
    assert len(inspect.cleandoc(doc).split()) >= 12, f"{cls.__name__}: say what to do"


def test_a_token_endpoint_wait_is_seconds_and_an_aware_utc_moment() -> None:
    before = time.time()
    exc = TokenRateLimitedError("slow down", status=429, retry_after=30.0)
    assert exc.retry_after == 30.0
    assert exc.retry_at is not None
    assert exc.retry_at.tzinfo is dt.timezone.utc
    assert before + 30 <= exc.retry_at.timestamp() <= time.time() + 30


def test_no_wait_means_neither_field() -> None:
    exc = TokenEndpointError("down", status=503)
    assert (exc.retry_after, exc.retry_at) == (None, None)
    api = RateLimitedError(limit_type="QPS", **API_FIELDS)
    assert (api.retry_after, api.retry_at) == (None, None)


def test_a_rate_limited_api_error_has_seconds_too() -> None:
    exc = RateLimitedError(limit_type="QPS", retry_after=2.5, **API_FIELDS)
    assert exc.retry_after == 2.5
    assert exc.retry_at is not None
    assert exc.retry_at.tzinfo is dt.timezone.utc


def test_a_moment_given_as_retry_at_gives_the_seconds_until_it() -> None:
    moment = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    exc = DailyLimitExceededError(limit_type="Daily-limit", retry_at=moment, **API_FIELDS)
    assert exc.retry_at == moment
    assert exc.retry_after == pytest.approx(60, abs=1)


def test_a_naive_moment_is_taken_as_utc_and_a_past_one_waits_zero() -> None:
    past = dt.datetime(2000, 1, 1)  # naive: UTC
    exc = TokenEndpointError("down", retry_at=past)
    assert exc.retry_at == dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    assert exc.retry_after == 0.0
