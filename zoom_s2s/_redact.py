"""Scrubbing secrets from text in every encoding a reply can carry them.

:func:`secret_forms` lists a secret's encodings (raw, ``id:secret``, Base64,
``Basic``, URL-encoded); :func:`scrub` replaces them with ``***``. Every text
built from a reply goes through it (``docs/architecture.rst``, "Trust model").
:func:`is_secret_parameter` is the one rule for which URL parameters are secrets.
"""

from __future__ import annotations

import base64
import re
import urllib.parse

__all__ = ["REDACTED", "is_secret_parameter", "scrub", "scrub_optional", "secret_forms"]

REDACTED = "***"

# Substrings of the parameter names that carry secrets: password, sslpassword,
# ssl_password, passwd, passphrase, pwd, client_secret, token, access_token, ...
_SECRET_NAME_PARTS = ("pass", "pwd", "secret", "token", "credential")


def is_secret_parameter(name: str) -> bool:
    """Whether a URL query parameter called ``name`` carries a secret (hidden wherever shown)."""
    folded = name.lower()
    return any(part in folded for part in _SECRET_NAME_PARTS)

_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _url_encodings(text: str) -> set[str]:
    """``text`` URL-encoded as forms, paths and queries write it (either hex case)."""
    found = {
        urllib.parse.quote(text, safe=""),
        urllib.parse.quote(text),  # "/" kept, as in paths
        urllib.parse.quote_plus(text),
    }
    # A reply may spell the escapes in lower case (%2f); both decode to the secret.
    found |= {_PERCENT_ESCAPE.sub(lambda m: m.group().lower(), form) for form in found}
    return found


def _base64_encodings(data: bytes) -> set[str]:
    """``data`` in standard and URL-safe Base64, with and without ``=`` padding."""
    found = set()
    for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
        text = encoded.decode("ascii")
        found |= {text, text.rstrip("=")}
    return found


def secret_forms(*secrets: str | None, client_id: str | None = None) -> tuple[str, ...]:
    """Every form in which a reply can carry ``secrets``, longest first.

    Args:
        *secrets: Client secrets, bearer tokens, passwords; ``None`` and empty
            strings are skipped.
        client_id: The client id sent beside a secret in HTTP Basic auth;
            adds ``client_id:secret``, its Base64 encodings and
            ``Basic <base64>``.

    Returns:
        The raw values, their URL encodings (``quote``, ``quote_plus``, either
        hex case) and, with ``client_id``, the Basic-auth encodings; longest
        first so that :func:`scrub` replaces a whole header before a part of
        it. Empty when there is nothing to hide.
    """
    found: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        found.add(secret)
        found |= _url_encodings(secret)
        found |= _base64_encodings(secret.encode())
        if client_id:
            pair = f"{client_id}:{secret}"
            found.add(pair)
            found |= _url_encodings(pair)
            for encoded in _base64_encodings(pair.encode()):
                found |= {encoded, f"Basic {encoded}"}
                found |= _url_encodings(encoded)
    found.discard("")
    return tuple(sorted(found, key=lambda form: (-len(form), form)))


def scrub(text: str, forms: tuple[str, ...]) -> str:
    """``text`` with each of ``forms`` (from :func:`secret_forms`) replaced by ``***``."""
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def scrub_optional(text: str | None, forms: tuple[str, ...]) -> str | None:
    """:func:`scrub` that passes ``None`` through (for optional error fields)."""
    return None if text is None else scrub(text, forms)
