"""``python -m benchmarks``: run the benchmarks, print the table, write results.json and plots.

Each benchmark runs in a fresh Python process of its own, so that no figure
depends on what ran before it in the same process (allocator arenas, caches,
warmed code). ``--check`` compares the run with ``benchmarks/published.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import FrameType, ModuleType

from ._common import BenchmarkSkipped, Figure, RunContext, figure
from .published import PUBLISHED, check, figures_from_json, publish, write_tables
from .report import format_table, machine_info, write_json

BENCHMARKS = (
    "hot_path", "cold_stampede", "fleet_soak", "peer", "api_overhead", "memory", "accounts",
    "rate_budget", "webhooks", "decode",
)
CHILD_TIMEOUT = 1800.0  # seconds one benchmark's process may take at most


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="zoom-s2s benchmarks: figures against baselines measured in the same run.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="CI-sized workloads (whole run under 2 minutes)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).resolve().parent / "results",
        help="directory for results.json and plots (default: benchmarks/results/)",
    )
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"compare the run with the published ranges ({PUBLISHED.name}); exit 1 if a "
        "figure moved out of its range",
    )
    parser.add_argument(
        "--publish",
        nargs="+",
        type=Path,
        metavar="RESULTS",
        help="no run: write published.json from these full runs' results.json, then the tables",
    )
    parser.add_argument(
        "--tables",
        action="store_true",
        help="no run: rewrite the tables in README.rst and benchmarks/README.rst from "
        "published.json",
    )
    # Internal: run the named benchmark(s) in this process, write figures and data to PATH.
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {BENCHMARKS}")
    args.names = [name for name in BENCHMARKS if name in names]
    return args


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM/SIGHUP unwind like Ctrl-C, so every finally block cleans up.
    raise KeyboardInterrupt(f"signal {signum}")


def _run_one(module: ModuleType, ctx: RunContext) -> list[Figure]:
    try:
        figures: list[Figure] = module.run(ctx)
    except BenchmarkSkipped as exc:
        return [figure(module.NAME, "skipped", None, note=str(exc))]
    except Exception as exc:
        traceback.print_exc()
        return [figure(module.NAME, "FAILED", None, note=f"{type(exc).__name__}: {exc}")]
    return figures


def _child(args: argparse.Namespace) -> int:
    """Run ``args.names`` here, in this process; write their figures and data to ``args.child``."""
    ctx = RunContext(quick=args.quick, output=args.output)
    load = machine_info()["load_average_at_start"]
    figures: list[Figure] = []
    try:
        for name in args.names:
            figures += _run_one(importlib.import_module(f"{__package__}.{name}"), ctx)
    finally:
        ctx.close()
    write_json(args.child, machine={"load_average_at_start": load}, mode="", figures=figures,
               durations={}, data=ctx.data)
    return 0


def _in_fresh_process(name: str, args: argparse.Namespace) -> tuple[list[Figure], dict, list]:
    """Run benchmark ``name`` in a new Python process: (figures, data, load average at start)."""
    from tests.harness.redis_server import die_with_parent

    result = args.output / f".{name}.json"
    result.unlink(missing_ok=True)
    command = [sys.executable, "-m", __package__, "--only", name, "--output", str(args.output),
               "--child", str(result)] + (["--quick"] if args.quick else [])
    process = subprocess.Popen(command, preexec_fn=die_with_parent)
    try:
        process.wait(CHILD_TIMEOUT)
    finally:
        if process.poll() is None:  # Ctrl-C, SIGTERM or the timeout: let it clean up
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
            if process.poll() is None:
                process.kill()
                process.wait()
    if not result.exists():
        why = f"its process exited with status {process.returncode} and no results"
        return [figure(name, "FAILED", None, note=why)], {}, []
    document = json.loads(result.read_text())
    result.unlink()
    load = document["machine"]["load_average_at_start"]
    return figures_from_json(document["figures"]), document["data"], load


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.publish or args.tables:
        if args.publish:
            publish(args.publish)
        for path in write_tables():
            print(f"wrote the tables in {path}")
        return 0
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    args.output.mkdir(parents=True, exist_ok=True)
    if args.child is not None:
        return _child(args)
    mode = "quick" if args.quick else "full"
    machine = machine_info()
    print(
        f"zoom-s2s benchmarks ({mode}) on {machine['cpu']}, {machine['cores']} cores, "
        f"Python {machine['python']}, aiohttp {machine['aiohttp']}, redis-py "
        f"{machine['redis_py']}, redis-server {machine['redis_server']}; each benchmark in "
        "a fresh process",
        flush=True,
    )
    figures: list[Figure] = []
    data: dict[str, object] = {}
    durations: dict[str, float] = {}
    machine["load_average_per_benchmark"] = loads = {}
    started = time.monotonic()
    try:
        for name in args.names:
            module = importlib.import_module(f"{__package__}.{name}")
            print(f"-- {name}: {module.TITLE}", flush=True)
            began = time.monotonic()
            mine, child_data, loads[name] = _in_fresh_process(name, args)
            figures += mine
            data.update(child_data)
            durations[name] = round(time.monotonic() - began, 2)
            print(f"   done in {durations[name]:.1f} s (load {loads[name]})", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    durations["total"] = round(time.monotonic() - started, 2)
    write_json(args.output / "results.json", machine=machine, mode=mode, figures=figures,
               durations=durations, data=data)
    print()
    print(format_table(figures))
    missed = sum(1 for fig in figures if fig.met is False)
    print(
        f"\n{len(figures)} figures, {missed} target(s) missed; "
        f"whole run {durations['total']:.1f} s; results in {args.output / 'results.json'}"
    )
    if args.check:
        moved = check(figures, mode)
        return 1 if moved else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
