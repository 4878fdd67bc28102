"""One rate budget for the fleet, and Zoom's quotas as Zoom counts them.

:class:`RateLimits` says how fast (and on which plan); a :class:`RateLimiter`
leases slots of a GCRA bucket per account, product and category kept in the
token manager's store, counts the daily caps per endpoint, user and host,
and honours the blocks any process of the fleet learned. ``docs/rate-limits.rst``.
"""

from .categories import CategoryTable, path_shape
from .headers import RateLimitInfo, rate_limit_info
from .limiter import RateLimiter, Ticket, rate_scope
from .limits import CATEGORIES, PLANS, Category, RateLimits, category_name
from .operations import Operation, category_of, operation_of, page_size_max
from .quota import rule_of

__all__ = [
    "CATEGORIES",
    "PLANS",
    "Category",
    "CategoryTable",
    "Operation",
    "RateLimitInfo",
    "RateLimiter",
    "RateLimits",
    "Ticket",
    "category_name",
    "category_of",
    "operation_of",
    "page_size_max",
    "path_shape",
    "rate_limit_info",
    "rate_scope",
    "rule_of",
]
