"""One rate budget for the fleet, and Zoom's quotas as Zoom counts them.

:class:`RateLimits` says how fast (and on which plan); a :class:`RateLimiter`
leases slots of a GCRA bucket per account, product and category kept in the
token manager's store, counts the daily caps per endpoint, user and host,
and honours the blocks any process of the fleet learned. ``docs/rate-limits.rst``.
"""

from .categories import BUILTIN, CategoryTable, path_shape
from .headers import RateLimitInfo, rate_limit_info
from .limiter import RateLimiter, Ticket, rate_scope
from .limits import CATEGORIES, PLANS, Category, RateLimits, category_name
from .quota import rule_of

__all__ = [
    "BUILTIN",
    "CATEGORIES",
    "PLANS",
    "Category",
    "CategoryTable",
    "RateLimitInfo",
    "RateLimiter",
    "RateLimits",
    "Ticket",
    "category_name",
    "path_shape",
    "rate_limit_info",
    "rate_scope",
    "rule_of",
]
