"""A fleet of real processes sharing one token through a file or Redis store.

Each child is ``python -m tests.system.fleet_worker`` (see that module) talking to the
FakeZoom this test process serves from a thread; every count is taken at the
fake server, every child reports the fingerprints it got, and every child is
killed when the test ends, whether it passed or not. Sized for 2 cores.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from zoom_s2s.models import fingerprint
from zoom_s2s.testing import FakeZoom

from .fleet_worker import base_config, fleet, read_store

pytestmark = pytest.mark.slow


def test_cold_start_of_6_processes_x_50_coroutines_fetches_once(
    zoom: FakeZoom, store_spec: dict[str, Any]
) -> None:
    zoom.latency = 0.2  # keep the one fetch in flight while the others pile up
    config = base_config(zoom, store_spec, coroutines=50, steps=["gate", "get"])
    with fleet(config) as processes:
        children = [processes.spawn(f"p{i}") for i in range(6)]
        for child in children:
            child.expect("ready")
            child.expect("gate")
        processes.go(children)  # all 300 callers start at one wall-clock instant
        got = [child.expect("got")["fingerprints"] for child in children]
        done = [child.finish() for child in children]

    assert zoom.token_requests == 1
    assert zoom.tokens_issued == 1
    assert [len(fingerprints) for fingerprints in got] == [50] * 6
    assert {fp for fingerprints in got for fp in fingerprints} == {
        fingerprint(zoom.issued_tokens[0])
    }
    # One process fetched; the five others adopted its token from the store.
    assert sorted(d["stats"]["fetches"] for d in done) == [0, 0, 0, 0, 0, 1]


def test_four_processes_invalidating_one_token_at_once_refetch_once(
    zoom: FakeZoom, store_spec: dict[str, Any]
) -> None:
    zoom.latency = 0.1
    steps = ["gate", "get", "gate", "invalidate", "get", "invalidate", "get"]
    config = base_config(zoom, store_spec, coroutines=5, steps=steps)
    with fleet(config) as processes:
        children = [processes.spawn(f"p{i}") for i in range(4)]
        for child in children:
            child.expect("ready")
            child.expect("gate")
        processes.go(children)
        first = {fp for child in children for fp in child.expect("got")["fingerprints"]}
        for child in children:
            child.expect("gate")
        assert zoom.tokens_issued == 1
        # As after a burst of 401s: everyone drops the same token at one instant...
        processes.go(children)
        invalidated = [child.expect("invalidated") for child in children]
        second = {fp for child in children for fp in child.expect("got")["fingerprints"]}
        # ... and then once more, as a late 401 from a request sent with the old token.
        late = [child.expect("invalidated") for child in children]
        third = {fp for child in children for fp in child.expect("got")["fingerprints"]}
        for child in children:
            child.finish()
        key = children[0].seen[0]["store_key"]

    old, new = (fingerprint(token) for token in zoom.issued_tokens[:2])
    assert first == {old}
    assert {message["fingerprint"] for message in invalidated + late} == {old}
    # Compare-and-delete: the old token was deleted once; every other delete found it
    # gone, or found the new token, which they must not touch.
    assert [message["deleted"] for message in invalidated + late].count(True) == 1
    assert zoom.tokens_issued == 2
    assert second == third == {new}
    assert asyncio.run(read_store(store_spec, key)) == new


@pytest.mark.redis
def test_processes_with_skewed_clocks_share_one_token_through_redis(
    zoom: FakeZoom, redis_url: str
) -> None:
    """Clocks at -40 s, 0 and +40 s share one token, and none uses it past Zoom's expiry.

    Zoom grants ``expires_in`` (relative); the fetcher turns it into an expiry
    on its own clock, records it, and writes the Redis key with the remaining
    lifetime as its TTL. A reader believes the *earlier* of the recorded
    expiry (read on its own clock) and its clock plus the key's PTTL: the TTL
    may only shorten a token's life, never extend it (a ``PEXPIRE`` or a
    Redis clock stepping back cannot make a dead token look alive). So a
    reader whose clock is ahead of the fetcher's refreshes early by up to the
    skew, and none ever believes in a later expiry than Zoom's.

    What is left is transit time: the expiry counts from when the request was
    sent, so it errs early, and ``min_ttl`` (45 s, capped by the manager at a
    tenth of the 120 s lifetime, so 12 s here) keeps a token from being handed
    out in its last seconds, where a request could reach Zoom after it expired.
    """
    zoom.expires_in = 120
    config = base_config(
        zoom,
        {"kind": "redis", "url": redis_url},
        coroutines=10,
        steps=["gate", "get", "api"],
        manager={"refresh_margin": 30, "min_ttl": 45},
    )
    skews = (-40.0, 0.0, 40.0)
    with fleet(config) as processes:
        children = [processes.spawn(f"skew{s:+.0f}", skew=s) for s in skews]
        for child in children:
            child.expect("ready")
            child.expect("gate")
        before = time.time()
        processes.go(children)
        got = [set(child.expect("got")["fingerprints"]) for child in children]
        api = [child.expect("api")["status"] for child in children]
        done = [child.finish() for child in children]
        after = time.time()

    assert zoom.token_requests == 1
    assert got == [{fingerprint(zoom.issued_tokens[0])}] * 3
    assert api == [200, 200, 200]
    assert zoom.api_unauthorized == 0
    # No process believes in a later expiry than Zoom's (on the real clock);
    # one ahead of the fetcher believes in an earlier one, by at most the skew
    # between them (80 s here) plus the fetch's transit time.
    beliefs = [d["real_expires_at"] for d in done]
    for belief in beliefs:
        assert before + 120 - 80 - 2.0 <= belief <= after + 120, (before, beliefs, after)
    assert max(beliefs) >= before + 120 - 2.0, beliefs  # the fetcher's own is exact
