"""The generated API and operations table agree with Zoom's specs in specs/zoom/, and are current."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path

import pytest

from zoom_s2s.api._base import encode_uuid, query
from zoom_s2s.ratelimit import category_of, operation_of, page_size_max

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs" / "zoom"
NEWEST_FIRST = ("users", "team-chat", "accounts", "marketplace", "meetings", "phone")
LABELS = {"LIGHT": "light", "MEDIUM": "medium", "HEAVY": "heavy",
          "RESOURCE-INTENSIVE": "resource_intensive"}
MODULES = ("meetings", "users", "accounts", "chat", "phone", "marketplace")


def _spec_operations() -> list[tuple[str, str, dict[str, object], dict[str, object]]]:
    """(METHOD, path, operation, path item) of every operation, each once, newest spec first."""
    seen: dict[tuple[str, str], tuple[dict[str, object], dict[str, object]]] = {}
    for name in NEWEST_FIRST:
        spec = json.loads((SPECS / f"{name}.json").read_text())
        for path, item in spec["paths"].items():
            for method in ("get", "post", "put", "patch", "delete"):
                if method in item:
                    seen.setdefault((method.upper(), path), (item[method], item))
    return [(method, path, op, item) for (method, path), (op, item) in seen.items()]


OPERATIONS = _spec_operations()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "Zx9q-7w", path)


def _label(op: dict[str, object]) -> str | None:
    found = re.search(r"Rate Limit Label[^`]*`([^`]+)`", str(op.get("description", "")))
    return None if found is None else LABELS[found.group(1).strip().upper()]


def test_the_generated_files_are_what_the_vendored_specs_give(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ROOT / "tools" / "generate_api.py"
    spec = importlib.util.spec_from_file_location("generate_api", path)
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "generate_api", generator)
    spec.loader.exec_module(generator)
    assert generator.main(["--check"]) == 0, capsys.readouterr().out


def test_the_specs_hold_over_seven_hundred_operations_most_labelled() -> None:
    labelled = [op for _, _, op, _ in OPERATIONS if _label(op) is not None]
    assert len(OPERATIONS) >= 700
    assert len(labelled) >= 700


def test_category_of_gives_zoom_label_for_every_operation() -> None:
    wrong = [
        (method, path, category_of(method, _concrete(path)), _label(op))
        for method, path, op, _ in OPERATIONS
        if category_of(method, _concrete(path)) != _label(op)
    ]
    assert wrong == []


def test_a_concrete_path_finds_its_own_template() -> None:
    wrong = []
    for method, path, _, _ in OPERATIONS:
        found = operation_of(method, "/v2" + _concrete(path) + "?page_size=3")
        if found is None or found.path != path:
            wrong.append((method, path, found and found.path))
    assert wrong == []


def test_page_size_max_is_the_specs_maximum_for_every_list() -> None:
    wrong = []
    for method, path, op, item in OPERATIONS:
        params = [*item.get("parameters", []), *op.get("parameters", [])]  # type: ignore[misc]
        sizes = [p for p in params if p.get("name") == "page_size" and p.get("in") == "query"]
        declared = sizes[0].get("schema", {}).get("maximum") if sizes else None
        got = page_size_max(method, _concrete(path))
        if sizes and declared is not None and got != declared:
            wrong.append((method, path, got, declared))
        if not sizes and got is not None:
            wrong.append((method, path, got, None))
    assert wrong == []


def test_named_segments_win_over_parameters() -> None:
    assert operation_of("GET", "/users/summary").path == "/users/summary"  # type: ignore[union-attr]
    assert operation_of("GET", "/users/jchill@example.com").path == "/users/{userId}"  # type: ignore[union-attr]
    assert category_of("GET", "/users/summary") == "medium"
    assert category_of("GET", "/users/abc") == "light"


def test_unknown_operations_have_no_category() -> None:
    assert category_of("GET", "/no/such/api") is None
    assert category_of("PATCH", "/users") is None
    assert page_size_max("GET", "/users/abc") is None


def test_page_sizes_differ_by_endpoint() -> None:
    assert page_size_max("GET", "/users") == 2000
    assert page_size_max("GET", "/users/me/meetings") == 300


def test_operations_carry_idempotency_and_documented_caps() -> None:
    create = operation_of("POST", "/users/abc/meetings")
    update = operation_of("PATCH", "/webinars/123")
    assert create is not None
    assert update is not None
    assert not create.idempotent
    assert create.cap is not None
    assert (create.cap.scope, create.cap.limit, create.cap.period) == ("host", 100, 86_400)
    assert update.cap is not None
    assert update.cap.shared_by == create.cap.shared_by
    users = operation_of("POST", "/users")
    assert users is not None
    assert users.cap is not None
    assert dict(users.cap.plans) == {"free": 50, "pro": 1_500, "business": 10_000}
    presence = operation_of("PUT", "/users/abc/presence_status")
    assert presence is not None
    assert presence.idempotent
    assert presence.cap is not None
    assert (presence.cap.scope, presence.cap.limit, presence.cap.period) == ("user", 1, 60)
    assert operation_of("GET", "/users/abc").cap is None  # type: ignore[union-attr]


def test_every_operation_has_a_method_in_both_faces() -> None:
    documented: dict[str, set[str]] = {"async": set(), "sync": set()}
    for module in MODULES:
        loaded = importlib.import_module(f"zoom_s2s.api.{module}")
        for name, cls in vars(loaded).items():
            if not inspect.isclass(cls) or cls.__module__ != loaded.__name__:
                continue
            face = "sync" if name.startswith("Sync") else "async"
            for method in vars(cls).values():
                doc = " ".join((getattr(method, "__doc__", "") or "").split())
                found = re.search(r"``([A-Z]+ /[^`]*)``", doc)
                if found:
                    documented[face].add(found.group(1))
    expected = {f"{method} {path}" for method, path, _, _ in OPERATIONS}
    assert documented["async"] == expected
    assert documented["sync"] == expected


@pytest.mark.parametrize(
    ("uuid", "encoded"),
    [
        ("aDYlohsHRtCd4ii1uC2+hA==", "aDYlohsHRtCd4ii1uC2%2BhA%3D%3D"),
        ("/ajXp112QmuoKj4854875==", "%252FajXp112QmuoKj4854875%253D%253D"),
        ("ab//cd==", "ab%252F%252Fcd%253D%253D"),
        ("85746065", "85746065"),
    ],
)
def test_uuids_starting_with_a_slash_or_holding_two_are_double_encoded(
    uuid: str, encoded: str
) -> None:
    assert encode_uuid(uuid) == encoded


def test_query_strings_drop_unset_arguments_and_spell_booleans_as_zoom_does() -> None:
    assert query(a=None, b=True, c=False, d=3, e=["x", "y"]) == {
        "b": "true", "c": "false", "d": 3, "e": "x,y"
    }
