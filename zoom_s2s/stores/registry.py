"""Which store serves which URL scheme: built-in stores, plugins and entry points.

A store class declares its schemes (:attr:`BaseTokenStore.schemes`) and is
registered when its module is imported. A store living in another package
registers through an entry point, so that ``store_from_url("dynamodb://...")``
finds it without the user importing anything::

    # the plugin's pyproject.toml
    [project.entry-points."zoom_s2s.stores"]
    dynamodb = "zoom_s2s_dynamodb:DynamoTokenStore"

The entry point's name is the scheme; its object is a class (or any callable)
with ``from_url(url, **options)``. :func:`register_store` does the same at run
time.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any, Protocol

from ..errors import ConfigurationError

__all__ = [
    "ENTRY_POINT_GROUP",
    "StoreFactory",
    "find_store",
    "register_store",
    "registered_schemes",
]

ENTRY_POINT_GROUP = "zoom_s2s.stores"

logger = logging.getLogger("zoom_s2s.stores")


class StoreFactory(Protocol):
    """Anything with ``from_url(url, **options)`` returning a token store."""

    def from_url(self, url: str, **options: Any) -> Any: ...


_REGISTRY: dict[str, StoreFactory] = {}


def register_store(scheme: str, factory: StoreFactory) -> None:
    """Make ``store_from_url`` build stores for ``scheme://...`` URLs with ``factory.from_url``.

    A later registration of the same scheme replaces the earlier one.

    Raises:
        ConfigurationError: ``scheme`` is not a valid URL scheme.
    """
    normalised = scheme.lower()
    if not normalised or not normalised[0].isalpha() or not all(
        ch.isalnum() or ch in "+-." for ch in normalised
    ):
        raise ConfigurationError(f"{scheme!r} is not a URL scheme")
    _REGISTRY[normalised] = factory


def registered_schemes() -> tuple[str, ...]:
    """The schemes known now, built-in and registered (entry points not yet loaded excluded)."""
    return tuple(sorted(_REGISTRY))


def find_store(scheme: str) -> StoreFactory | None:
    """The factory for ``scheme``: registered ones first, then ``zoom_s2s.stores`` entry points."""
    scheme = scheme.lower()
    factory = _REGISTRY.get(scheme)
    if factory is not None:
        return factory
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        try:
            loaded = entry_point.load()
        except Exception as exc:  # a broken plugin must say so, not crash with its traceback
            raise ConfigurationError(
                f"the store plugin for {scheme}:// ({entry_point.value}) failed to import "
                f"({exc.__class__.__name__}: {exc}); reinstall it or remove it"
            ) from exc
        if not callable(getattr(loaded, "from_url", None)):
            raise ConfigurationError(
                f"the store plugin for {scheme}:// ({entry_point.value}) has no from_url()"
            )
        _REGISTRY.setdefault(scheme, loaded)
        return _REGISTRY[scheme]
    return None
