"""Token requests in a fresh interpreter: what an app without logging configured sees.

It starts a process, so it is a system test; the in-process ones are in tests/unit/test_oauth.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_an_app_without_logging_configured_prints_no_stamina_lines(tmp_path: object) -> None:
    script = textwrap.dedent(
        """
        import asyncio, aiohttp
        from zoom_s2s import RetryPolicy
        from zoom_s2s.oauth import request_token
        from zoom_s2s.testing import FakeZoom, Fault

        async def main():
            async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
                zoom.fail_next(2, fault=Fault(status=503))
                policy = RetryPolicy(attempts=4, wait_initial=0.01, wait_jitter=0)
                await request_token(session, zoom.credentials, token_url=zoom.token_url, retry=policy)
                assert zoom.token_requests == 3
                print("ok")

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert done.stderr == ""
