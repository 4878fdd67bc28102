"""How fast a fleet may call Zoom: :class:`RateLimits` and Zoom's published per-plan table.

Zoom limits REST API calls per *account* (shared by every app and every
process of the account), by rate-limit *category* (Light, Medium, Heavy,
Resource-intensive) and by plan; ``docs/zoom.rst`` cites the table.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs

from ..errors import ConfigurationError

__all__ = ["CATEGORIES", "PHONE_PLANS", "PLANS", "Category", "RateLimits", "category_name"]

Category = Literal["light", "medium", "heavy", "resource_intensive"]
"""A Zoom rate-limit category, as zoom-s2s names it."""

CATEGORIES: tuple[Category, ...] = ("light", "medium", "heavy", "resource_intensive")

# Zoom's header values (X-RateLimit-Category) and the names above.
_HEADER_NAMES: dict[str, Category] = {
    "light": "light",
    "medium": "medium",
    "heavy": "heavy",
    "resource-intensive": "resource_intensive",
    "resource_intensive": "resource_intensive",
    "resourceintensive": "resource_intensive",
}


def category_name(value: str | None) -> Category | None:
    """The category a header value (``Light``, ``Resource-intensive``, ...) names, if any."""
    if not value:
        return None
    return _HEADER_NAMES.get(value.strip().lower().replace(" ", "-"))


# Requests per second by plan: Zoom's "Rate limits by account type" [rate-limits]
# (docs/zoom.rst). Resource-intensive limits are per minute there (10/min, 20/min).
PLANS: dict[str, tuple[float, float, float, float]] = {
    "free": (4.0, 2.0, 1.0, 10 / 60),
    "pro": (30.0, 20.0, 10.0, 10 / 60),
    "business": (80.0, 60.0, 40.0, 20 / 60),
}
# Zoom Phone's own budgets [rate-limits]; Contact Center's are learned from its answers.
PHONE_PLANS: dict[str, tuple[float, float, float, float]] = {
    "pro": (20.0, 10.0, 5.0, 5 / 60),
    "business": (40.0, 20.0, 10.0, 10 / 60),
}
_PLAN_ALIASES = {
    "basic": "free",
    "business+": "business",
    "business_plus": "business",
    "education": "business",
    "enterprise": "business",
    "partner": "business",
    "partners": "business",
}


def _check_rate(_instance: object, attribute: attrs.Attribute, value: object) -> None:  # type: ignore[type-arg]
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0.001 <= value <= 100_000
    ):
        raise ConfigurationError(
            f"RateLimits({attribute.name}={value!r}): a rate is requests per second, a "
            "number from 0.001 to 100000 (or None: do not pace this category)"
        )


def _check_default(_instance: object, _attribute: object, value: object) -> None:
    if value not in CATEGORIES:
        raise ConfigurationError(
            f"RateLimits(default_category={value!r}): use one of {', '.join(CATEGORIES)}"
        )


def _check_fraction(_instance: object, attribute: attrs.Attribute, value: object) -> None:  # type: ignore[type-arg]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigurationError(
            f"RateLimits({attribute.name}={value!r}) must be a fraction from 0 to below 1"
        )


def _check_seconds(_instance: object, attribute: attrs.Attribute, value: object) -> None:  # type: ignore[type-arg]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 <= value <= 86_400
    ):
        raise ConfigurationError(
            f"RateLimits({attribute.name}={value!r}) must be seconds from 0 to 86400"
        )


def _check_plan(_instance: object, _attribute: object, value: str | None) -> None:
    if value is not None and value not in PLANS:
        raise ConfigurationError(
            f"RateLimits(plan={value!r}): use free, pro or business (RateLimits.for_plan "
            "also takes Zoom's other names)"
        )


def _check_burst(_instance: object, _attribute: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise ConfigurationError(f"RateLimits(burst={value!r}) must be an integer from 1 to 10000")


@attrs.frozen
class RateLimits:
    """The account's request rates per category, in requests per second.

    Pass it to :class:`~zoom_s2s.ZoomClient` (``rate_limits=...``) or
    :class:`~zoom_s2s.aiohttp.ZoomAuthMiddleware`: every request then takes a permit
    from a limiter shared through the token manager's store, so the whole
    fleet stays within the account's budget. ``RateLimits.for_plan("pro")``
    takes Zoom's published table.

    Attributes:
        light: Light requests per second (``None``: not paced).
        medium: Medium requests per second.
        heavy: Heavy requests per second.
        resource_intensive: Resource-intensive requests per second (Zoom
            publishes these per minute: 10/min is ``10 / 60``).
        default_category: The category of a request whose path the built-in
            table does not know and no answer has named yet (conservative:
            ``"heavy"``).
        headroom: Fraction of each rate left unused, for network jitter and
            other apps of the account (0.05: pace at 95 %).
        burst: Requests that may go at once after a quiet spell (1: evenly spaced).
        max_wait: Longest a caller waits for its slot, seconds; beyond it
            :class:`~zoom_s2s.errors.RateLimitedError` is raised without calling Zoom.
        max_pause: Longest fleet-wide pause a per-second 429 can cause, seconds
            (``Retry-After`` is capped to it; daily limits block until reset).
        plan: The account's plan (``"free"``, ``"pro"``, ``"business"``), if
            known: it sets the caps that depend on it (``POST /users``), which
            daily limit a category shares, and Zoom Phone's rates.
    """

    light: float | None = attrs.field(default=None, validator=_check_rate, kw_only=True)
    medium: float | None = attrs.field(default=None, validator=_check_rate, kw_only=True)
    heavy: float | None = attrs.field(default=None, validator=_check_rate, kw_only=True)
    resource_intensive: float | None = attrs.field(
        default=None, validator=_check_rate, kw_only=True
    )
    default_category: Category = attrs.field(
        default="heavy", validator=_check_default, kw_only=True
    )
    headroom: float = attrs.field(default=0.05, validator=_check_fraction, kw_only=True)
    burst: int = attrs.field(default=1, validator=_check_burst, kw_only=True)
    max_wait: float = attrs.field(default=30.0, validator=_check_seconds, kw_only=True)
    max_pause: float = attrs.field(default=60.0, validator=_check_seconds, kw_only=True)
    plan: str | None = attrs.field(default=None, validator=_check_plan, kw_only=True)

    @classmethod
    def for_plan(cls, plan: str, **options: object) -> RateLimits:
        """Zoom's published per-second limits for an account plan.

        Args:
            plan: ``"free"``, ``"pro"`` or ``"business"`` (also ``"business+"``,
                ``"education"``, ``"enterprise"``, ``"partner"``: Zoom's Business+).
            **options: Other fields (``headroom``, ``max_wait``, ...).

        Raises:
            ConfigurationError: An unknown plan.
        """
        key = plan.strip().lower() if isinstance(plan, str) else ""
        key = _PLAN_ALIASES.get(key, key)
        if key not in PLANS:
            raise ConfigurationError(
                f"unknown Zoom plan {plan!r}; use free, pro or business (Business+: business, "
                "education, enterprise, partner), or RateLimits(light=..., ...) for your own"
            )
        light, medium, heavy, intensive = PLANS[key]
        return cls(
            light=light,
            medium=medium,
            heavy=heavy,
            resource_intensive=intensive,
            plan=key,
            **options,  # type: ignore[arg-type]
        )

    def rate(self, category: Category, product: str = "") -> float | None:
        """Requests per second for ``category`` of ``product`` (``None``: not paced).

        ``product`` is ``""`` (the Meetings, Users, Chat ... APIs), ``"phone"``
        (Zoom Phone's table, with a known plan) or another product (not paced up front).
        """
        if product == "phone":
            table = PHONE_PLANS.get(self.plan or "")
            return None if table is None else table[CATEGORIES.index(category)]
        if product:
            return None
        rate: float | None = getattr(self, category)
        return rate

    def interval(self, category: Category, product: str = "") -> float | None:
        """Seconds between two permits of ``category`` after the headroom (``None``: not paced)."""
        rate = self.rate(category, product)
        return None if rate is None else 1.0 / (rate * (1.0 - self.headroom))
