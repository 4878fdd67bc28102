"""Test helpers for zoom-s2s and for your own code: public API.

* :class:`FakeZoom`: a real aiohttp server faking Zoom's token endpoint and
  ``/v2/users`` on loopback, with counters and fault injection; :class:`Fault`
  describes one injected failure; :class:`FakeAccount` and :class:`FakeApp`
  are its accounts and Marketplace apps (many at once); :class:`FakeRateLimits`
  makes it enforce Zoom's rate limits (``FakeZoom(rate_limits=...)``).
* :class:`StoreContract`: the contract suite every :class:`~zoom_s2s.TokenStore`
  must pass, :class:`RateBudgetContract` the one for a store's rate budget and
  :class:`ClaimsContract` the one for its webhook claims (need pytest and
  pytest-asyncio; imported on first use).
* :class:`FakeClock`: virtual time for zoom-s2s, so tests move time instead of sleeping.
* ``fake_zoom``: a pytest fixture serving a :class:`FakeZoom`, and ``fake_clock``
  one installing a :class:`FakeClock` (auto-registered plugin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._fake_ratelimit import FakeRateLimits
from .clock import FakeClock
from .fake_zoom import FakeAccount, FakeApp, FakeZoom, Fault

if TYPE_CHECKING:
    from .budget_contract import RateBudgetContract
    from .claims_contract import ClaimsContract
    from .contract import StoreContract

__all__ = [
    "ClaimsContract",
    "FakeAccount",
    "FakeApp",
    "FakeClock",
    "FakeRateLimits",
    "FakeZoom",
    "Fault",
    "RateBudgetContract",
    "StoreContract",
]

_LAZY = {
    "StoreContract": ".contract",
    "RateBudgetContract": ".budget_contract",
    "ClaimsContract": ".claims_contract",
}


def __getattr__(name: str) -> Any:
    # The contracts need pytest: import them only when asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
