"""``mypy --strict`` on a user's script calling 20 operations of the generated API: it passes, and
the same calls with wrong types fail it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MISTAKES = '''
from zoom_s2s import ZoomClient

async def wrong(zoom: ZoomClient) -> None:
    meeting = await zoom.meetings.get(123)
    topic: int = meeting["topic"]
    await zoom.meetings.create("me", {"topic": 42})
    await zoom.users.list(status="active")
    zoom.meetings.list("me", unknown=True)
'''


def _mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *map(str, paths)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
    )


@pytest.mark.slow
def test_a_user_script_calling_twenty_operations_passes_mypy_strict() -> None:
    result = _mypy(ROOT / "tests" / "typing" / "user_script.py")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_wrong_types_in_calls_and_answers_fail_mypy(tmp_path: Path) -> None:
    script = tmp_path / "mistakes.py"
    script.write_text(MISTAKES)
    result = _mypy(script)
    assert result.returncode == 1
    errors = result.stdout
    assert 'Incompatible types in assignment (expression has type "str", variable has type "int")' in errors
    assert 'TypedDict item "topic" has type "str"' in errors
    assert "AsyncIterator" in errors  # a list is iterated, not awaited
    assert 'Unexpected keyword argument "unknown"' in errors
