"""The blocking facade: threads and its private loop, against the fake Zoom served from a thread.

fork() and interpreter exit need processes: tests/system/test_sync_processes.py.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zoom_s2s import FileTokenStore, RateLimits, TokenEvent, ZoomClient
from zoom_s2s.errors import ConfigurationError, NotFoundError, ZoomAPIError
from zoom_s2s.sync import SyncTokenManager, SyncZoomClient
from zoom_s2s.testing import FakeZoom

from ..support import FAST_RETRY


@pytest.fixture
def zoom() -> Iterator[FakeZoom]:
    fake = FakeZoom(latency=0.05)
    with fake.running_in_thread():
        yield fake


def make_tokens(zoom: FakeZoom, **kwargs: Any) -> SyncTokenManager:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("token_url", zoom.token_url)
    return SyncTokenManager(zoom.credentials, **kwargs)


def test_get_token_and_get_user_block_and_return(zoom: FakeZoom) -> None:
    with make_tokens(zoom) as tokens, SyncZoomClient(tokens, zoom.api_base_url) as client:
        token = tokens.get_token()
        user = client.get_user("me")
        assert user.account_id == zoom.credentials.account_id
        assert client.request("GET", "/users", params={"page_size": 5})["total_records"] == 1
        with pytest.raises(NotFoundError):
            client.get_user("nobody@example.com")
        assert tokens.get_token() == token
    assert zoom.tokens_issued == 1


def test_many_threads_at_once_share_one_token_fetch(zoom: FakeZoom) -> None:
    barrier = threading.Barrier(20)
    fingerprints: list[str] = []

    def worker() -> None:
        barrier.wait()
        fingerprints.append(tokens.get_token().fingerprint)

    with make_tokens(zoom) as tokens:
        threads = [threading.Thread(target=worker) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert len(fingerprints) == 20
    assert len(set(fingerprints)) == 1
    assert zoom.token_requests == 1


def test_a_revoked_token_is_invalidated_once_across_threads(zoom: FakeZoom) -> None:
    with make_tokens(zoom) as tokens, SyncZoomClient(tokens, zoom.api_base_url) as client:
        client.get_user("me")
        zoom.revoke_all()
        threads = [threading.Thread(target=client.get_user) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert tokens.stats().fetches == 2
    assert zoom.tokens_issued == 2


def test_a_store_factory_is_called_on_the_private_loop(zoom: FakeZoom, tmp_path: Path) -> None:
    made: list[str] = []

    def factory() -> FileTokenStore:
        made.append(threading.current_thread().name)
        return FileTokenStore(tmp_path)

    with make_tokens(zoom, store=factory) as tokens:
        tokens.get_token()
        tokens.get_token()
    assert made == ["zoom-s2s-sync"]
    with make_tokens(zoom, store=factory) as again:
        again.get_token()  # a second manager adopts the stored token
    assert zoom.token_requests == 1


def test_a_closed_facade_raises_a_clear_runtime_error(zoom: FakeZoom) -> None:
    tokens = make_tokens(zoom)
    client = SyncZoomClient(tokens, zoom.api_base_url)
    client.get_user("me")
    tokens.close()
    tokens.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        tokens.get_token()
    with pytest.raises(RuntimeError, match="closed"):
        client.get_user("me")  # closing the manager closed its clients' loop too
    client.close()


def test_a_call_from_the_loop_thread_itself_is_refused_not_deadlocked(zoom: FakeZoom) -> None:
    errors: list[BaseException] = []

    def hook(event: TokenEvent) -> None:
        try:
            holder[0].get_token()
        except BaseException as exc:  # recorded for the assertion
            errors.append(exc)

    holder: list[SyncTokenManager] = []
    with make_tokens(zoom, hooks=[hook], timeout=10) as tokens:
        holder.append(tokens)
        tokens.get_token()
    assert errors
    assert all(isinstance(e, RuntimeError) and "own event-loop" in str(e) for e in errors)


def test_a_session_cannot_be_passed_and_bad_arguments_fail_early(zoom: FakeZoom) -> None:
    with pytest.raises(ConfigurationError, match="session"):
        make_tokens(zoom, session=object())
    with pytest.raises(ConfigurationError, match="timeout"):
        make_tokens(zoom, timeout=0)
    with pytest.raises(ConfigurationError, match=r"unexpected option.*bogus"):
        make_tokens(zoom, bogus=1)
    with pytest.raises(ConfigurationError):
        make_tokens(zoom, token_url="not a url")
    with make_tokens(zoom) as tokens:
        with pytest.raises(ConfigurationError, match="session"):
            SyncZoomClient(tokens, zoom.api_base_url, session=object())
        with pytest.raises(ConfigurationError, match="base_url"):
            SyncZoomClient(tokens, "ftp://x")


def test_a_fresh_token_is_answered_without_waiting_for_the_loop_thread(zoom: FakeZoom) -> None:
    blocked, release = threading.Event(), threading.Event()

    def block() -> None:
        blocked.set()
        release.wait(5)

    with make_tokens(zoom, timeout=0.5) as tokens:
        first = tokens.get_token()
        runtime = tokens._holder.runtime
        assert runtime is not None
        # Block the private loop: a call that hopped onto it would time out.
        runtime.loop.call_soon_threadsafe(block)
        assert blocked.wait(5)
        try:
            assert tokens.get_token() is first
            with pytest.raises(TimeoutError):
                tokens.stats()  # this one needs the loop: the loop is blocked indeed
        finally:
            release.set()
        assert tokens.stats().last_used is not None
    assert zoom.token_requests == 1


def test_the_blocking_client_takes_every_option_of_the_async_one(zoom: FakeZoom) -> None:
    for name in ("request", "get_user", "paginate"):
        mine, theirs = getattr(SyncZoomClient, name), getattr(ZoomClient, name)
        assert inspect.signature(mine) == inspect.signature(theirs), name
    limits = RateLimits(light=50, medium=50, heavy=50)
    with (
        make_tokens(zoom) as tokens,
        SyncZoomClient(tokens, zoom.api_base_url, rate_limits=limits) as client,
    ):
        # Each option reaches the async client: Zoom (the fake) or the limiter says so.
        with pytest.raises(ZoomAPIError, match="login_type"):
            client.get_user("me", login_type=-1)
        with pytest.raises(ConfigurationError, match="bogus"):
            client.request("GET", "/users/me", rate_category="bogus")
        assert client.request("GET", "/users/me", rate_category="heavy")["id"] == zoom.me_id


def test_a_client_timeout_bounds_each_call(zoom: FakeZoom) -> None:
    zoom.latency = 0.5
    with (
        make_tokens(zoom) as tokens,
        SyncZoomClient(tokens, zoom.api_base_url, timeout=0.1) as client,
        pytest.raises(TimeoutError, match=r"0\.1 s"),
    ):
        client.get_user("me")


def test_in_the_refresh_window_the_token_is_answered_here_and_refreshed_once_on_the_loop(
    zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from zoom_s2s import _clock

    real = _clock.monotonic
    with make_tokens(zoom, timeout=5) as tokens:
        first = tokens.get_token()
        # 100 s before expiry: past the refresh moment, before min_ttl (defaults).
        monkeypatch.setattr(_clock, "monotonic", lambda: real() + zoom.expires_in - 100)
        runtime = tokens._holder.runtime
        assert runtime is not None
        runtime.loop.call_soon_threadsafe(time.sleep, 0.5)  # the loop is busy meanwhile
        time.sleep(0.05)
        started = real()
        assert tokens.get_token() is first
        assert real() - started < 0.25  # answered on this thread, not after the loop
        deadline = real() + 5
        while (token := tokens.get_token()) is first and real() < deadline:
            time.sleep(0.02)
        assert token is not first
        assert tokens.stats().background_refreshes == 1
    assert zoom.tokens_issued == 2
