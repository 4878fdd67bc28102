"""The published figures (``published.json``): made from full runs, checked against a run,
rendered as the tables of README.rst and benchmarks/README.rst.

Each published figure has the median of its runs, the range a rerun should
land in, its target and its conditions (mode, rounds, load, own process).
``python -m benchmarks --check`` prints the figures that moved out of their
range; ``--publish RESULTS...`` writes the file from full runs; ``--tables``
rewrites the tables (a unit test checks that they match the file).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._common import Figure, Spread

__all__ = [
    "PUBLISHED",
    "check",
    "figures_from_json",
    "publish",
    "rendered_tables",
    "write_tables",
]

HERE = Path(__file__).resolve().parent
PUBLISHED = HERE / "published.json"
README = HERE.parent / "README.rst"
BENCH_README = HERE / "README.rst"
START, END = ".. published figures: start", ".. published figures: end"

# unit -> (relative, absolute) slack added around the published runs' medians
_SLACK = {
    "": (0.0, 0.0),  # counts are exact
    "x": (0.12, 0.0),
    "x limit": (0.05, 0.0),
    "%": (0.2, 1.0),
    "KiB": (0.1, 128.0),  # RSS growth: allocator noise of a few pages
    "KiB/account": (0.1, 0.0),
}
_DEFAULT_SLACK = (0.3, 0.0)  # times: ms, s, us, ns/call


def figures_from_json(rows: Iterable[dict[str, Any]]) -> list[Figure]:
    """Figures back from ``results.json`` rows."""
    figures = []
    for row in rows:
        spread = row.get("spread")
        figures.append(Figure(**{**row, "spread": Spread(**spread) if spread else None}))
    return figures


def load() -> dict[str, Any]:
    """The published figures and their conditions."""
    document: dict[str, Any] = json.loads(PUBLISHED.read_text())
    return document


def _key(row: dict[str, Any] | Figure) -> tuple[str, str]:
    if isinstance(row, Figure):
        return row.benchmark, row.name
    return row["benchmark"], row["name"]


def _range(unit: str, values: Sequence[float]) -> list[float]:
    relative, absolute = _SLACK.get(unit, _DEFAULT_SLACK)
    low, high = min(values), max(values)
    low = max(0.0, low - relative * abs(low) - absolute)
    high = high + relative * abs(high) + absolute
    return [round(low, 4), round(high, 4)]


def _meets(value: float, target: str) -> bool | None:
    if not target:
        return None
    operator, bound = target.split()
    return {"<=": value <= float(bound), "<": value < float(bound), ">=": value >= float(bound)}[
        operator
    ]


def publish(paths: Sequence[Path]) -> None:
    """Write ``published.json`` from the ``results.json`` of one or more full runs.

    A figure's value is the median of the runs' values; its range spans them,
    with a slack per unit (counts exact). The summary rows of the file already
    there are kept.
    """
    runs = [json.loads(path.read_text()) for path in paths]
    if any(run["mode"] != "full" for run in runs):
        raise SystemExit("publish full runs only (without --quick)")
    previous = load() if PUBLISHED.exists() else {"summary": []}
    by_key: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for run in reversed(runs):  # the figures in the order of the last run
        for row in run["figures"]:
            if row["value"] is not None:
                by_key.setdefault(_key(row), []).insert(0, (row, run))
    figures = []
    for key, seen in by_key.items():
        rows = [row for row, _ in seen]
        last = rows[-1]
        values = [row["value"] for row in rows]
        value = round(statistics.median(values), 4)
        loads = [run["machine"]["load_average_per_benchmark"].get(key[0], [None])[0]
                 for _, run in seen]
        figures.append({
            "benchmark": key[0],
            "name": key[1],
            "value": value,
            "unit": last["unit"],
            "range": _range(last["unit"], values),
            "target": last["target"],
            "met": _meets(value, last["target"]),
            "rounds": (last.get("spread") or {}).get("rounds"),
            "runs": len(rows),
            "load": [round(value, 1) for value in loads if value is not None],
            "note": f"last run: {last['note']}" if last["note"] else "",
        })
    first = runs[0]["machine"]
    conditions = {
        "mode": "full",
        "dates": sorted({run["machine"]["date"][:10] for run in runs}),
        "machine": f"{first['cpu']}, {first['cores']} cores, {first['platform']}",
        "versions": f"Python {first['python']}, aiohttp {first['aiohttp']}, redis-py "
        f"{first['redis_py']}, redis-server {first['redis_server']}",
        "process": "each benchmark in a fresh process",
        "runs": len(runs),
    }
    # One figure per line, so that a republication diffs figure by figure.
    head = json.dumps({"conditions": conditions, "summary": previous["summary"]}, indent=2)
    rows = ",\n".join(f"    {json.dumps(row)}" for row in figures)
    PUBLISHED.write_text(f'{head[:-2]},\n  "figures": [\n{rows}\n  ]\n}}\n')


def check(figures: Sequence[Figure], mode: str) -> list[str]:
    """Print how a run compares with the published ranges; the figures that moved."""
    published = load()
    measured = {_key(fig): fig for fig in figures}
    ran = {fig.benchmark for fig in figures}
    moved, compared, absent = [], 0, 0
    for row in published["figures"]:
        if row["benchmark"] not in ran:
            continue
        fig = measured.get(_key(row))
        if fig is None or fig.value is None:
            absent += 1
            continue
        compared += 1
        low, high = row["range"]
        if not low <= fig.value <= high:
            unit = "" if row["unit"] in ("", "x") else f" {row['unit']}"
            moved.append(
                f"{row['benchmark']}: {row['name']}: {fig.value:.4g}{unit}, published "
                f"{row['value']:.4g}{unit} (range {low:g}-{high:g})"
            )
    print(f"\n--check against {PUBLISHED.name} ({published['conditions']['mode']} runs): "
          f"{compared} figure(s) compared, {len(moved)} moved out of their range, "
          f"{absent} published but not measured")
    if mode != published["conditions"]["mode"]:
        print(f"  this run is {mode}: only the figures whose names match were compared")
    for line in moved:
        print(f"  moved: {line}")
    return moved


def _number(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x" if value < 100 else f"{value:.0f}x"
    if value == int(value) and abs(value) < 1e9:
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def _grid(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "  ".join("=" * w for w in widths)
    lines = [rule, "  ".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True)).rstrip(),
             rule]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in rows[1:]]
    return [*lines, rule]


def _full_table(document: dict[str, Any]) -> list[str]:
    conditions = document["conditions"]
    lines = [
        f"{conditions['runs']} full runs (``runs``: how many had the figure), "
        f"{', '.join(conditions['dates'])}, on "
        f"{conditions['machine']}; {conditions['versions']}; {conditions['process']}. "
        "``value`` is the median of the runs (each itself a median of per-round figures, "
        "``rounds`` per run); a rerun's value should land in ``range``; ``load`` is the "
        "1-minute load average when the benchmark's process started, per run.",
        "",
    ]
    rows = [("benchmark", "figure", "value", "range", "rounds", "target", "met", "load", "note")]
    for row in document["figures"]:
        met = "" if row["met"] is None or not row["target"] else ("yes" if row["met"] else "MISSED")
        low, high = row["range"]
        unit = row["unit"]
        span = "exact" if low == high else f"{_number(low, unit)}-{_number(high, unit)}"
        rows.append((
            row["benchmark"], row["name"], _number(row["value"], row["unit"]), span,
            str(row["rounds"] or ""), row["target"], met, ", ".join(map(str, row["load"])),
            row["note"],
        ))
    return lines + _grid(rows)


def _summary_table(document: dict[str, Any]) -> list[str]:
    by_key = {_key(row): row for row in document["figures"]}
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 60 40",
        "",
        "   * - figure (conditions in ``benchmarks/README.rst``)",
        "     - median",
    ]
    for entry in document["summary"]:
        values = []
        for benchmark, name in entry["figures"]:
            row = by_key.get((benchmark, name))
            values.append("?" if row is None else _number(row["value"], row["unit"]))
        text = entry.get("join", " / ").join(values)
        if entry.get("target"):
            text += f" (target {entry['target']})"
        lines += [f"   * - {entry['label']}", f"     - {text}"]
    return lines


def rendered_tables() -> dict[Path, list[str]]:
    """The generated lines each file holds between its markers."""
    document = load()
    return {README: _summary_table(document), BENCH_README: _full_table(document)}


def _between(text: str) -> tuple[str, str, str]:
    head, rest = text.split(START + "\n", 1)
    body, tail = rest.split(END + "\n", 1)
    return head, body, tail


def current_tables() -> dict[Path, list[str]]:
    """The lines each file holds between its markers now."""
    current = {}
    for path in rendered_tables():
        body = _between(path.read_text())[1]
        current[path] = body.strip("\n").split("\n")
    return current


def write_tables() -> list[Path]:
    """Rewrite the generated tables in both READMEs; the paths written."""
    for path, lines in rendered_tables().items():
        head, _, tail = _between(path.read_text())
        path.write_text(f"{head}{START}\n\n" + "\n".join(lines) + f"\n\n{END}\n{tail}")
    return list(rendered_tables())
