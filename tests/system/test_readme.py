"""README.rst's commands are the ones CI runs; its snippets and the guides' snippets run."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def readme_command(label: str) -> str:
    text = (ROOT / "README.rst").read_text()
    match = re.search(rf"\.\. {label}\n\n.*?::\n\n    (.+?)\n", text, re.S)
    assert match, f"README.rst has no command marked '.. {label}'"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    command = readme_command("test-command")
    ci = (ROOT / ".ci" / "run").read_text()
    assert command in ci.splitlines()


def test_the_demo_command_runs_the_demo() -> None:
    assert readme_command("demo-command").endswith("zoom-s2s demo")


SNIPPET = re.compile(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)")

# The user guides in docs/ whose python snippets are run like README's.
GUIDES = ("docs/client.rst", "docs/configuration.rst", "docs/security.rst", "docs/testing.rst")

# What each snippet is run against, and what is checked afterwards, keyed by a
# name it defines. Snippets run as written, in a fresh interpreter, with the
# environment pointing at a FakeZoom and, where named, a real Redis.
HARNESS = """
import asyncio, os, sys
from zoom_s2s.testing import FakeZoom
snippet = sys.stdin.read()
namespace = {"__name__": "__snippet__"}
exec(compile(snippet, sys.argv[1], "exec"), namespace)
zoom = FakeZoom()
if "user_email" in namespace:
    assert namespace["user_email"]("me") == "jchill@example.com"
    namespace["tokens"].close()
if "test_my_code" in namespace:
    async def run():
        async with FakeZoom() as fake:
            await namespace["test_my_code"](fake)
    asyncio.run(run())
if "list_meetings" in namespace:
    from zoom_s2s import Credentials, TokenManager
    async def run():
        async with TokenManager(Credentials.from_env()) as tokens:
            body = await namespace["list_meetings"](tokens, "me")
            assert isinstance(body, dict)
    asyncio.run(run())
print("SNIPPET OK")
"""


def snippets(path: str) -> list[str]:
    text = (ROOT / path).read_text()
    return [textwrap.dedent(block) for block in SNIPPET.findall(text)]


def guide_snippets() -> list[tuple[str, int]]:
    return [(path, index) for path in GUIDES for index in range(len(snippets(path)))]


def run_snippet(label: str, code: str, redis_url: str, tmp_path: pathlib.Path) -> None:
    from zoom_s2s.testing import FakeZoom

    code = code.replace("redis://localhost:6379/0", redis_url)
    code = code.replace("/var/lib/myapp/zoom", str(tmp_path / "zoom"))
    with FakeZoom().running_in_thread() as zoom:
        creds = zoom.credentials
        env = {
            **os.environ,
            "ZOOM_ACCOUNT_ID": creds.account_id,
            "ZOOM_CLIENT_ID": creds.client_id,
            "ZOOM_CLIENT_SECRET": creds.client_secret,
            "ZOOM_TOKEN_URL": zoom.token_url,
            "ZOOM_API_URL": zoom.api_base_url,
        }
        result = subprocess.run(
            [sys.executable, "-c", HARNESS, label],
            input=code,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert result.returncode == 0, f"{label} failed:\n{code}\n{result.stderr}"
    assert "SNIPPET OK" in result.stdout


def test_readme_has_runnable_snippets() -> None:
    assert len(snippets("README.rst")) >= 6


def test_every_guide_has_a_snippet_to_run() -> None:
    assert {path for path, _ in guide_snippets()} == set(GUIDES)


@pytest.mark.redis
@pytest.mark.parametrize("index", range(len(snippets("README.rst"))))
def test_every_readme_snippet_runs(index: int, redis_url: str, tmp_path: pathlib.Path) -> None:
    run_snippet(f"README.rst snippet {index}", snippets("README.rst")[index], redis_url, tmp_path)


@pytest.mark.redis
@pytest.mark.parametrize(("path", "index"), guide_snippets())
def test_every_guide_snippet_runs(
    path: str, index: int, redis_url: str, tmp_path: pathlib.Path
) -> None:
    run_snippet(f"{path} snippet {index}", snippets(path)[index], redis_url, tmp_path)


def test_readme_renders_cleanly_as_pypi_would() -> None:
    import io

    rst = pytest.importorskip("readme_renderer.rst")
    warnings = io.StringIO()
    html = rst.render((ROOT / "README.rst").read_text(), stream=warnings)
    assert html is not None, warnings.getvalue()
    assert warnings.getvalue() == ""
    assert "One Zoom Server-to-Server OAuth token" in html
