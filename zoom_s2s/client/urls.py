"""The REST API's base URLs, where the bearer token may go (:class:`Destinations`), and paths.

The token goes to the configured API origin and, with ``use_token_api_url``,
to a token's ``api_url`` on a Zoom host or the configured host; nowhere else.
See ``docs/architecture.rst``.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import yarl

from .._env import DEFAULT_API_URL, ENV_API_URL, ZOOMGOV_API_URL, api_url_from_env
from ..errors import ConfigurationError
from ..oauth import validate_url

__all__ = [
    "DEFAULT_API_URL",
    "ENV_API_URL",
    "ZOOMGOV_API_URL",
    "ZOOM_DOMAINS",
    "Destinations",
    "Origin",
    "api_base",
    "is_zoom_host",
    "origin_of",
    "quote_path",
]

logger = logging.getLogger("zoom_s2s.client")

ZOOM_DOMAINS = ("zoom.us", "zoomgov.com")
"""Zoom's own domains: a token's ``api_url`` on one of them (or a subdomain) is trusted."""

Origin = tuple[str, str, int | None]
"""(scheme, host, port) of a URL; two URLs with the same origin are the same server."""

# Characters left as they are in a request path: RFC 3986 pchar, '/' and '%'
# (so ids quoted by the caller are not quoted twice).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


def origin_of(url: yarl.URL) -> Origin:
    """The (scheme, host, port) of an absolute URL; yarl lower-cases the host."""
    return (url.scheme, url.host or "", url.port)


def is_zoom_host(host: str | None) -> bool:
    """Whether ``host`` is ``zoom.us``, ``zoomgov.com`` or a subdomain of either."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in ZOOM_DOMAINS)


def api_base(url: str, what: str, *, allow_insecure_http: bool = False) -> str:
    """Validate an API base URL and return it without a trailing slash.

    Args:
        url: The base, e.g. ``https://api.zoom.us/v2``.
        what: How to name it in the error, e.g. ``"base_url"``.
        allow_insecure_http: Accept ``http://`` to a host that is not loopback
            (the token would cross the network in clear text).

    Returns:
        The URL, normalised, without a trailing slash.

    Raises:
        ConfigurationError: Not an absolute http(s) URL, ``http://`` to a host
            that is not loopback without ``allow_insecure_http``, or it has a
            query or fragment.
    """
    parsed = validate_url(url, what, allow_insecure_http=allow_insecure_http)
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


class Destinations:
    """Where the bearer token may be sent: the rule :class:`ZoomClient` and the middleware share.

    Args:
        base_url: The configured API base, already validated by :func:`api_base`.
        use_token_api_url: Also send the token to the origin of the token's
            ``api_url``, when that is a Zoom host or the configured host.
        allow_insecure_http: Accept an ``http://`` ``api_url`` on a host that
            is not loopback.

    Attributes:
        base_url: The configured base, without a trailing slash.
        origin: The configured base's origin.
        use_token_api_url: As given.
    """

    __slots__ = (
        "_allow_insecure_http",
        "_regional",
        "_trusted_origins",
        "base_url",
        "origin",
        "use_token_api_url",
    )

    def __init__(
        self, base_url: str, *, use_token_api_url: bool, allow_insecure_http: bool
    ) -> None:
        self.base_url = base_url
        self.origin = origin_of(yarl.URL(base_url))
        self.use_token_api_url = use_token_api_url
        self._allow_insecure_http = allow_insecure_http
        # api_url -> (base, origin) when trusted, None when not; one entry per api_url seen.
        self._regional: dict[str, tuple[str, Origin] | None] = {}
        self._trusted_origins: set[Origin] = set()

    @classmethod
    def for_api_url(
        cls, api_url: str | None, *, use_token_api_url: bool, allow_insecure_http: bool
    ) -> Destinations:
        """The rule for a user's ``api_url`` argument (``None``: ``$ZOOM_API_URL`` or
        Zoom's default), validated as ``api_url``.

        Raises:
            ConfigurationError: A bad ``api_url``.
        """
        base = api_base(
            api_url_from_env() if api_url is None else api_url,
            "api_url",
            allow_insecure_http=allow_insecure_http,
        )
        return cls(base, use_token_api_url=use_token_api_url,
                   allow_insecure_http=allow_insecure_http)

    def base_for(self, api_url: str | None) -> str:
        """The base to send a request to for a token with this ``api_url``."""
        if not self.use_token_api_url or api_url is None:
            return self.base_url
        regional = self._trusted(api_url)
        return self.base_url if regional is None else regional[0]

    def allows(self, url: yarl.URL, api_url: str | None = None) -> bool:
        """Whether the token may be sent to ``url``.

        Args:
            url: Where a request is about to go.
            api_url: The ``api_url`` of the token about to be sent, if known; a
                trusted one adds its origin to the allowed ones.

        Returns:
            ``True`` for the configured origin and, with ``use_token_api_url``,
            for the origin of every trusted ``api_url`` seen.
        """
        origin = origin_of(url)
        if origin == self.origin:
            return True
        if not self.use_token_api_url:
            return False
        if api_url is not None:
            self._trusted(api_url)
        return origin in self._trusted_origins

    def may_allow(self, url: yarl.URL) -> bool:
        """Whether some token could go to ``url``: without a token at hand, for the others."""
        return self.allows(url) or (
            self.use_token_api_url and (is_zoom_host(url.host) or url.host == self.origin[1])
        )

    def _trusted(self, api_url: str) -> tuple[str, Origin] | None:
        try:
            return self._regional[api_url]
        except KeyError:
            pass
        found = self._check(api_url)
        if len(self._regional) >= 64:  # api_url is per account: a handful at most
            self._regional.clear()
        self._regional[api_url] = found
        if found is not None:
            self._trusted_origins.add(found[1])
        return found

    def _check(self, api_url: str) -> tuple[str, Origin] | None:
        what = "the token's api_url"
        try:
            base = api_base(
                api_url.rstrip("/") + "/v2", what, allow_insecure_http=self._allow_insecure_http
            )
        except ConfigurationError as exc:
            logger.warning("ignoring %s: %s; using %s", what, exc, self.base_url)
            return None
        parsed = yarl.URL(base)
        host = parsed.host or ""
        if not (is_zoom_host(host) or host == self.origin[1]):
            logger.warning(
                "ignoring %s: its host %r is neither a Zoom host (%s) nor the configured "
                "API host %r, so the token is not sent there; using %s",
                what,
                host,
                ", ".join(ZOOM_DOMAINS),
                self.origin[1],
                self.base_url,
            )
            return None
        return base, origin_of(parsed)
