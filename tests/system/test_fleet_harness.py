"""tests.harness.fleet: the one harness for worker processes (real processes, no mocks)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fleet import Fleet, FleetError, WorkerContext


async def together(worker: WorkerContext) -> dict[str, Any]:
    at = await worker.gate()
    started = time.time()
    ids = await worker.gather(lambda i: asyncio.sleep(0, result=i))
    return {"index": worker.index, "at": at, "started": started, "ids": ids,
            "options": worker.options, "store": worker.store}


async def fails(worker: WorkerContext) -> None:
    print("about to fail")
    raise ValueError("broken on purpose")


async def sleeps(worker: WorkerContext) -> None:
    worker.send("sleeping", pid=os.getpid())
    await asyncio.sleep(float(worker.options.get("seconds", 3600)))


async def counts(worker: WorkerContext) -> None:
    for n in range(1_000_000):
        worker.send("tick", n=n)
        await asyncio.sleep(0.01)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_a_fleet_starts_together_and_returns_every_result_in_order() -> None:
    with Fleet(store="memory://", coroutines=3, options={"shared": 1}, timeout=30) as fleet:
        first = fleet.run(together, [{"own": i} for i in range(3)])
        pids = [w.pid for w in fleet.workers]
        again = fleet.run(together, [{}, {}])  # idle workers are reused
        assert [w.pid for w in fleet.workers] == pids
    assert [r["index"] for r in first] == [0, 1, 2]
    assert [r["options"] for r in first] == [{"shared": 1, "own": i} for i in range(3)]
    assert all(r["ids"] == [0, 1, 2] for r in first)
    assert len({r["at"] for r in first}) == 1  # one instant for all
    assert all(r["started"] >= r["at"] for r in first)
    assert len(again) == 2
    assert not any(alive(pid) for pid in pids)


def test_a_failing_workload_is_a_fleet_error_with_its_traceback() -> None:
    with Fleet(timeout=30) as fleet:
        worker = fleet.spawn(fails)
        with pytest.raises(FleetError) as caught:
            worker.result()
    message = str(caught.value)
    assert "'error' while 'result' was expected" in message
    assert "ValueError: broken on purpose" in message
    assert "about to fail" in message  # the worker's own output, from its log


def test_waits_have_deadlines_and_a_killed_worker_is_reported() -> None:
    with Fleet(timeout=30) as fleet:
        worker = fleet.spawn(sleeps)
        worker.expect("sleeping")
        began = time.monotonic()
        with pytest.raises(FleetError, match="no 'result'"):
            worker.result(timeout=0.3)
        assert time.monotonic() - began < 5
        worker.sigkill()
        with pytest.raises(FleetError, match=r"exited \(-9\)"):
            worker.result(timeout=5)
        outcome = next(fleet.outcomes([worker], timeout=5))
        assert outcome.error is not None


def test_stop_and_continue_a_worker() -> None:
    with Fleet(timeout=30) as fleet:
        worker = fleet.spawn(counts)
        worker.expect("tick")
        worker.stop()
        assert worker.state() in ("T", "t")
        time.sleep(0.2)
        assert worker.poll() is None  # takes every tick sent before the stop
        with pytest.raises(FleetError, match="sent nothing"):
            worker.next_message(0.3)  # stopped: silent
        worker.cont()
        assert worker.expect("tick", 10)["n"] > 0
        pid = worker.pid
    assert not alive(pid)  # the with block killed it, though it never finished


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from tests.harness.fleet import Fleet
        fleet = Fleet(timeout=60)
        worker = fleet.spawn("tests.system.test_fleet_harness:sleeps")
        print(worker.expect("sleeping")["pid"], flush=True)
        time.sleep(3600)
    """))
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.send_signal(signal.SIGKILL)  # no clean-up code runs in the parent
        parent.wait(10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        parent.kill()
        parent.wait(10)


async def describes_itself(worker: WorkerContext) -> dict[str, Any]:
    return {"env": os.environ.get("FLEET_TEST_FLAG"), "cwd": os.getcwd(),
            "parent": os.getppid(), "hash_seed": os.environ.get("PYTHONHASHSEED"),
            "stdin_is_a_pipe": os.readlink("/proc/self/fd/0").startswith("pipe:")}


def test_workers_are_forked_with_their_own_environment_cwd_and_exit_code(tmp_path: Path) -> None:
    from tests.harness.forkserver import ForkedProcess

    env = {**os.environ, "FLEET_TEST_FLAG": "forked"}
    with Fleet(env=env, cwd=tmp_path, timeout=30) as fleet:
        worker = fleet.spawn(describes_itself)
        described = worker.finish()
        assert isinstance(worker.process, ForkedProcess)
        assert worker.process.returncode == 0
        killed = fleet.spawn(sleeps)
        killed.expect("sleeping")
        killed.sigkill()
        assert killed.process.returncode == -signal.SIGKILL
    assert described["env"] == "forked"
    assert described["cwd"] == str(tmp_path)
    assert described["parent"] not in (os.getpid(), 1)  # the fork server, not this process
    assert described["stdin_is_a_pipe"]


def test_a_worker_whose_interpreter_must_start_differently_is_started_afresh() -> None:
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    with Fleet(env=env, timeout=30) as fleet:
        worker = fleet.spawn(describes_itself)
        described = worker.finish()
        assert isinstance(worker.process, subprocess.Popen)
    assert described["hash_seed"] == "4242"
    assert described["parent"] == os.getpid()
