"""Reliability under token-endpoint faults, fleet-wide back-off, and short token lifetimes.

Real components only: the fake Zoom is a real aiohttp server on loopback, the
fleets are real processes (``tests/system/reliability_worker.py``) sharing a real
FileTokenStore directory or a real redis-server. Every wait has a deadline
(``asyncio.wait_for`` or the worker helpers'), so a hang fails instead of
blocking the run.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest

from zoom_s2s import (
    Credentials,
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    RetryPolicy,
    TokenManager,
    ZoomS2SError,
)
from zoom_s2s.errors import (
    InvalidCredentialsError,
    MalformedTokenResponseError,
    TokenEndpointError,
    TokenRateLimitedError,
)
from zoom_s2s.testing import FakeZoom, Fault

from .reliability_worker import BUCKET, Worker, logs, workers, write_json

# Short waits so the tests are quick, but the production number of attempts shape.
RETRY = RetryPolicy(attempts=3, timeout=10.0, wait_initial=0.05, wait_max=0.1, wait_jitter=0.0)
REQUEST_TIMEOUT = 0.5
# A caller can never legitimately wait longer than every attempt timing out plus the
# waits between them; anything beyond this (plus slack for a loaded machine) is a hang.
HANG_GUARD = RETRY.attempts * (REQUEST_TIMEOUT + RETRY.wait_max) + 5.0

HTML_PAGE = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def make_manager(zoom: FakeZoom, **kwargs: Any) -> TokenManager:
    kwargs.setdefault("retry", RETRY)
    kwargs.setdefault("request_timeout", REQUEST_TIMEOUT)
    kwargs.setdefault("hooks", [])
    return TokenManager(zoom.credentials, token_url=zoom.token_url, **kwargs)


async def get(tokens: TokenManager, guard: float = HANG_GUARD) -> Any:
    """``get_token()`` under a hang guard."""
    return await asyncio.wait_for(tokens.get_token(), guard)


async def get_many(tokens: TokenManager, callers: int) -> list[Any]:
    return await asyncio.wait_for(
        asyncio.gather(*(tokens.get_token() for _ in range(callers)), return_exceptions=True),
        HANG_GUARD,
    )


# -- 1. token endpoint faults ---------------------------------------------------------


async def test_a_latency_spike_under_the_request_timeout_gives_every_caller_the_token_once(
    fake_zoom: FakeZoom,
) -> None:
    fake_zoom.fail_next(1, fault=Fault(delay=REQUEST_TIMEOUT * 0.6, then_serve=True))
    async with make_manager(fake_zoom) as tokens:
        results = await get_many(tokens, 30)
    assert {r.access_token for r in results} == {fake_zoom.issued_tokens[0]}
    assert fake_zoom.token_requests == 1


async def test_a_token_endpoint_slower_than_the_request_timeout_fails_after_the_retry_budget(
    fake_zoom: FakeZoom,
) -> None:
    # Slow but would-be-successful answers: the client must give up on each, not wait.
    fake_zoom.fail_next(50, fault=Fault(delay=REQUEST_TIMEOUT + 2.0, then_serve=True))
    async with make_manager(fake_zoom) as tokens:
        results = await get_many(tokens, 20)
    assert all(isinstance(r, TokenEndpointError) for r in results), results
    assert "timed out" in str(results[0])
    assert f"gave up after {RETRY.attempts} attempts" in str(results[0])
    assert fake_zoom.token_requests == RETRY.attempts


async def test_one_timed_out_attempt_is_retried_within_the_same_call(fake_zoom: FakeZoom) -> None:
    fake_zoom.fail_next(1, fault=Fault(delay=REQUEST_TIMEOUT + 1.0, then_serve=True))
    async with make_manager(fake_zoom) as tokens:
        token = await get(tokens)
    assert token.access_token == fake_zoom.issued_tokens[-1]
    assert fake_zoom.token_requests == 2


@pytest.mark.parametrize("resets", [1, RETRY.attempts])
async def test_connection_resets_are_retried_within_the_retry_policy(
    fake_zoom: FakeZoom, resets: int
) -> None:
    fake_zoom.fail_next(resets, fault=Fault(reset=True))
    async with make_manager(fake_zoom) as tokens:
        results = await get_many(tokens, 10)
    if resets < RETRY.attempts:
        assert {r.access_token for r in results} == {fake_zoom.issued_tokens[0]}
        assert fake_zoom.token_requests == resets + 1
    else:
        assert all(isinstance(r, TokenEndpointError) for r in results), results
        assert "failed" in str(results[0])
        assert results[0].status is None  # no answer came
        assert fake_zoom.token_requests == RETRY.attempts


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_storm_fails_callers_fast_after_the_retries_and_recovers(
    fake_zoom: FakeZoom, status: int
) -> None:
    fake_zoom.fail_next(1000, fault=Fault(status=status))
    async with make_manager(fake_zoom) as tokens:
        results = await get_many(tokens, 30)
        assert all(isinstance(r, TokenEndpointError) for r in results), results
        assert {r.status for r in results} == {status}
        assert fake_zoom.token_requests == RETRY.attempts
        # While backing off, callers learn at once and Zoom is not asked again.
        for _ in range(20):
            with pytest.raises(TokenEndpointError, match=r"remembered|fleet waits"):
                await get(tokens)
        assert fake_zoom.token_requests == RETRY.attempts
        fake_zoom.clear_faults()
        deadline = time.monotonic() + 5  # the back-off after one failure is 0.5-1 s
        while True:
            try:
                token = await get(tokens)
                break
            except TokenEndpointError:
                assert time.monotonic() < deadline, "did not recover after the storm"
                await asyncio.sleep(0.05)
    assert token.access_token == fake_zoom.issued_tokens[0]
    assert fake_zoom.token_requests == RETRY.attempts + 1


@pytest.mark.parametrize(
    ("status", "error", "requests"),
    [
        (200, MalformedTokenResponseError, 1),  # a proxy's page with 200: not a token, no retry
        (502, TokenEndpointError, RETRY.attempts),  # a gateway error page: transient
        (403, InvalidCredentialsError, 1),  # a WAF's block page: permanent
    ],
)
async def test_an_html_page_instead_of_json_is_a_clear_error(
    fake_zoom: FakeZoom, status: int, error: type[Exception], requests: int
) -> None:
    fake_zoom.fail_next(
        100, fault=Fault(status=status, body=HTML_PAGE, content_type="text/html")
    )
    async with make_manager(fake_zoom) as tokens:
        results = await get_many(tokens, 10)
    assert all(type(r) is error for r in results), results
    if status == 200:
        assert "HTML page" in str(results[0])
    assert "<html" not in str(results[0]).lower()  # the page itself is not dumped on users
    assert fake_zoom.token_requests == requests


async def test_a_rate_limited_token_endpoint_is_retried_after_retry_after_then_raised(
    fake_zoom: FakeZoom,
) -> None:
    fake_zoom.fail_next(
        100,
        fault=Fault(status=429, body={"reason": "slow down"}, headers={"Retry-After": "0.3"}),
    )
    async with make_manager(fake_zoom) as tokens:
        started = time.monotonic()
        with pytest.raises(TokenRateLimitedError) as info:
            await get(tokens)
        elapsed = time.monotonic() - started
    assert info.value.status == 429
    assert fake_zoom.token_requests == RETRY.attempts
    # Retry-After (0.3 s) replaced the 0.05 s back-off between the attempts.
    assert elapsed >= 0.3 * (RETRY.attempts - 1)


async def test_mixed_faults_in_one_call_are_all_retried_and_end_in_one_token(
    fake_zoom: FakeZoom,
) -> None:
    for fault in (
        Fault(reset=True),
        Fault(status=503),
        Fault(delay=REQUEST_TIMEOUT + 1.0, then_serve=True),
    ):
        fake_zoom.fail_next(1, fault=fault)
    retry = RetryPolicy(attempts=4, timeout=10, wait_initial=0.05, wait_max=0.1, wait_jitter=0)
    async with make_manager(fake_zoom, retry=retry) as tokens:
        results = await get_many(tokens, 20)
    assert {r.access_token for r in results} == {fake_zoom.issued_tokens[-1]}
    assert fake_zoom.token_requests == 4


# -- 2. fleet-wide back-off: unit level (two managers, one store) ----------------------


async def retry_until_zoom_is_asked(zoom: FakeZoom, tokens: TokenManager, requests: int) -> Any:
    """Call until Zoom has seen ``requests`` token requests; return the token or the error.

    Calls made while a back-off lasts raise the remembered error without a request.
    """
    deadline = time.monotonic() + 10  # the back-offs here are at most 4 s
    while True:
        asked = zoom.token_requests
        try:
            result = await get(tokens)
        except TokenEndpointError as exc:
            result = exc
        if zoom.token_requests > asked:
            assert zoom.token_requests == requests
            return result
        assert isinstance(result, TokenEndpointError)
        assert time.monotonic() < deadline, "the back-off did not end"
        await asyncio.sleep(0.05)


def _store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    if kind == "memory":
        return MemoryTokenStore()
    if kind == "file":
        return FileTokenStore(tmp_path / "tokens")
    return RedisTokenStore.from_url(request.getfixturevalue("redis_url"))


STORE_KINDS = ["memory", "file", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_the_fleet_backs_off_together_and_a_success_clears_the_record(
    fake_zoom: FakeZoom, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    store = _store(kind, tmp_path, request)
    fake_zoom.fail_next(1000, fault=Fault(status=503))
    try:
        async with make_manager(fake_zoom, store=store) as one, make_manager(
            fake_zoom, store=store
        ) as two:
            key = one.store_key
            with pytest.raises(TokenEndpointError):
                await get(one)
            assert fake_zoom.token_requests == RETRY.attempts
            # The other process raises the remembered error class without asking Zoom.
            with pytest.raises(TokenEndpointError, match="fleet waits") as info:
                await get(two)
            assert "HTTP 503" in str(info.value)
            assert fake_zoom.token_requests == RETRY.attempts
            first = (await store.read(key)).failure
            assert first is not None
            assert first.failures == 1
            assert first.error_type == "TokenEndpointError"

            # After the back-off the second process asks Zoom once more (it may refuse at
            # once until its own back-off ends); the count grows fleet-wide and so does
            # the back-off (>= 0.5 * 2 s after two failures).
            await retry_until_zoom_is_asked(fake_zoom, two, 2 * RETRY.attempts)
            second = (await store.read(key)).failure
            assert second is not None
            assert second.failures == 2
            assert second.retry_in >= 0.5 * 2 - 0.1  # relative: no host's clock in it
            assert fake_zoom.token_requests == 2 * RETRY.attempts
            with pytest.raises(TokenEndpointError, match="fleet waits"):
                await get(one)
            assert fake_zoom.token_requests == 2 * RETRY.attempts

            # Zoom heals: the first attempt after the back-off succeeds and clears it.
            fake_zoom.clear_faults()
            token = await retry_until_zoom_is_asked(fake_zoom, one, 2 * RETRY.attempts + 1)
            assert (await store.read(key)).failure is None
            assert fake_zoom.token_requests == 2 * RETRY.attempts + 1
            # The other process takes it from the store, not from Zoom (within its
            # next look at the store: see the test below).
            deadline = time.monotonic() + 5
            while True:
                try:
                    adopted = await get(two)
                    break
                except TokenEndpointError:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            assert adopted.access_token == token.access_token
            assert fake_zoom.token_requests == 2 * RETRY.attempts + 1
    finally:
        await store.aclose()


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_bad_credentials_are_remembered_fleet_wide_as_invalid_credentials(
    fake_zoom: FakeZoom, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    store = _store(kind, tmp_path, request)
    # Same account and client id (so the same store key), wrong secret.
    wrong = Credentials(fake_zoom.credentials.account_id, fake_zoom.credentials.client_id, "nope")
    try:
        async with TokenManager(
            wrong, store=store, token_url=fake_zoom.token_url, retry=RETRY, hooks=[]
        ) as one, TokenManager(
            wrong, store=store, token_url=fake_zoom.token_url, retry=RETRY, hooks=[]
        ) as two:
            with pytest.raises(InvalidCredentialsError):
                await get(one)
            for _ in range(5):
                with pytest.raises(InvalidCredentialsError, match="fleet waits") as info:
                    await get(two)
                assert "Invalid client_id or client_secret" in str(info.value)
            assert "nope" not in str(info.value)
    finally:
        await store.aclose()
    assert fake_zoom.token_requests == 1


# -- 2. fleet-wide back-off: real processes ------------------------------------------

FLEET_PROCESSES = 4
FLEET_COROUTINES = 10
STORM_SECONDS = 6.0
STORM_LIFETIME = 4  # the tokens held when the storm starts expire inside it
STORM_RETRY = {"attempts": 3, "timeout": 5.0, "wait_initial": 0.05, "wait_max": 0.1,
               "wait_jitter": 0.0}
STORM_MIN_TTL = 0.4  # = lifetime / 10, set explicitly so "usable" is the same for every token


def rounds_that_can_start_within(seconds: float) -> int:
    """Most fetch rounds that can start in ``seconds`` after the first one fails.

    Rounds are serialised by the store's lock, and after the n-th consecutive failure
    nobody may start the next before the back-off floor 0.5 * min(60, 2**(n-1)) s.
    """
    rounds, start = 1, 0.0
    while True:
        start += 0.5 * min(60.0, 2.0 ** (rounds - 1))
        if start > seconds:
            return rounds
        rounds += 1


def _spawn_fleet(
    directory: Path, started: list[Worker], label: str, zoom: FakeZoom, size: int,
    store: dict[str, Any],
) -> list[Worker]:
    fleet = []
    for index in range(size):
        worker = Worker(directory, {
            "mode": "callers",
            "name": f"{label}-{index}",
            "go": "go",
            "credentials": _credentials(zoom),
            "token_url": zoom.token_url,
            "store": store,
            "coroutines": FLEET_COROUTINES,
            "pause": [0.02, 0.06],
            "retry": STORM_RETRY,
            "manager": {"request_timeout": 1.0, "min_ttl": STORM_MIN_TTL},
            "valid_threshold": STORM_MIN_TTL + 0.05,
            "timeout": 150,
        })
        started.append(worker)
        fleet.append(worker)
    return fleet


def _credentials(zoom: FakeZoom) -> list[str]:
    c = zoom.credentials
    return [c.account_id, c.client_id, c.client_secret]


def _wait(condition: Any, timeout: float, what: str, interval: float = 0.02) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return time.time()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_fleet_in_a_token_endpoint_storm_asks_zoom_no_more_than_one_process_would(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """P=4 processes x C=10 coroutines vs one process, both through a 6 s 503 storm."""
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        stores = {"fleet": {"kind": "redis", "url": url, "prefix": "fleet"},
                  "solo": {"kind": "redis", "url": url, "prefix": "solo"}}
    else:
        stores = {"fleet": {"kind": "file", "path": str(tmp_path / "fleet")},
                  "solo": {"kind": "file", "path": str(tmp_path / "solo")}}
    with FakeZoom(expires_in=STORM_LIFETIME).running_in_thread() as fleet_zoom, \
            FakeZoom(expires_in=STORM_LIFETIME).running_in_thread() as solo_zoom, \
            workers(tmp_path / "workers") as (directory, started):
        zooms = {"fleet": fleet_zoom, "solo": solo_zoom}
        fleets = {}
        for label, size in (("fleet", FLEET_PROCESSES), ("solo", 1)):
            fleets[label] = _spawn_fleet(directory, started, label, zooms[label], size,
                                         stores[label])
        try:
            outcome = _run_storm(directory, started, zooms, fleets)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs(started)}") from None
    _check_storm(kind, outcome)


def _run_storm(
    directory: Path, started: list[Worker], zooms: dict[str, FakeZoom],
    fleets: dict[str, list[Worker]],
) -> dict[str, Any]:
    for worker in started:
        worker.wait_for("ready")
    t_go = time.time()
    write_json(directory / "go", t_go)
    # Everyone holds the first token, then the storm starts well before its refresh window.
    _wait(lambda: all(w.progress().get("ok", 0) > 0 for w in started), 10, "first tokens")
    time.sleep(max(0.0, t_go + 1.0 - time.time()))
    before = {}
    for label, zoom in zooms.items():
        assert zoom.tokens_issued == 1, f"{label}: the first token was fetched once"
        zoom.fail_next(1_000_000, fault=Fault(status=503))
        before[label] = zoom.token_requests
    storm_start = time.time()
    time.sleep(STORM_SECONDS)
    for zoom in zooms.values():
        zoom.expires_in = 3599  # the token after the storm outlives the test
        zoom.clear_faults()
    storm_end = time.time()
    recovered_at = {
        label: _wait(lambda z=zoom: z.tokens_issued >= 2, 30, f"{label} to refetch")
        for label, zoom in zooms.items()
    }
    for label, fleet in fleets.items():
        _wait(
            lambda f=fleet, t=recovered_at[label]: all(
                (w.progress().get("last_ok_at") or 0) > t for w in f
            ),
            70,  # the longest back-off is 60 s
            f"every {label} process to serve the new token",
        )
    time.sleep(0.5)
    (directory / "stop").touch()
    results = {label: [w.result() for w in fleet] for label, fleet in fleets.items()}
    requests = {label: zoom.token_requests - before[label] for label, zoom in zooms.items()}
    issued = {label: zoom.tokens_issued for label, zoom in zooms.items()}
    final = {label: zoom.issued_tokens[-1] for label, zoom in zooms.items()}
    return {"results": results, "requests": requests, "issued": issued, "final": final,
            "window": storm_end - storm_start, "storm_start": storm_start, "t_go": t_go,
            "recovered_at": recovered_at}


def _check_storm(kind: str, outcome: dict[str, Any]) -> None:
    from zoom_s2s.models import fingerprint

    results, requests, issued, final = (outcome[k] for k in ("results", "requests", "issued",
                                                             "final"))
    window, storm_start, t_go = outcome["window"], outcome["storm_start"], outcome["t_go"]
    recovered_at = outcome["recovered_at"]
    rounds = rounds_that_can_start_within(window)
    bound = rounds * STORM_RETRY["attempts"] + 1  # failed rounds, then one recovery fetch
    lags = {
        label: [round(r["last_error_at"] - recovered_at[label], 2) if r["last_error_at"] else None
                for r in res]
        for label, res in results.items()
    }
    print(
        f"\n[{kind}] storm {window:.2f} s: {FLEET_PROCESSES}x{FLEET_COROUTINES} fleet made "
        f"{requests['fleet']} token requests, one process {requests['solo']}; bound {bound} "
        f"({rounds} rounds x {STORM_RETRY['attempts']} attempts + 1). Errors after the "
        f"recovery fetch (s, per process): {lags}"
    )
    for res in results.values():
        for r in res:
            print(f"  {r['name']}: {r['counts']} {r['error_classes']} stats={r['stats']}")

    for label in ("fleet", "solo"):
        assert requests[label] <= bound, (label, requests[label], bound)
        assert issued[label] == 2, f"{label}: recovered with one fetch"
        res = results[label]
        assert sum(r["counts"].get("errors_with_valid_token", 0) for r in res) == 0, [
            r["samples"] for r in res
        ]
        assert all(r["counts"].get("hangs", 0) == 0 for r in res)
        assert all(r["counts"].get("expired_served", 0) == 0 for r in res)
        # Not vacuous: the storm outlived the tokens, so callers without one saw errors ...
        assert all(r["counts"].get("errors", 0) > 0 for r in res)
        assert {c for r in res for c in r["error_classes"]} == {"TokenEndpointError"}
        # ... and while the token was still usable inside the storm, callers were served.
        first_bucket = int((storm_start - t_go) / BUCKET) + 1
        storm_buckets = range(first_bucket, first_bucket + int(1.0 / BUCKET))
        for r in res:
            assert any(r["timeline"].get(str(b), {}).get("ok", 0) > 0 for b in storm_buckets), r
        # Every process ends on the one recovered token.
        fingerprints = {r["last_fp"] for r in res}
        assert len(fingerprints) == 1, fingerprints
    for label in ("fleet", "solo"):
        assert {r["last_fp"] for r in results[label]} == {fingerprint(final[label])}


# -- 4. short and odd lifetimes -------------------------------------------------------


# 5 s and 10 s lifetimes take 15 s and 30 s: they run with the soak tests (-m soak).
@pytest.mark.parametrize(
    "lifetime", [1, 2, pytest.param(5, marks=pytest.mark.soak), pytest.param(10, marks=pytest.mark.soak)]
)
async def test_short_lifetimes_refresh_about_once_per_lifetime_and_never_serve_expired_tokens(
    fake_zoom: FakeZoom, lifetime: int
) -> None:
    fake_zoom.expires_in = lifetime
    # A slow token endpoint (40 % of the lifetime): most refreshes end only after the old
    # token stopped being usable, so callers must wait rather than get an expired token.
    fake_zoom.latency = 0.4 * lifetime
    duration = 3 * lifetime
    store = MemoryTokenStore()  # two managers on one store: two "processes"
    served = expired = too_close = 0
    timeout = float(lifetime)  # above the endpoint's latency
    async with make_manager(fake_zoom, store=store, request_timeout=timeout) as one, make_manager(
        fake_zoom, store=store, request_timeout=timeout
    ) as two:
        loop = asyncio.get_running_loop()
        end = loop.time() + duration

        async def caller(tokens: TokenManager) -> None:
            nonlocal served, expired, too_close
            while loop.time() < end:
                token = await get(tokens)
                served += 1
                left = token.remaining(time.time())
                if left <= 0 or not fake_zoom.token_is_valid(token.access_token):
                    expired += 1
                if left < lifetime / 10 - 0.02:  # min_ttl: capped at a tenth of the lifetime
                    too_close += 1
                await asyncio.sleep(random.uniform(0.002, 0.02))

        await asyncio.wait_for(
            asyncio.gather(*(caller(t) for t in (one, two) for _ in range(5))), duration + 30
        )
        waits = one.stats().waits + two.stats().waits
    requests = fake_zoom.token_requests
    ideal = duration / lifetime
    print(f"\nlifetime {lifetime} s over {duration} s: {requests} token requests "
          f"(ideal {ideal:.0f}), {served} tokens served, {waits} waits")
    assert expired == 0
    assert too_close == 0
    # Each token is used until at least half its life has passed: at most 2 per lifetime.
    assert ideal <= requests <= 2 * ideal + 2
    # Every request got a token (one may have been cut off in flight by the end).
    assert fake_zoom.token_requests - fake_zoom.tokens_issued <= 1


async def test_odd_token_lifetimes_are_accepted_as_sent(fake_zoom: FakeZoom) -> None:
    for expires_in in (0.5, 1.5, 3599, 3600):
        fake_zoom.expires_in = expires_in
        async with make_manager(fake_zoom) as tokens:
            token = await get(tokens)
            again = await get(tokens)
        assert token.lifetime == pytest.approx(expires_in)
        assert again is token  # even a half-second token is reused, not refetched per call
    assert fake_zoom.token_requests == 4


async def test_callers_never_hang_on_a_stalled_token_endpoint_even_when_cancelled(
    fake_zoom: FakeZoom,
) -> None:
    fake_zoom.fail_next(50, fault=Fault(delay=REQUEST_TIMEOUT + 2.5))  # after every timeout
    async with make_manager(fake_zoom) as tokens:
        impatient = asyncio.create_task(tokens.get_token())
        patient = asyncio.create_task(tokens.get_token())
        await asyncio.sleep(0.1)
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        with pytest.raises(ZoomS2SError):
            await asyncio.wait_for(patient, HANG_GUARD)
    assert fake_zoom.token_requests == RETRY.attempts


@pytest.mark.parametrize("kind", ["memory", "file"])
async def test_a_process_backing_off_adopts_a_fresh_token_another_process_stored(
    fake_zoom: FakeZoom, tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    from zoom_s2s.stores.base import FailureRecord

    store = _store(kind, tmp_path, request)
    try:
        async with make_manager(fake_zoom, store=store) as bystander, make_manager(
            fake_zoom, store=MemoryTokenStore()
        ) as fetcher:
            key = bystander.store_key
            # The fleet is deep in a back-off (after many failures) ...
            lease = (await store.acquire_lock(key, ttl=30)).lease
            assert lease is not None
            await store.write_failure(lease, FailureRecord(
                failures=7, retry_in=30, error_type="TokenEndpointError",
                message="token endpoint failed with HTTP 503",
            ), keep_for=330)
            await store.release_lock(lease)
            with pytest.raises(TokenEndpointError, match="fleet waits"):
                await get(bystander)
            # ... when another process gets a token after all and stores it, as a
            # successful fetch does (token written, record cleared with it).
            fresh = await get(fetcher)  # a token from Zoom, as the other process got it
            lease = (await store.acquire_lock(key, ttl=30)).lease
            assert lease is not None
            assert await store.write(lease, fresh)
            await store.release_lock(lease)
            # The bystander should serve it soon, not raise for the rest of its back-off.
            deadline = time.monotonic() + 2
            while True:
                try:
                    token = await get(bystander)
                    break
                except TokenEndpointError:
                    assert time.monotonic() < deadline, "still raising with a fresh token stored"
                    await asyncio.sleep(0.1)
            assert token.access_token == fresh.access_token
    finally:
        await store.aclose()
