"""The deployment recipes of docs/deploying.rst, run as written: the real server or worker.

Each command is read from docs/deploying.rst (``.. recipe: <name>``), run by ``bash``
from a scratch directory (not the repository root) with ``EXAMPLES`` set, the
environment pointing at a FakeZoom served from this process, and no
``ZOOM_S2S_STORE``: the examples' per-user default store is what the workers
share. The commands run in a virtual environment holding exactly what the
page's ``pip install`` line installs (from this checkout), built once per
session: nothing the test environment brings can hide a missing dependency.
Requests or tasks are driven through it and the token fetches are counted at
the fake. The Kubernetes manifest is checked as YAML.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from zoom_s2s.testing import FakeZoom

from .test_examples import load_example, require

pytestmark = [pytest.mark.slow, pytest.mark.recipes]

ROOT = Path(__file__).resolve().parents[2]
DEPLOYING = ROOT / "docs" / "deploying.rst"
EXAMPLES = ROOT / "examples"


def recipe(name: str) -> str:
    """The command docs/deploying.rst gives under ``.. recipe: <name>``."""
    text = DEPLOYING.read_text()
    match = re.search(rf"\.\. recipe: {re.escape(name)}\n\n::\n\n    (.+?)\n", text)
    assert match, f"docs/deploying.rst has no command marked '.. recipe: {name}'"
    return match.group(1).strip()


def documented_install(marker: str) -> list[str]:
    """The requirements of the ``pip install`` line of docs/deploying.rst holding ``marker``,
    with ``zoom-s2s`` meaning this checkout."""
    for line in DEPLOYING.read_text().splitlines():
        if marker in line and "pip install " in line:
            words = shlex.split(line.split("pip install ", 1)[1], comments=True)
            return [re.sub(r"^zoom-s2s(?=\[|$)", "{source}", word) for word in words]
    raise AssertionError(f"docs/deploying.rst has no 'pip install' line with {marker!r}")


def documented_venv(factory: pytest.TempPathFactory, name: str, marker: str) -> Path:
    """The bin directory of a venv holding what the docs install, built once per session
    (xdist workers share it, under a lock)."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    venv = root / f"docs-venv-{name}"
    with (root / f"docs-venv-{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "built").exists():
            shutil.rmtree(venv, ignore_errors=True)
            source = venv / "source"  # a clean copy: no stale build/ of the checkout
            shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
                ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                "tests", "benchmarks", "docs",
            ))
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            requirements = [r.format(source=source) for r in documented_install(marker)]
            done = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                 "--disable-pip-version-check", *requirements],
                capture_output=True, text=True, timeout=600, check=False,
            )
            assert done.returncode == 0, f"pip install {requirements} failed:\n{done.stderr}"
            (venv / "built").touch()
    return venv / "bin"


@pytest.fixture(scope="session")
def examples_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install 'zoom-s2s[examples]'``, as the page's first lines say."""
    return documented_venv(tmp_path_factory, "examples", "'zoom-s2s[examples]'")


@pytest.fixture(scope="session")
def arq_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """arq's own environment, as the page's arq section builds it."""
    return documented_venv(tmp_path_factory, "arq", "arq-env/bin/pip")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def recipe_env(tmp_path: Path, bin_dir: Path, **extra: str) -> dict[str, str]:
    """This environment (the ``zoom`` fixture's variables), ``bin_dir`` first on PATH."""
    hidden = ("ZOOM_S2S_STORE", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    env = {key: value for key, value in os.environ.items() if key not in hidden}
    env.update(
        EXAMPLES=str(EXAMPLES),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        XDG_RUNTIME_DIR=str(tmp_path / "run"),  # where the examples' default store goes
        PYTHONUNBUFFERED="1",
        **extra,
    )
    (tmp_path / "run").mkdir(mode=0o700, exist_ok=True)
    return env


class Running:
    """A recipe's process group and its log."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"the recipe exited ({self.process.returncode}):\n{self.output()}")


@contextlib.contextmanager
def started(command: str, env: dict[str, str], cwd: Path) -> Iterator[Running]:
    """Run ``command`` with bash in its own process group; stop the whole group afterwards."""
    log = cwd / f"recipe-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Running(process, log)
    try:
        yield running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def wait_ready(running: Running, url: str, timeout: float = 30.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running.check_alive()
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"{url} was not ready within {timeout} s:\n{running.output()}")


def drive_web_app(running: Running, base: str, zoom: FakeZoom) -> dict[int, dict[str, Any]]:
    """200 GET /me over fresh connections, 8 at a time; /ready until 2+ workers answered."""
    import requests

    wait_ready(running, f"{base}/ready")

    def me(_: int) -> int:
        return requests.get(f"{base}/me", timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(me, range(200)))
    assert statuses == [200] * 200, running.output()
    workers: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + 10
    while len(workers) < 2 and time.monotonic() < deadline:
        with ThreadPoolExecutor(8) as pool:
            for ready in pool.map(lambda _: requests.get(f"{base}/ready", timeout=10), range(16)):
                body = ready.json()
                workers[body["pid"]] = body
    assert len(workers) >= 2, f"only one worker answered: {workers}"
    return workers


@pytest.mark.parametrize("name", ["gunicorn-aiohttp", "uvicorn-workers", "gunicorn-uvicorn"])
def test_a_web_recipe_serves_4_workers_on_one_token(
    zoom: FakeZoom, tmp_path: Path, name: str, examples_bin: Path
) -> None:
    require("requests")
    command = recipe(name)
    port = free_port()
    command = command.replace("8000", str(port))
    with started(command, recipe_env(tmp_path, examples_bin), tmp_path) as running:
        workers = drive_web_app(running, f"http://127.0.0.1:{port}", zoom)
        assert sum(w["fetches"] for w in workers.values()) <= 1
    assert zoom.tokens_issued == 1
    assert zoom.api_unauthorized == 0
    # The token went through the per-user default store, not a root-owned path.
    assert (tmp_path / "run" / "zoom-s2s").is_dir()


@pytest.mark.redis
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_celery_recipe_runs_40_tasks_over_4_prefork_children_on_one_token(
    zoom: FakeZoom,
    tmp_path: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    examples_bin: Path,
) -> None:
    require("celery")  # this process sends the tasks
    import redis

    if tuple(int(part) for part in redis.__version__.split(".")[:2]) < (6, 1):
        pytest.skip("kombu's Redis transport needs redis-py >= 6.1 (this is the arq environment)")
    broker, backend = redis_url, redis_url.rsplit("/", 1)[0] + "/1"
    env = recipe_env(
        tmp_path, examples_bin, CELERY_BROKER_URL=broker, CELERY_RESULT_BACKEND=backend
    )
    with started(recipe("celery-prefork"), env, tmp_path) as running:
        monkeypatch.setenv("CELERY_BROKER_URL", broker)
        monkeypatch.setenv("CELERY_RESULT_BACKEND", backend)
        example = load_example("celery_app")
        results: list[Any] = []
        try:
            # The worker knows the task by its module's name there: celery_app.
            results = [
                example.app.send_task("celery_app.user_email", args=("me",)) for _ in range(40)
            ]
            emails = [result.get(timeout=60) for result in results]
        except Exception as exc:
            running.check_alive()
            raise AssertionError(f"{exc!r}\n{running.output()}") from None
        finally:
            results.clear()  # before the app closes: their __del__ talks to the backend
            example.app.close()
        assert emails == ["jchill@example.com"] * 40
        children = subprocess.run(
            ["pgrep", "-g", str(running.process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) >= 5, running.output()  # bash, the main process, 4 children
    assert zoom.tokens_issued == 1
    assert (tmp_path / "run" / "zoom-s2s").is_dir()


@pytest.mark.redis
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_the_arq_recipe_runs_jobs_on_two_workers_with_one_token(
    zoom: FakeZoom, tmp_path: Path, redis_url: str, arq_bin: Path
) -> None:
    """The workers run in arq's own environment (redis<6); this process enqueues."""
    require("arq")
    from arq import create_pool
    from arq.connections import RedisSettings

    env = recipe_env(tmp_path, arq_bin, REDIS_URL=redis_url)
    with started(recipe("arq"), env, tmp_path) as first, started(
        recipe("arq"), env, tmp_path
    ) as second:
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            jobs = [await pool.enqueue_job("user_email", "me") for _ in range(20)]
            try:
                results = [await job.result(timeout=30) for job in jobs if job is not None]
            except Exception as exc:
                first.check_alive()
                second.check_alive()
                raise AssertionError(f"{exc!r}\n{first.output()}{second.output()}") from None
        finally:
            await pool.aclose()
    assert results == ["jchill@example.com"] * 20
    assert zoom.tokens_issued == 1


# -- Kubernetes ------------------------------------------------------------------------


def manifest() -> list[dict[str, Any]]:
    yaml = pytest.importorskip("yaml")
    return [doc for doc in yaml.safe_load_all((EXAMPLES / "kubernetes.yaml").read_text()) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"one {kind} {name} expected"
    return found[0]


def test_the_kubernetes_manifest_has_the_settings_that_matter() -> None:
    docs = manifest()
    assert {(d["apiVersion"], d["kind"]) for d in docs} == {
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
    }
    app = by_kind(docs, "Deployment", "zoom-app")
    spec = app["spec"]
    assert spec["replicas"] >= 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = spec["template"]["spec"]["containers"]

    # The same command as the gunicorn recipe (the aiohttp worker, the factory called).
    command = container["command"]
    assert command[0] == "gunicorn"
    assert command[command.index("-k") + 1] == "aiohttp.GunicornWebWorker"
    assert command[-1] == "aiohttp_web_app:create_app()"
    bind = command[command.index("-b") + 1]
    port = int(bind.rsplit(":", 1)[1])
    assert bind.startswith("0.0.0.0:")
    assert {p["containerPort"] for p in container["ports"]} == {port}

    env = {item["name"]: item for item in container["env"]}
    for secret in ("ZOOM_CLIENT_SECRET", "ZOOM_S2S_STORE"):
        assert "value" not in env[secret], f"{secret} must come from a Secret"
        ref = env[secret]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "zoom-s2s", "key": secret}
    assert {"ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID"} <= set(env)

    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/ready"
    assert probe["port"] in ("http", port)
    assert container["securityContext"]["runAsNonRoot"] is True

    redis = by_kind(docs, "Deployment", "zoom-s2s-redis")
    service = by_kind(docs, "Service", "zoom-s2s-redis")
    redis_labels = redis["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= redis_labels.items()
    assert service["spec"]["ports"][0]["port"] == 6379
    # The Secret docs/deploying.rst creates points the store at that Service.
    assert "ZOOM_S2S_STORE=redis://zoom-s2s-redis:6379/0" in DEPLOYING.read_text()


def test_the_kubernetes_app_serves_the_readiness_route_it_probes() -> None:
    """/ready exists in the example the manifest runs (checked without a cluster)."""
    source = (EXAMPLES / "aiohttp_web_app.py").read_text()
    probe = manifest()[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert f'add_get("{probe["httpGet"]["path"]}"' in source
