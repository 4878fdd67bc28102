"""The zoom-s2s command as its own process (python -m zoom_s2s).

It starts a process, so it is a system test; the in-process ones are in tests/unit/test_cli.py.
"""

from __future__ import annotations

import subprocess
import sys

from zoom_s2s.testing import FakeZoom

from ..support import SECRET
from ..unit.test_cli import one_error_line


def test_python_dash_m_runs_the_command_and_errors_have_no_traceback(zoom: FakeZoom) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "zoom_s2s", "user", "nobody@example.com"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    one_error_line(done.stderr)
    assert SECRET not in done.stderr
