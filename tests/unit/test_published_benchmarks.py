"""The published benchmark figures: one machine-readable file, both READMEs' tables made from it,
and ``--check`` telling a figure that moved from one that did not."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import published
from benchmarks._common import Figure

README = Path(__file__).resolve().parents[2] / "README.rst"


def test_both_readmes_show_the_published_figures_as_generated_from_the_file() -> None:
    assert published.current_tables() == published.rendered_tables(), (
        "the tables differ from benchmarks/published.json: run python -m benchmarks --tables"
    )


def test_every_published_figure_lies_in_its_range_and_carries_its_conditions() -> None:
    document = published.load()
    assert document["conditions"]["process"] == "each benchmark in a fresh process"
    assert document["conditions"]["mode"] == "full"
    assert document["figures"]
    for row in document["figures"]:
        low, high = row["range"]
        assert low <= row["value"] <= high, row["name"]
        assert row["runs"] >= 1, row["name"]
        assert len(row["load"]) == row["runs"], row["name"]


def test_the_readme_summary_names_only_published_figures() -> None:
    document = published.load()
    keys = {(row["benchmark"], row["name"]) for row in document["figures"]}
    named = [tuple(key) for entry in document["summary"] for key in entry["figures"]]
    assert named
    assert [key for key in named if key not in keys] == []


def test_check_reports_a_figure_out_of_its_range_and_passes_one_inside(
    capsys: pytest.CaptureFixture[str],
) -> None:
    row = published.load()["figures"][0]
    low, high = row["range"]
    inside = Figure(row["benchmark"], row["name"], (low + high) / 2, row["unit"])
    outside = Figure(row["benchmark"], row["name"], high * 2 + 1, row["unit"])

    assert published.check([inside], "full") == []
    moved = published.check([outside], "full")

    assert len(moved) == 1
    assert row["name"] in moved[0]
    assert "moved" in capsys.readouterr().out


def test_the_readme_stays_within_400_lines() -> None:
    assert len(README.read_text().splitlines()) <= 400
