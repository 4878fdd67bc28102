"""The REST API's base URLs and how request paths are built below them."""

from __future__ import annotations

from urllib.parse import quote

from ..errors import ConfigurationError
from ..oauth import validate_url

__all__ = ["DEFAULT_API_URL", "ENV_API_URL", "ZOOMGOV_API_URL", "api_base", "quote_path"]

DEFAULT_API_URL = "https://api.zoom.us/v2"
ZOOMGOV_API_URL = "https://api.zoomgov.com/v2"  # from third-party code; not confirmed by Zoom
ENV_API_URL = "ZOOM_API_URL"

# Characters left as they are in a request path: RFC 3986 pchar, '/' and '%'
# (so ids quoted by the caller are not quoted twice).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


def api_base(url: str, what: str) -> str:
    """Validate an API base URL and return it without a trailing slash.

    Args:
        url: The base, e.g. ``https://api.zoom.us/v2``.
        what: How to name it in the error, e.g. ``"base_url"``.

    Returns:
        The URL, normalised, without a trailing slash.

    Raises:
        ConfigurationError: Not an absolute http(s) URL, or it has a query or fragment.
    """
    parsed = validate_url(url, what)
    if parsed.query_string or parsed.fragment:
        raise ConfigurationError(
            f"{what} {url!r} must not have a query or fragment; use e.g. {DEFAULT_API_URL!r}"
        )
    return str(parsed).rstrip("/")


def quote_path(path: str) -> str:
    """Percent-encode what cannot stand in a request path, leaving ``%XX`` escapes alone.

    Args:
        path: A path below the API base, e.g. ``/users/me``; a leading ``/`` is added.

    Returns:
        The encoded path, to append to the base as is (``yarl.URL(..., encoded=True)``).

    Raises:
        ValueError: Empty, an absolute URL, or with ``?`` or ``#`` (use ``params=``).
    """
    if not isinstance(path, str) or not path or "://" in path:
        raise ValueError(
            f"path {path!r} must be a path relative to the base URL, such as '/users/me'"
        )
    if "?" in path or "#" in path:
        raise ValueError(
            f"path {path!r} has '?' or '#': pass query parameters as params=..., and "
            "quote ids with urllib.parse.quote(value, safe='')"
        )
    return quote(path if path.startswith("/") else "/" + path, safe=_PATH_SAFE)
