from __future__ import annotations

import inspect
import pathlib
import re

import zoom_s2s
import zoom_s2s.testing


def public_names(module: object) -> set[str]:
    """Names the module itself offers: its own objects, not typing helpers or submodules."""
    return {
        name
        for name, value in vars(module).items()
        if (not name.startswith("_")
        and not inspect.ismodule(value)
        and (getattr(value, "__module__", "") or "").startswith("zoom_s2s"))
        or (name.isupper() and isinstance(value, str))
    }


def isort_style(name: str) -> tuple[int, str]:
    """CONSTANTS, then Classes, then functions: the order ruff's RUF022 keeps."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_complete() -> None:
    for module in (zoom_s2s, zoom_s2s.testing):
        names = list(module.__all__)
        assert names == sorted(names, key=isort_style), f"{module.__name__}.__all__ unsorted"
        assert public_names(module) <= set(names), f"{module.__name__}.__all__ misses names"
        for name in names:
            assert getattr(module, name) is not None  # lazily imported names resolve too


def test_design_contract_names_are_importable_from_the_top() -> None:
    for name in (
        "Credentials", "AccessToken", "TokenManager", "ZoomClient", "TokenStore",
        "MemoryTokenStore", "FileTokenStore", "RedisTokenStore", "store_from_url",
    ):
        assert hasattr(zoom_s2s, name), name


def test_every_error_derives_from_the_base_and_is_drawn_in_the_tree() -> None:
    doc = zoom_s2s.errors.__doc__ or ""
    for name in zoom_s2s.errors.__all__:
        error = getattr(zoom_s2s.errors, name)
        assert issubclass(error, zoom_s2s.ZoomS2SError)
        assert re.search(rf"\b{name}\b", doc), f"{name} missing from the tree in errors.py"


def test_version_is_single_sourced() -> None:
    setup_cfg = (pathlib.Path(__file__).resolve().parents[2] / "setup.cfg").read_text()
    assert "attr: zoom_s2s._version.__version__" in setup_cfg
    assert re.fullmatch(r"\d+\.\d+\.\d+", zoom_s2s.__version__)


# The user's names, pinned: adding or removing one is a decision, not an accident.
TOP_LEVEL = {
    "AccessToken", "Credentials", "EncryptedTokenStore", "FileTokenStore", "MemoryTokenStore",
    "PostgresTokenStore", "RateLimits", "RedisTokenStore", "RetryPolicy", "TokenEvent",
    "TokenManager", "TokenManagerPool", "TokenStore", "User", "ZoomClient", "ZoomS2SError",
    "__version__", "discover_account_id", "store_from_url",
}


def test_the_top_level_surface_is_small_and_pinned() -> None:
    assert set(zoom_s2s.__all__) == TOP_LEVEL
    assert len(zoom_s2s.__all__) <= 20


def test_names_that_left_the_top_level_live_in_their_modules() -> None:
    import zoom_s2s.aiohttp
    import zoom_s2s.client
    import zoom_s2s.events
    import zoom_s2s.oauth

    assert set(zoom_s2s.errors.__all__) >= {"ForeignRedirectError", "MissingScopesError"}
    assert zoom_s2s.aiohttp.ZoomAuthMiddleware.__module__ == "zoom_s2s.aiohttp"
    for name in ("EventKind", "TokenHook", "TokenStats", "log_event"):
        assert hasattr(zoom_s2s.events, name), name
    assert zoom_s2s.client.DEFAULT_API_URL
    assert zoom_s2s.oauth.DEFAULT_TOKEN_URL


def test_store_implementer_and_raw_names_live_in_their_modules() -> None:
    import zoom_s2s.oauth
    import zoom_s2s.stores

    for name in ("FailureRecord", "LockLease", "request_token"):
        assert name not in zoom_s2s.__all__
    for name in ("BaseTokenStore", "FailureRecord", "LockLease", "TokenStore"):
        assert name in zoom_s2s.stores.__all__, name
    assert callable(zoom_s2s.oauth.request_token)
