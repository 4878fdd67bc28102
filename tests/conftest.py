"""Shared fixtures, and the suite's rules. The Redis ones start a real ``redis-server``
once per session (per xdist worker).

Tests marked ``redis`` need ``redis-server`` on PATH: without it they are
skipped on a developer's machine but *fail* when ``CI`` is set, because CI
installs Redis and a silent skip there would hide a broken setup.

The rules: the suite runs on the xdist workers pyproject.toml's ``addopts`` asks
for (``-n 0`` to debug with ``--pdb``), in the units of work :func:`work_unit`
names; tests marked ``soak`` run only under ``-m soak``; a test in tests/unit/
that starts a process fails.
"""

from __future__ import annotations

import multiprocessing.process
import os
import re
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import pytest_asyncio

from tests.harness.redis_server import RedisServer, redis_server_available
from zoom_s2s import TokenManager
from zoom_s2s.testing import FakeClock, FakeZoom

from .support import FAST_RETRY, SECRET, skip_or_fail


def _require_redis_server() -> None:
    if redis_server_available():
        return
    skip_or_fail(
        "redis-server is not on PATH (install it, e.g. apt-get install redis-server)",
        "CI must install it",
    )


# -- how the xdist workers share the suite (addopts: --dist loadgroup) ----------------
#
# A unit of work goes to one worker: a test class; every test of a module listed
# here (their module-scoped fixtures start servers: a Redis Cluster, a Sentinel, an
# ACL'd redis-server, so one worker starts each once); any other test on its own.
# (xdist's own loadgroup cannot be used: on pytest 9.2 it silently stops grouping,
# pytest-dev/pytest-xdist#1386.) pytest_collection_modifyitems checks the list.
WHOLE_MODULES = frozenset({
    "tests/system/test_redis_cluster.py",
    "tests/system/test_redis_hardening.py",
})


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to, from its node id."""
    path, _, rest = nodeid.partition("::")
    if path in WHOLE_MODULES:
        return path
    names = rest.partition("[")[0].split("::")
    if len(names) > 1:  # a method: its class
        return f"{path}::{names[0]}"
    return nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadgroup``, hand out the units of :func:`work_unit`."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

        def _reschedule(self, node: Any) -> None:
            # A worker started in place of a crashed one has no collection yet
            # (xdist's loadscope would raise KeyError): it gets work once it has.
            if node in self.registered_collections:
                super()._reschedule(node)

        def remove_node(self, node: Any) -> str | None:
            # As --dist load does: the test a worker died in (pytest-timeout ends a
            # hung one so) is reported once, not run again on each new worker.
            workload: dict[str, dict[str, bool]] = self.assigned_work.pop(node)
            pending = [(s, n) for s, unit in workload.items() for n, done in unit.items() if not done]
            if not pending:
                return None
            scope, crashed = pending[0]
            workload[scope][crashed] = True
            self.workqueue.update((s, u) for s, u in workload.items() if not all(u.values()))
            for other in self.assigned_work:
                self._reschedule(other)
            return crashed

    return UnitScheduling(config, log)


ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Cache bytecode once, before the xdist workers start, when nothing else would.

    With ``PYTHONDONTWRITEBYTECODE`` set (as on this project's CI machines)
    every worker rewrote the asserts of every test module (and of the package:
    see below) at collection, about 3 s of CPU each, and every interpreter the
    tests start compiled the package again: a fifth of the suite's CPU. The
    controller compiles the package and rewrites those modules into
    ``__pycache__`` (where Python and pytest put them anyway; git ignores it),
    which both read even with the variable set.
    A cache is only a cache: any failure here leaves the suite as it was.
    """
    if not sys.dont_write_bytecode or hasattr(config, "workerinput"):
        return
    import compileall

    for package in ("zoom_s2s", "tests", "benchmarks"):
        compileall.compile_dir(ROOT / package, quiet=2)
    try:  # pytest's own rewrite and cache format, as its import hook writes them
        from _pytest.assertion import rewrite

        state = config.stash[rewrite.assertstate_key]
        # The test modules, and the whole package: pytest rewrites the package
        # of a plugin it loads from an entry point (zoom_s2s.testing's).
        sources = [
            source
            for source in sorted((ROOT / "tests").rglob("*.py"))
            if source.name == "conftest.py" or source.name.startswith("test_")
        ] + sorted(p for p in (ROOT / "zoom_s2s").rglob("*.py") if p.parent.name != "api")
        # (not the generated API: few workers load it, and its 33k lines took a second here)
        for source in sources:
            pyc = rewrite.get_cache_dir(source) / (source.name[:-3] + rewrite.PYC_TAIL)
            if rewrite._read_pyc(source, pyc) is None:
                source_hash, code = rewrite._rewrite_test(source, config)
                rewrite._write_pyc(state, code, source_hash, pyc)
    except Exception as exc:
        warnings.warn(f"could not cache the rewritten test modules: {exc!r}", stacklevel=1)


OPT_IN = ("soak", "recipes")
"""Markers whose tests run only when ``-m`` names them (CI runs each as a step of its own)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the opt-in tests unless ``-m`` names them; check :data:`WHOLE_MODULES`.

    The soak tests take a minute or more (``python -m pytest -m soak -n 0``); the
    recipe tests first build venvs holding exactly what docs/deploying.rst
    installs (``python -m pytest -m recipes``). Any other ``-m`` leaves them out too.
    """
    markexpr = config.getoption("markexpr", "") or ""
    for marker in OPT_IN:
        if re.search(rf"\b{marker}\b", markexpr):
            continue
        left_out = [item for item in items if item.get_closest_marker(marker) is not None]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if item.get_closest_marker(marker) is None]
    # Warn when the users of a module-scoped fixture would be spread over workers.
    units: dict[str, set[str]] = {}
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        for name, definitions in (info.name2fixturedefs.items() if info else ()):
            if definitions[-1].scope in ("module", "package") and not name.startswith("_"):
                key = f"{definitions[-1].baseid}::{name}"
                units.setdefault(key, set()).add(work_unit(item.nodeid))
    for key, spread in sorted(units.items()):
        if len(spread) > 1:
            warnings.warn(
                f"fixture {key} is used by {len(spread)} xdist work units, so several "
                "workers may each set it up: add its module to WHOLE_MODULES in "
                "tests/conftest.py",
                pytest.PytestWarning,
                stacklevel=1,
            )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("redis") is not None:
        _require_redis_server()


UNIT_TESTS = Path(__file__).resolve().parent / "unit"


@pytest.fixture(autouse=True)
def _unit_tests_start_no_processes(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In tests/unit/, starting a process (subprocess, fork, multiprocessing) fails the test."""
    if not request.node.path.is_relative_to(UNIT_TESTS):
        return

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        pytest.fail(
            "a unit test started a process: move it to tests/system/ "
            "(tests/unit/ is fast and in-process)",
            pytrace=True,
        )

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)
    monkeypatch.setattr(os, "fork", refuse)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)


@pytest.fixture
def fake_clock() -> Iterator[FakeClock]:
    """The plugin's ``fake_clock``, with the virtual wall clock at 12:00 UTC today.

    Daily limits reset at 00:00 UTC, so a test that starts minutes before
    midnight (and jumps virtual time past it) would see another day than the one
    it counted in; at noon no test depends on the hour the suite runs at. A
    test about midnight steps the wall clock there itself (``step_wall``).
    """
    with FakeClock() as clock:
        wall = clock.wall()
        clock.step_wall((wall // 86400) * 86400 + 43200 - wall)
        yield clock


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real ``redis-server`` on a free loopback port for the whole session."""
    _require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, with an empty database (restarted if a test stopped it)."""
    redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def zoom(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeZoom]:
    """A FakeZoom served from a thread, so child processes and sync code can reach it.

    The environment the CLI and ``Credentials.from_env()`` read points at it,
    with ``tests.support.SECRET`` as the client secret.
    """
    fake = FakeZoom(client_secret=SECRET)
    with fake.running_in_thread():
        creds = fake.credentials
        monkeypatch.setenv("ZOOM_ACCOUNT_ID", creds.account_id)
        monkeypatch.setenv("ZOOM_CLIENT_ID", creds.client_id)
        monkeypatch.setenv("ZOOM_CLIENT_SECRET", SECRET)
        monkeypatch.setenv("ZOOM_TOKEN_URL", fake.token_url)
        monkeypatch.setenv("ZOOM_API_URL", fake.api_base_url)
        for name in ("ZOOM_ACCESS_TOKEN", "ZOOM_S2S_STORE", "ZOOM_S2S_ENCRYPTION_KEYS"):
            monkeypatch.delenv(name, raising=False)
        yield fake


@pytest.fixture(params=["file", pytest.param("redis", marks=pytest.mark.redis)])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where a fleet of processes shares its token: a directory, or the session's Redis."""
    if request.param == "file":
        return {"kind": "file", "path": str(tmp_path / "tokens")}
    return {"kind": "redis", "url": request.getfixturevalue("redis_url")}


@pytest_asyncio.fixture
async def tokens(fake_zoom: FakeZoom) -> AsyncIterator[TokenManager]:
    """A TokenManager on the ``fake_zoom`` fixture, retrying without waiting."""
    async with TokenManager(
        fake_zoom.credentials, token_url=fake_zoom.token_url, retry=FAST_RETRY
    ) as manager:
        yield manager
