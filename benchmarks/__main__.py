"""``python -m benchmarks``: run the benchmarks, print the table, write results.json and plots."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType, ModuleType

from ._common import BenchmarkSkipped, Figure, RunContext, figure
from .report import format_table, machine_info, write_json

BENCHMARKS = (
    "hot_path", "cold_stampede", "fleet_soak", "peer", "api_overhead", "memory", "accounts",
    "rate_budget", "webhooks", "decode",
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="zoom-s2s benchmarks: figures against baselines measured in the same run.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="CI-sized workloads (whole run under a minute)"
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


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    args.output.mkdir(parents=True, exist_ok=True)
    mode = "quick" if args.quick else "full"
    machine = machine_info()
    print(
        f"zoom-s2s benchmarks ({mode}) on {machine['cpu']}, {machine['cores']} cores, "
        f"Python {machine['python']}, aiohttp {machine['aiohttp']}, redis-py "
        f"{machine['redis_py']}, redis-server {machine['redis_server']}",
        flush=True,
    )
    ctx = RunContext(quick=args.quick, output=args.output)
    figures: list[Figure] = []
    durations: dict[str, float] = {}
    started = time.monotonic()
    try:
        for name in args.names:
            module = importlib.import_module(f"{__package__}.{name}")
            print(f"-- {name}: {module.TITLE}", flush=True)
            began = time.monotonic()
            figures += _run_one(module, ctx)
            durations[name] = round(time.monotonic() - began, 2)
            print(f"   done in {durations[name]:.1f} s", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        ctx.close()
    durations["total"] = round(time.monotonic() - started, 2)
    write_json(
        args.output / "results.json",
        machine=machine,
        mode=mode,
        figures=figures,
        durations=durations,
        data=ctx.data,
    )
    print()
    print(format_table(figures))
    missed = sum(1 for fig in figures if fig.met is False)
    print(
        f"\n{len(figures)} figures, {missed} target(s) missed; "
        f"whole run {durations['total']:.1f} s; results in {args.output / 'results.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
