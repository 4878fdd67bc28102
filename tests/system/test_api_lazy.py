"""The generated API loads lazily: importing zoom_s2s loads no product module, and using one
group of operations loads only its product's module."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from zoom_s2s import Credentials, TokenManager, ZoomClient
loaded = lambda: sorted(m for m in sys.modules if m.startswith("zoom_s2s.api."))
print(loaded())
zoom = ZoomClient(TokenManager(Credentials("account", "client", "secret")))
zoom.webinars
print(loaded())
"""


def test_importing_the_package_loads_no_product_and_a_group_loads_only_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    before, after = result.stdout.splitlines()
    assert before == "['zoom_s2s.api._base']"
    assert after == "['zoom_s2s.api._base', 'zoom_s2s.api.meetings']"
