"""stores/base.py: the lease, relative failure records, and one home for backend errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from zoom_s2s.errors import (
    ConfigurationError,
    StoreError,
    StoreUnavailableError,
    TokenEndpointError,
)
from zoom_s2s.stores import (
    BaseTokenStore,
    FailureRecord,
    LockAttempt,
    LockLease,
    StoreState,
    decode_record,
    encode_record,
    registry,
)
from zoom_s2s.stores.base import MAX_MESSAGE
from zoom_s2s.testing.contract import HOSTILE_FAILURE_RECORDS, make_failure, make_token

SECRET = "hunter2-Secret"


@pytest.fixture(autouse=True)
def _private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Store classes defined in these tests register their schemes: keep that local.
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


# -- LockLease ---------------------------------------------------------------------


def lease(acquired_at: float = 100.0, ttl: float = 10.0) -> LockLease:
    return LockLease(key="k", owner="o", generation=7, ttl=ttl, acquired_at=acquired_at)


def test_lease_remaining_counts_from_the_acquisition_on_the_monotonic_clock() -> None:
    held = lease(acquired_at=100.0, ttl=10.0)
    assert held.remaining(now=104.0) == 6.0
    assert held.held(now=109.9)
    assert not held.held(now=110.0)
    assert held.remaining(now=112.0) == -2.0


def test_lease_hides_its_handle_from_repr_and_equality() -> None:
    one = LockLease(key="k", owner="o", generation=1, ttl=1, acquired_at=0, handle=object())
    other = LockLease(key="k", owner="o", generation=1, ttl=1, acquired_at=0, handle=object())
    assert one == other
    assert "handle" not in repr(one)


def test_lease_needs_its_generation_and_acquisition_time() -> None:
    with pytest.raises(TypeError):
        LockLease(key="k", owner="o", ttl=10)  # type: ignore[call-arg]


# -- FailureRecord: relative times -------------------------------------------------


@pytest.mark.parametrize("elapsed", [0.0, 0.5, 1.0, 2.9, 3.0, 50.0, -5.0, -math.inf, math.inf])
def test_aging_never_lengthens_and_never_goes_negative(elapsed: float) -> None:
    written = make_failure(3.0)
    aged = written.aged(elapsed)
    assert 0.0 <= aged.retry_in <= 3.0
    if elapsed >= 0:
        assert aged.retry_in == max(0.0, 3.0 - elapsed)
    assert (aged.failures, aged.error_type, aged.message) == (
        written.failures, written.error_type, written.message,
    )


def test_to_json_round_trips() -> None:
    failure = make_failure(12.5, failures=4)
    assert FailureRecord.from_json(failure.to_json(keep_for=60.0)) == failure
    assert FailureRecord.from_json(failure.to_json(keep_for=60.0).encode()) == failure


def test_from_json_ages_by_the_age_the_store_measured() -> None:
    raw = make_failure(10.0).to_json(keep_for=60.0)
    assert FailureRecord.from_json(raw, age=4.0).retry_in == 6.0
    assert FailureRecord.from_json(raw, age=40.0).retry_in == 0.0


def test_from_json_ages_by_the_ttl_left() -> None:
    raw = make_failure(10.0).to_json(keep_for=60.0)
    # Redis says the key lives 57 s more: written 3 s ago.
    assert FailureRecord.from_json(raw, ttl_left=57.0).retry_in == pytest.approx(7.0)


def test_a_ttl_longer_than_written_never_lengthens_the_wait() -> None:
    # Someone ran PEXPIRE on the key, or the store's clock stepped back.
    raw = make_failure(10.0).to_json(keep_for=60.0)
    assert FailureRecord.from_json(raw, ttl_left=3600.0).retry_in == 10.0


def test_a_writer_with_a_fast_clock_cannot_make_readers_wait_longer() -> None:
    # The record carries no wall-clock moment at all: nothing a skewed writer
    # could push into the future.
    raw = json.loads(make_failure(10.0).to_json(keep_for=60.0))
    assert set(raw) == {"v", "failures", "retry_in", "keep_for", "error_type", "message"}


@pytest.mark.parametrize("shape", sorted(HOSTILE_FAILURE_RECORDS))
def test_hostile_records_are_value_errors_only(shape: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError: the store makes it a miss
        FailureRecord.from_json(HOSTILE_FAILURE_RECORDS[shape])


def test_hostile_records_are_value_errors_as_bytes_too() -> None:
    for raw in HOSTILE_FAILURE_RECORDS.values():
        with pytest.raises(ValueError):  # noqa: PT011
            FailureRecord.from_json(raw.encode("utf-8", "surrogateescape"), ttl_left=5.0)
    with pytest.raises(ValueError):  # noqa: PT011
        FailureRecord.from_json(b"\xff\xfe not utf-8")


def test_long_and_unprintable_messages_are_bounded_and_flattened() -> None:
    raw = json.loads(make_failure().to_json(keep_for=60.0))
    raw["message"] = "line one\r\nline two\x1b[31m" + "x" * 10_000
    record = FailureRecord.from_json(json.dumps(raw))
    assert len(record.message) == MAX_MESSAGE
    assert record.message.startswith("line one  line two [31m")


# -- token records -----------------------------------------------------------------


def test_token_records_round_trip_with_their_generation() -> None:
    token = make_token()
    assert decode_record(encode_record(token, 42)) == (token, 42)


@pytest.mark.parametrize(
    "raw",
    [b"", b"garbage", b"[]", b'{"v": 2, "generation": 1, "token": {}}', b'{"v": 1, "token": {}}'],
)
def test_bad_token_records_are_value_errors(raw: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        decode_record(raw)


# -- BaseTokenStore: one home for backend errors -----------------------------------


class FlakyBackendError(Exception):
    pass


class FlakyStore(BaseTokenStore):
    """A store whose backend raises whatever the test tells it to."""

    backend_errors = (FlakyBackendError,)

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    @property
    def name(self) -> str:
        return "flaky://app:***@backend"

    def scrub(self, text: str) -> str:
        return text.replace(SECRET, "***")

    def error_hint(self, exc: BaseException) -> str:
        return "restart the flaky backend"

    async def read(self, key: str) -> StoreState:
        self.calls += 1
        raise self.error

    async def acquire_lock(self, key: str, *, ttl: float) -> LockAttempt:
        raise self.error


async def test_backend_errors_become_store_unavailable_with_name_action_and_hint() -> None:
    store = FlakyStore(FlakyBackendError(f"connection refused (password {SECRET})"))
    with pytest.raises(StoreUnavailableError) as info:
        await store.read("k")
    message = str(info.value)
    assert "flaky://app:***@backend" in message
    assert "reading the token" in message
    assert "FlakyBackendError" in message
    assert "restart the flaky backend" in message
    assert SECRET not in message
    assert info.value.store == "flaky://app:***@backend"
    assert isinstance(info.value.__cause__, FlakyBackendError)
    with pytest.raises(StoreUnavailableError, match="taking the lock"):
        await store.acquire_lock("k", ttl=1)


async def test_library_errors_pass_through_untouched() -> None:
    error = TokenEndpointError("503")
    store = FlakyStore(error)
    with pytest.raises(TokenEndpointError) as info:
        await store.read("k")
    assert info.value is error


async def test_other_exceptions_are_bugs_and_not_disguised_as_store_errors() -> None:
    store = FlakyStore(KeyError("bug"))
    with pytest.raises(KeyError):
        await store.read("k")


async def test_a_subclass_is_translated_once_not_twice() -> None:
    class Flakier(FlakyStore):
        async def read(self, key: str) -> StoreState:
            return await super().read(key)

    store = Flakier(FlakyBackendError("down"))
    with pytest.raises(StoreUnavailableError) as info:
        await store.read("k")
    assert isinstance(info.value.__cause__, FlakyBackendError)  # not a StoreError in a StoreError
    assert str(info.value).count("failed while") == 1


def test_translate_error_without_detail_still_says_what_happened() -> None:
    error = FlakyStore(FlakyBackendError()).translate_error(FlakyBackendError(), "writing the token")
    assert isinstance(error, StoreError)
    assert "no detail" in str(error)


def test_default_name_is_the_class_name() -> None:
    class Plain(BaseTokenStore):
        pass

    assert Plain().name == "Plain"


def test_a_store_without_url_support_says_so() -> None:
    class Plain(BaseTokenStore):
        pass

    with pytest.raises(ConfigurationError, match="Plain cannot be created from a URL"):
        Plain.from_url("plain://")


def test_declared_schemes_are_registered_when_the_class_is_defined() -> None:
    class Acme(BaseTokenStore):
        schemes = ("acme", "acme+tls")

        @classmethod
        def from_url(cls, url: str, **options: Any) -> Acme:
            return cls()

    assert registry.find_store("acme") is Acme
    assert registry.find_store("ACME+TLS") is Acme


def test_a_subclass_does_not_take_over_its_parents_schemes() -> None:
    class Parent(BaseTokenStore):
        schemes = ("parent",)

    class Child(Parent):
        pass

    assert registry.find_store("parent") is Parent
