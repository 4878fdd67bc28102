"""One rate budget for the fleet: pace Zoom API calls per account and category.

Zoom limits REST calls per account (every app and process of it together),
per category (Light, Medium, Heavy, Resource-intensive) and per plan.
:class:`RateLimits` says how fast; a :class:`RateLimiter` hands out permits
from a GCRA bucket per account and category kept in the token manager's
store (its :class:`~zoom_s2s.stores.RateBudget`), so the whole fleet
shares one budget; a 429 seen by one process pauses (or, for a daily limit,
blocks) the others. ``ZoomClient(tokens, rate_limits=RateLimits.for_plan("pro"))``
is all an application writes.
"""

from .categories import BUILTIN, CategoryTable, path_shape
from .headers import RateLimitInfo, rate_limit_info
from .limiter import RateLimiter, rate_scope
from .limits import CATEGORIES, PLANS, Category, RateLimits, category_name
from .operations import Operation, category_of, operation_of, page_size_max

__all__ = [
    "BUILTIN",
    "CATEGORIES",
    "PLANS",
    "Category",
    "CategoryTable",
    "Operation",
    "RateLimitInfo",
    "RateLimiter",
    "RateLimits",
    "category_name",
    "category_of",
    "operation_of",
    "page_size_max",
    "path_shape",
    "rate_limit_info",
    "rate_scope",
]
