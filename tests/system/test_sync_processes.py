"""The blocking facade across processes: fork() and interpreter exit.

They start processes, so they are system tests; the in-process ones are in tests/unit/test_sync.py.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zoom_s2s.sync import SyncTokenManager, SyncZoomClient
from zoom_s2s.testing import FakeZoom

from ..support import FAST_RETRY

fork_only = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs fork()"
)


@pytest.fixture
def zoom() -> Iterator[FakeZoom]:
    fake = FakeZoom(latency=0.05)
    with fake.running_in_thread():
        yield fake


def make_tokens(zoom: FakeZoom, **kwargs: Any) -> SyncTokenManager:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("token_url", zoom.token_url)
    return SyncTokenManager(zoom.credentials, **kwargs)


def _child(tokens: SyncTokenManager, client: SyncZoomClient, results: Any) -> None:
    user = client.get_user("me")
    results.put((user.account_id, tokens.get_token().fingerprint, tokens.stats().fetches))


@fork_only
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_forked_processes_with_a_shared_file_store_cause_exactly_one_token_fetch(
    zoom: FakeZoom, tmp_path: Path
) -> None:
    tokens = make_tokens(zoom, store=(tmp_path / "tokens").as_uri())
    client = SyncZoomClient(tokens, zoom.api_base_url)
    # The parent's loop thread and manager exist before the fork (no token yet):
    # children must build their own, never reuse these.
    assert tokens.stats().fetches == 0
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    children = [context.Process(target=_child, args=(tokens, client, results)) for _ in range(4)]
    for child in children:
        child.start()
    got = [results.get(timeout=30) for _ in children]
    for child in children:
        child.join(10)
    assert [child.exitcode for child in children] == [0, 0, 0, 0]
    assert {account_id for account_id, _, _ in got} == {zoom.credentials.account_id}
    assert len({fingerprint for _, fingerprint, _ in got}) == 1
    assert sum(fetches for _, _, fetches in got) == 1
    assert zoom.token_requests == 1
    # The parent still works, and adopts the children's token from the store.
    assert tokens.get_token().fingerprint == got[0][1]
    assert client.get_user("me").id == zoom.me_id
    assert zoom.token_requests == 1
    tokens.close()


def _child_with_a_token(tokens: SyncTokenManager, results: Any) -> None:
    fingerprint = tokens.get_token().fingerprint
    stats = tokens.stats()
    results.put((fingerprint, stats.adoptions, stats.fetches))


@fork_only
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_token_held_before_fork_is_answered_by_each_childs_own_manager(
    zoom: FakeZoom, tmp_path: Path
) -> None:
    with make_tokens(zoom, store=(tmp_path / "tokens").as_uri()) as tokens:
        held = tokens.get_token()  # the parent's hot path now answers from its manager
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        children = [
            context.Process(target=_child_with_a_token, args=(tokens, results)) for _ in range(2)
        ]
        for child in children:
            child.start()
        got = [results.get(timeout=30) for _ in children]
        for child in children:
            child.join(10)
        assert [child.exitcode for child in children] == [0, 0]
        # Each child made its own manager, which adopted the stored token: the
        # parent's manager (and its loop, gone in the child) answered nothing there.
        assert got == [(held.fingerprint, 1, 0)] * 2
        assert tokens.get_token() is held
    assert zoom.token_requests == 1


def test_the_interpreter_exits_promptly_without_an_explicit_close() -> None:
    script = textwrap.dedent(
        """
        import atexit, threading

        # Registered first, so it runs last: after the facade's own exit handler.
        atexit.register(lambda: print(
            "loop threads left:", sum(t.name == "zoom-s2s-sync" for t in threading.enumerate())
        ))

        from zoom_s2s.sync import SyncTokenManager, SyncZoomClient
        from zoom_s2s.testing import FakeZoom

        zoom = FakeZoom()
        with zoom.running_in_thread():
            tokens = SyncTokenManager(zoom.credentials, token_url=zoom.token_url)
            client = SyncZoomClient(tokens, zoom.api_base_url)
            print(client.get_user("me").account_id)
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["fake-account-id", "loop threads left: 0"]
    assert "nclosed" not in done.stderr
    assert "Traceback" not in done.stderr
