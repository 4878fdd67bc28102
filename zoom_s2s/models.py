"""Value objects: the app's credentials and an access token.

Both are frozen. Secrets (the client secret, the access token) are kept out of
``repr()`` and replaced by a fingerprint: the first 12 hex digits of a SHA-256,
enough to tell two tokens apart in a log and useless to an attacker.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import ConfigurationError

__all__ = [
    "MAX_TOKEN_LIFETIME",
    "AccessToken",
    "Credentials",
    "bearer_token_problem",
    "fingerprint",
]

# The longest lifetime a token may claim (Zoom grants 3599-3600 s); a reply or
# a store record claiming more is refused, never believed.
MAX_TOKEN_LIFETIME = 86_400.0

# RFC 6750 b64token: what a bearer token may contain, so it is safe in a header.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def bearer_token_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a bearer token (``None``: nothing).

    A token must be a non-empty RFC 6750 ``b64token``: no spaces, CR/LF or
    other characters that could split or forge an HTTP header. The message
    never contains the value.
    """
    if not isinstance(value, str) or not value:
        return "access_token missing or not a non-empty string"
    if len(value) > 16_384:
        return f"access_token is {len(value)} characters long (at most 16384)"
    if _B64TOKEN.fullmatch(value) is None:
        return (
            "access_token contains characters a bearer token cannot have (white space, "
            "CR/LF or other characters outside RFC 6750's b64token)"
        )
    return None

ENV_ACCOUNT_ID = "ZOOM_ACCOUNT_ID"
ENV_CLIENT_ID = "ZOOM_CLIENT_ID"
ENV_CLIENT_SECRET = "ZOOM_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret


def fingerprint(*parts: str) -> str:
    """Return a short, stable, non-reversible hash of ``parts`` for logs and keys."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:12]


def _non_blank(field_name: str) -> Any:
    def check(_instance: object, _attribute: attrs.Attribute[str], value: object) -> None:
        if not isinstance(value, str):
            raise ConfigurationError(
                f"{field_name} must be a string, got {type(value).__name__}; "
                "copy it from the app's credentials page in the Zoom App Marketplace"
            )
        if not value.strip():
            raise ConfigurationError(
                f"{field_name} is empty; copy it from the app's credentials page "
                "in the Zoom App Marketplace"
            )
        if value != value.strip():
            raise ConfigurationError(
                f"{field_name} has leading or trailing white space; remove it "
                "(it usually comes from copying or from a .env file)"
            )

    return check


@attrs.frozen
class Credentials:
    """A Server-to-Server OAuth app's credentials.

    Args:
        account_id: The Zoom account id (``ZOOM_ACCOUNT_ID``).
        client_id: The app's client id (``ZOOM_CLIENT_ID``).
        client_secret: The app's client secret (``ZOOM_CLIENT_SECRET``); never
            shown in ``repr()``, logs or error messages.

    Raises:
        ConfigurationError: A value is not a string, is empty, or has
            surrounding white space.
    """

    account_id: str = attrs.field(validator=_non_blank("account_id"))
    client_id: str = attrs.field(validator=_non_blank("client_id"))
    client_secret: str = attrs.field(validator=_non_blank("client_secret"), repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read ``ZOOM_ACCOUNT_ID``, ``ZOOM_CLIENT_ID`` and ``ZOOM_CLIENT_SECRET``.

        Args:
            environ: The mapping to read; ``os.environ`` by default.

        Raises:
            ConfigurationError: Naming every variable that is missing or empty.
        """
        env = os.environ if environ is None else environ
        names = (ENV_ACCOUNT_ID, ENV_CLIENT_ID, ENV_CLIENT_SECRET)
        missing = [name for name in names if not env.get(name, "").strip()]
        if missing:
            raise ConfigurationError(
                f"environment variable{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} not set; set {'them' if len(missing) > 1 else 'it'} "
                "to the values on the app's credentials page in the Zoom App Marketplace"
            )
        return cls(
            account_id=env[ENV_ACCOUNT_ID].strip(),
            client_id=env[ENV_CLIENT_ID].strip(),
            client_secret=env[ENV_CLIENT_SECRET].strip(),
        )

    @property
    def fingerprint(self) -> str:
        """A short hash of account id and client id (never the secret), for logs and keys."""
        return fingerprint(self.account_id, self.client_id)


def _scopes(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, (list, tuple)):
        return tuple(str(item) for item in value)
    return ()


@attrs.frozen(repr=False)
class AccessToken:
    """A bearer token from Zoom's ``account_credentials`` grant.

    Attributes:
        access_token: The bearer token itself; never in ``repr()``.
        expires_ts: Expiry as a Unix timestamp, counted from when the request
            was *sent* (so it errs early, never late); :attr:`expires_at` is
            the same moment as a datetime.
        issued_ts: Unix timestamp when the token request was sent
            (:attr:`issued_at` as a datetime).
        token_type: ``"bearer"``.
        scopes: The granted scopes.
        api_url: The account's regional API host (``https://eu01api.zoom.us``),
            if Zoom sent one.
    """

    access_token: str
    expires_ts: float
    issued_ts: float
    token_type: str = "bearer"  # noqa: S105 - a type name
    scopes: tuple[str, ...] = attrs.field(default=(), converter=_scopes)
    api_url: str | None = None

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short hash of the token, safe to log and to compare tokens by."""
        return fingerprint(self.access_token)

    @property
    def expires_at(self) -> dt.datetime:
        """When the token expires, as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.expires_ts, tz=dt.timezone.utc)

    @property
    def issued_at(self) -> dt.datetime:
        """When the token was requested, as an aware UTC datetime."""
        return dt.datetime.fromtimestamp(self.issued_ts, tz=dt.timezone.utc)

    @property
    def lifetime(self) -> float:
        """Seconds from issue to expiry as Zoom granted it."""
        return self.expires_ts - self.issued_ts

    def remaining(self, now: float) -> float:
        """Seconds left at Unix time ``now`` (negative once expired)."""
        return self.expires_ts - now

    def __repr__(self) -> str:
        return (
            f"AccessToken(fingerprint={self.fingerprint!r}, "
            f"expires_at={self.expires_at.isoformat(timespec='seconds')}, "
            f"scopes={len(self.scopes)}, api_url={self.api_url!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict; :meth:`from_dict` reads it back. Contains the token."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_at": self.expires_ts,
            "issued_at": self.issued_ts,
            "scopes": list(self.scopes),
            "api_url": self.api_url,
        }

    @classmethod
    def from_dict(cls, data: object) -> AccessToken:
        """Rebuild a token written by :meth:`to_dict`.

        Raises:
            ValueError: ``data`` is not such a dict (stores turn this into a
                cache miss with a warning).
        """
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        token = data.get("access_token")
        problem = bearer_token_problem(token)
        if problem is not None:
            raise ValueError(problem)
        assert isinstance(token, str)
        times = {}
        for name in ("expires_at", "issued_at"):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} missing or not a number")
            if not math.isfinite(value):
                raise ValueError(f"{name} is not finite")
            times[name] = float(value)
        if not 0 < times["expires_at"] - times["issued_at"] <= MAX_TOKEN_LIFETIME:
            raise ValueError(
                f"lifetime (expires_at - issued_at) is not between 0 and {MAX_TOKEN_LIFETIME:g} s"
            )
        api_url = data.get("api_url")
        token_type = data.get("token_type", "bearer")
        return cls(
            access_token=token,
            expires_ts=times["expires_at"],
            issued_ts=times["issued_at"],
            token_type=token_type if isinstance(token_type, str) else "bearer",
            scopes=_scopes(data.get("scopes", ())),
            api_url=api_url if isinstance(api_url, str) else None,
        )
