"""Every example in examples/ runs for real against the fake Zoom.

The frameworks are the ``examples`` extra (also in ``test``, except arq: see
``require``). On a developer's machine without them these tests are skipped;
under CI they must run.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from zoom_s2s.testing import FakeZoom

from ..support import in_ci

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# arq pins redis<6, which would hold the whole test environment at redis-py 5
# (no async Redis Cluster pub/sub); it is installed without its dependencies
# instead: pip install --no-deps arq. It runs fine on redis-py 6+.
_INSTALL = {"arq": "pip install --no-deps 'arq>=0.25'"}


def require(module: str) -> None:
    """Skip without ``module`` locally; fail under CI, which must install it."""
    if not in_ci():
        pytest.importorskip(module)
        return
    try:
        importlib.import_module(module)
    except ImportError:
        how = _INSTALL.get(module, "pip install -e '.[test]'")
        pytest.fail(f"{module} is not installed; CI must install it ({how})", pytrace=False)


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py afresh (it reads the environment at startup)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def point_at(zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch, store: str = "memory://") -> None:
    creds = zoom.credentials
    monkeypatch.setenv("ZOOM_ACCOUNT_ID", creds.account_id)
    monkeypatch.setenv("ZOOM_CLIENT_ID", creds.client_id)
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", creds.client_secret)
    monkeypatch.setenv("ZOOM_TOKEN_URL", zoom.token_url)
    monkeypatch.setenv("ZOOM_API_URL", zoom.api_base_url)
    monkeypatch.setenv("ZOOM_S2S_STORE", store)


async def test_aiohttp_web_app_serves_me(
    fake_zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(fake_zoom, monkeypatch)
    example = load_example("aiohttp_web_app")
    async with TestClient(TestServer(example.create_app())) as client:
        for _ in range(3):
            response = await client.get("/me")
            assert response.status == 200
            assert (await response.json())["account_id"] == fake_zoom.credentials.account_id
        fake_zoom.fail_next(1, route="api", fault=_not_found())
        assert (await client.get("/me")).status == 502
    assert fake_zoom.tokens_issued == 1


def _token_refused() -> Any:
    from zoom_s2s.testing import Fault

    return Fault(status=401, body={"code": 124, "message": "Invalid access token."})


async def test_aiohttp_web_app_is_ready_only_while_the_api_accepts_its_token(
    fake_zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(fake_zoom, monkeypatch)
    example = load_example("aiohttp_web_app")
    async with TestClient(TestServer(example.create_app())) as client:
        fake_zoom.fail_next(2, route="api", fault=_token_refused())  # the fresh token too
        response = await client.get("/ready")
        assert response.status == 503
        assert "124" in await response.text()
        assert (await client.get("/ready")).status == 200
        calls = fake_zoom.api_requests
        assert (await client.get("/ready")).status == 200
        assert fake_zoom.api_requests == calls  # a recent success answers: no probe call


async def test_fastapi_app_is_ready_only_while_the_api_accepts_its_token(
    fake_zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    require("fastapi")
    require("httpx")
    import httpx

    point_at(fake_zoom, monkeypatch)
    example = load_example("fastapi_app")
    app = example.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            fake_zoom.fail_next(2, route="api", fault=_token_refused())
            response = await client.get("/ready")
            assert response.status_code == 503
            assert "124" in response.text
            assert (await client.get("/ready")).status_code == 200
            calls = fake_zoom.api_requests
            assert (await client.get("/ready")).status_code == 200
            assert fake_zoom.api_requests == calls


def _not_found() -> Any:
    from zoom_s2s.testing import Fault

    return Fault(status=404, body={"code": 1001, "message": "User does not exist: me."})


async def test_fastapi_app_serves_me_within_its_lifespan(
    fake_zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    require("fastapi")
    require("httpx")
    import httpx

    point_at(fake_zoom, monkeypatch)
    example = load_example("fastapi_app")
    app = example.app
    async with app.router.lifespan_context(app):  # what an ASGI server runs around requests
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            for _ in range(3):
                response = await client.get("/me")
                assert response.status_code == 200
                assert response.json()["id"] == fake_zoom.me_id
            fake_zoom.fail_next(1, route="api", fault=_not_found())
            assert (await client.get("/me")).status_code == 502
    assert fake_zoom.tokens_issued == 1


@pytest.mark.redis
@pytest.mark.filterwarnings("ignore::DeprecationWarning:arq")  # arq's own calls into redis-py
async def test_arq_worker_runs_its_job_with_the_token_in_redis(
    fake_zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    require("arq")
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import create_worker

    point_at(fake_zoom, monkeypatch)
    monkeypatch.delenv("ZOOM_S2S_STORE")  # the example then shares tokens through REDIS_URL
    monkeypatch.setenv("REDIS_URL", redis_url)
    example = load_example("arq_worker")

    # The hooks and the job, called as arq calls them.
    ctx: dict[str, Any] = {}
    await example.startup(ctx)
    try:
        assert await example.user_email(ctx) == "jchill@example.com"
    finally:
        await example.shutdown(ctx)

    # And a real burst worker built from WorkerSettings, fed through Redis.
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        job = await pool.enqueue_job("user_email", "me")
        assert job is not None
        worker = create_worker(example.WorkerSettings, burst=True, poll_delay=0.05)
        try:
            await worker.async_run()
        finally:
            await worker.close()
        assert await job.result(timeout=10) == "jchill@example.com"
    finally:
        await pool.aclose()
    assert fake_zoom.tokens_issued == 1  # the worker adopted the token from Redis


def _celery_child(module: ModuleType, results: Any) -> None:
    results.put(module.user_email("me"))


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_celery_task_runs_eagerly_and_in_forked_workers_with_one_token(
    zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require("celery")
    point_at(zoom, monkeypatch, store=(tmp_path / "tokens").as_uri())
    example = load_example("celery_app")
    example.app.conf.task_always_eager = True
    try:
        assert example.user_email.delay("me").get(timeout=10) == "jchill@example.com"
        if "fork" in multiprocessing.get_all_start_methods():
            # As in a prefork pool: children forked after the parent used the client.
            context = multiprocessing.get_context("fork")
            results = context.Queue()
            children = [
                context.Process(target=_celery_child, args=(example, results)) for _ in range(2)
            ]
            for child in children:
                child.start()
            assert [results.get(timeout=30) for _ in children] == ["jchill@example.com"] * 2
            for child in children:
                child.join(10)
                assert child.exitcode == 0
    finally:
        example.zoom().tokens.close()
        example.zoom.cache_clear()
    assert zoom.tokens_issued == 1
