"""Which store serves which URL scheme.

A store class declares its schemes (:attr:`BaseTokenStore.schemes`) and is
registered when its module is imported; :func:`register_store` registers any
other class (or object) with ``from_url(url, **options)`` at run time.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import ConfigurationError

__all__ = ["StoreFactory", "find_store", "register_store", "registered_schemes"]


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
    """The schemes known now, built-in and registered."""
    return tuple(sorted(_REGISTRY))


def find_store(scheme: str) -> StoreFactory | None:
    """The factory registered for ``scheme``, or ``None``."""
    return _REGISTRY.get(scheme.lower())
