"""The pytest plugin in a user's project: README's test, without this repository's settings.

The project is a scratch directory with an empty ``pytest.ini`` (pytest-asyncio
in its default strict mode, no ``asyncio_mode = "auto"``), run by pytest in a
process of its own.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.rst"


def readme_test() -> str:
    """The code block that follows README's 'fake_zoom pytest fixture' paragraph."""
    text = README.read_text()
    start = text.index("The ``fake_zoom`` pytest fixture")
    match = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text[start:])
    assert match, "README has no code block after the fake_zoom paragraph"
    return "\n".join(line[4:] for line in match.group(1).splitlines()) + "\n"


def run_pytest(project: Path) -> subprocess.CompletedProcess[str]:
    (project / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(project),
         "-c", str(project / "pytest.ini"), "-q", str(project)],
        capture_output=True, text=True, timeout=120, cwd=project,
    )


def test_readmes_test_passes_in_a_project_in_strict_mode(tmp_path: Path) -> None:
    (tmp_path / "test_readme.py").write_text(readme_test())
    done = run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_parametrized_and_class_tests_using_the_fixture_run_on_asyncio(tmp_path: Path) -> None:
    (tmp_path / "test_shapes.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "async def test_param(fake_zoom, n):\n"
        "    assert fake_zoom.token_requests == 0\n\n"
        "class TestInAClass:\n"
        "    async def test_method(self, fake_zoom):\n"
        "        assert fake_zoom.url.startswith('http://127.0.0.1:')\n\n"
        "@pytest.mark.asyncio\n"
        "async def test_already_marked(fake_zoom):\n"
        "    assert fake_zoom.url\n"
    )
    done = run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout
