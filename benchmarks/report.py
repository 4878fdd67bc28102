"""Output: machine info, the results table, results.json and the soak latency plot."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from ._common import Figure

__all__ = ["format_table", "machine_info", "plot_soak", "write_json"]


def _version(module: str) -> str | None:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "?"))
    except ImportError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _redis_server_version() -> str | None:
    try:
        out = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return next((part[2:] for part in out.split() if part.startswith("v=")), out.strip() or None)


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "zoom_s2s": _version("zoom_s2s"),
        "aiohttp": _version("aiohttp"),
        "redis_py": _version("redis"),
        "redis_server": _redis_server_version(),
        "authlib": _version("authlib"),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def _value(fig: Figure) -> str:
    if fig.value is None:
        return "-"
    value = fig.value
    if fig.unit == "x":
        text = f"{value:.2f}x" if value < 100 else f"{value:.0f}x"
    elif value == int(value) and abs(value) < 1e9:
        text = f"{int(value)}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {fig.unit}".rstrip() if fig.unit != "x" else text


def format_table(figures: Sequence[Figure]) -> str:
    """The results as a fixed-width text table (also valid reStructuredText).

    A figure measured in rounds shows the median of the per-round values, and
    beside it their range and the number of rounds.
    """
    rows = [("benchmark", "figure", "value", "spread", "target", "met", "note")]
    for fig in figures:
        met = "" if fig.met is None else ("yes" if fig.met else "MISSED")
        unit = "" if fig.unit in ("x", "") else f" {fig.unit}"
        spread = "" if fig.spread is None else fig.spread.text()
        if fig.spread is not None and unit and fig.spread.rounds > 1:
            spread = spread.replace(",", f"{unit},", 1)
        rows.append((fig.benchmark, fig.name, _value(fig), spread, fig.target, met, fig.note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "  ".join("=" * w for w in widths)
    lines = [
        rule,
        "  ".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True)).rstrip(),
        rule,
    ]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows[1:]
    ]
    lines.append(rule)
    return "\n".join(lines)


def write_json(
    path: Path,
    *,
    machine: dict[str, Any],
    mode: str,
    figures: Sequence[Figure],
    durations: dict[str, float],
    data: dict[str, Any],
) -> None:
    """Write everything the run measured to ``path``."""
    document = {
        "machine": machine,
        "mode": mode,
        "durations_s": durations,
        "figures": [attrs.asdict(fig) for fig in figures],
        "data": data,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def plot_soak(path: Path, runs: dict[str, Any]) -> str | None:
    """Plot get_token() latency over time per soak run, fetches as vertical lines.

    Returns:
        ``None`` on success, else why no plot was drawn.
    """
    if not runs:
        return "no soak data"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is missing: pip install -e '.[bench]'"
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 3.6 * len(runs)), squeeze=False)
    for ax, (label, run) in zip(axes[:, 0], runs.items(), strict=True):
        bucket = run["bucket_s"]
        series = [process["max_us"] for process in run["processes"]]
        fleet_max = [
            max((v for v in values if v is not None), default=None)
            for values in zip(*series, strict=True)
        ]
        xs = [i * bucket for i, v in enumerate(fleet_max) if v is not None]
        ys = [v for v in fleet_max if v is not None]
        ax.plot(
            xs,
            ys,
            linewidth=0.6,
            color="tab:blue",
            label=f"slowest call per {bucket * 1000:g} ms, whole fleet",
        )
        ax.axhline(1000, color="grey", linestyle="--", linewidth=0.8, label="1 ms target")
        for i, when in enumerate(run["fetches_s"]):
            legend = "token fetch" if i == 0 else None
            ax.axvline(when, color="red", linewidth=0.8, alpha=0.6, label=legend)
        ax.set_yscale("log")
        ax.set_xlabel("seconds since start")
        ax.set_ylabel("get_token() latency (us)")
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
