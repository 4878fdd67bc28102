"""The blocking faces pace: ``requests.ZoomAuth`` and ``httpx.ZoomAuth`` on a blocking
manager (``httpx.Client``, and ``httpx.AsyncClient`` through threads) take the fleet's
budget through :class:`zoom_s2s.sync.BlockingPacer`, against the fake's real rate
limits (FakeRateLimits) served from a thread, in real time."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from zoom_s2s import RateLimits
from zoom_s2s._loop_thread import LoopThread
from zoom_s2s.errors import ConfigurationError, DailyLimitExceededError
from zoom_s2s.sync import BlockingPacer, SyncTokenManager
from zoom_s2s.testing import FakeRateLimits, FakeZoom

from ..support import FAST_RETRY

requests = pytest.importorskip("requests")
httpx = pytest.importorskip("httpx")
from zoom_s2s.httpx import ZoomAuth as HttpxAuth  # noqa: E402 - after the skip
from zoom_s2s.requests import ZoomAuth as RequestsAuth  # noqa: E402

FACES = ("requests", "httpx.Client", "httpx.AsyncClient")

Call = Callable[[], int]  # one GET /users/me through the face: its status


def _serving(layer: FakeRateLimits) -> Iterator[FakeZoom]:
    fake = FakeZoom(rate_limits=layer)
    with fake.running_in_thread():
        yield fake


@pytest.fixture
def twenty_a_second() -> Iterator[FakeZoom]:
    """Zoom allowing 20 Light requests a second."""
    yield from _serving(FakeRateLimits({"Light": 20}))


@pytest.fixture(params=["header", "message"])
def five_a_day(request: pytest.FixtureRequest) -> Iterator[FakeZoom]:
    """Zoom allowing 5 Light requests a day, saying so in either of its forms: the
    headers of the last success ("header"), or only the 429's message ("message")."""
    yield from _serving(FakeRateLimits({"Light": 1000}, {"Light": 5}, daily_form=request.param))


@pytest.fixture
def manager() -> Iterator[Callable[[FakeZoom], SyncTokenManager]]:
    made: list[SyncTokenManager] = []

    def make(fake: FakeZoom) -> SyncTokenManager:
        made.append(SyncTokenManager(fake.credentials, token_url=fake.token_url, retry=FAST_RETRY))
        return made[-1]

    yield make
    for tokens in made:
        tokens.close()


def face(name: str, auth_options: dict[str, Any], tokens: SyncTokenManager,
         fake: FakeZoom) -> tuple[Call, Any, Callable[[], None]]:
    """(one call, the auth, closing) for the face ``name``."""
    url = f"{fake.api_base_url}/users/me"
    if name == "requests":
        auth = RequestsAuth(tokens, api_url=fake.api_base_url, **auth_options)
        session = requests.Session()
        session.auth = auth
        return (lambda: session.get(url, timeout=30).status_code), auth, session.close
    auth = HttpxAuth(tokens, api_url=fake.api_base_url, **auth_options)
    if name == "httpx.Client":
        client = httpx.Client(auth=auth, timeout=30)
        return (lambda: client.get(url).status_code), auth, client.close

    async def one() -> int:
        async with httpx.AsyncClient(auth=auth, timeout=30) as client:
            return (await client.get(url)).status_code

    return (lambda: asyncio.run(one())), auth, lambda: None


@pytest.mark.parametrize("name", FACES)
def test_a_burst_from_many_threads_is_paced_to_the_plan(
    name: str, twenty_a_second: FakeZoom, manager: Callable[[FakeZoom], SyncTokenManager]
) -> None:
    fake = twenty_a_second
    call, auth, close = face(
        name, {"rate_limits": RateLimits(light=20, headroom=0.1)}, manager(fake), fake
    )
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as threads:
            statuses = list(threads.map(lambda _: call(), range(30)))
    finally:
        close()
    assert statuses == [200] * 30
    layer = fake.rate_limits
    assert isinstance(layer, FakeRateLimits)
    assert layer.refused == {}  # Zoom never had to say no
    assert isinstance(auth.pacer, BlockingPacer)
    assert auth.pacer.stats()["permits"] == 30


@pytest.mark.parametrize("name", FACES)
@pytest.mark.parametrize("limits", [None, RateLimits(light=1000)], ids=["unconfigured", "plan"])
def test_a_daily_429_stops_the_next_request_before_it_is_sent(
    name: str, limits: RateLimits | None, five_a_day: FakeZoom,
    manager: Callable[[FakeZoom], SyncTokenManager],
) -> None:
    """Zoom's daily block is kept with or without ``rate_limits=``, as ZoomClient keeps it."""
    fake = five_a_day
    layer = fake.rate_limits
    assert isinstance(layer, FakeRateLimits)
    call, _, close = face(name, {"rate_limits": limits}, manager(fake), fake)
    try:
        assert [call() for _ in range(5)] == [200] * 5
        if layer.daily_form == "message":
            assert call() == 429  # Zoom's own answer, returned as it is
        sent = fake.api_requests
        for _ in range(2):
            with pytest.raises(DailyLimitExceededError) as held:
                call()
            assert not held.value.sent
        assert fake.api_requests == sent  # held back: they never reached Zoom
    finally:
        close()
    assert layer.refused == ({"daily": 1} if layer.daily_form == "message" else {})


@pytest.fixture
def two_a_second() -> Iterator[FakeZoom]:
    """Zoom allowing 2 Light requests a second: the second answer says none is left."""
    yield from _serving(FakeRateLimits({"Light": 2}))


@pytest.mark.parametrize("name", ["requests", "httpx.Client"])
def test_a_paced_request_waits_on_the_loop_once_unless_its_answer_spends_the_budget(
    name: str, two_a_second: FakeZoom, manager: Callable[[FakeZoom], SyncTokenManager],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The slot is waited for; a success that leaves budget is told to the loop without
    waiting; an answer saying the budget is spent is learned before the call returns.
    The token is read on the caller's thread, though the auth was made before the
    manager's first call (it used to wait on the loop for every request then)."""
    fake = two_a_second
    tokens = manager(fake)
    call, auth, close = face(name, {}, tokens, fake)
    waits: list[str] = []
    real_run = LoopThread.run

    def counted(self: LoopThread, make: Any, timeout: float | None) -> Any:
        waits.append(threading.current_thread().name)
        return real_run(self, make, timeout)

    try:
        tokens.get_token()  # warm: the token is then read without the loop
        monkeypatch.setattr(LoopThread, "run", counted)
        assert call() == 200  # Remaining: 1
        assert len(waits) == 1
        assert call() == 200  # Remaining: 0: the limiter pauses the budget first
        assert len(waits) == 3
        # The first request went out as its budget's probe; the second took a paced
        # slot, at the rate the first answer (told without waiting) taught the limiter.
        assert auth.pacer.stats()["permits"] == 1
    finally:
        monkeypatch.undo()
        close()
    assert all(thread == "MainThread" for thread in waits)


def test_auths_of_one_account_and_budget_share_one_limiter(
    twenty_a_second: FakeZoom, manager: Callable[[FakeZoom], SyncTokenManager]
) -> None:
    """An auth made per request keeps nothing per auth: the process holds one limiter
    per account and budget, and what one auth's answers taught paces the next."""
    fake = twenty_a_second
    tokens = manager(fake)
    url = f"{fake.api_base_url}/users/me"
    budget = RateLimits(light=20, headroom=0.1)
    with requests.Session() as session:
        for _ in range(10):
            auth = RequestsAuth(tokens, api_url=fake.api_base_url, rate_limits=budget)
            assert session.get(url, auth=auth, timeout=30).status_code == 200
        other = RequestsAuth(tokens, api_url=fake.api_base_url, rate_limits=RateLimits(light=10))
        assert session.get(url, auth=other, timeout=30).status_code == 200
    runtime = tokens._holder.runtime
    assert runtime is not None
    assert len(runtime.limiters) == 2  # one per budget, not one per auth
    # The last auth's pacer counts the slots of all ten: one limiter paced them.
    assert auth.pacer is not None
    assert auth.pacer.stats()["permits"] == 10


class _OwnTokens:
    """A blocking token source of the caller's own (not a manager of zoom_s2s.sync)."""

    def get_token(self) -> Any:
        raise AssertionError("not called")

    def invalidate(self, token: Any) -> bool:
        return False


def test_rate_limits_need_a_manager_of_zoom_s2s_sync() -> None:
    own = _OwnTokens()
    assert RequestsAuth(own).pacer is None  # signs, unpaced
    assert HttpxAuth(own).pacer is None
    for auth in (RequestsAuth, HttpxAuth):
        with pytest.raises(ConfigurationError, match="cannot be paced"):
            auth(own, rate_limits=RateLimits(light=10))
