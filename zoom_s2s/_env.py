"""The one place zoom-s2s reads its defaults from the environment.

Every variable follows the same rule: unset, empty or only whitespace means
"not set", and the built-in default applies. Values are stripped.

Variables (the credentials' ``ZOOM_ACCOUNT_ID``, ``ZOOM_CLIENT_ID`` and
``ZOOM_CLIENT_SECRET`` are read by :meth:`zoom_s2s.Credentials.from_env`):

- ``ZOOM_TOKEN_URL``: the token endpoint (default :data:`DEFAULT_TOKEN_URL`).
- ``ZOOM_API_URL``: the REST API base (default :data:`DEFAULT_API_URL`).
- ``ZOOM_S2S_STORE``: the token store's URL (default ``memory://``).
- ``ZOOM_S2S_ENCRYPTION_KEYS``: comma-separated Fernet keys; the store is then
  an :class:`~zoom_s2s.EncryptedTokenStore` (the first key encrypts).
- ``ZOOM_S2S_LOG_LEVEL``, ``ZOOM_ACCESS_TOKEN``: used by the ``zoom-s2s`` command.

:func:`manager_options` turns them into ``TokenManager`` arguments, for
``TokenManager.from_env()`` and the command alike.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_TOKEN_URL",
    "ENV_ACCESS_TOKEN",
    "ENV_API_URL",
    "ENV_ENCRYPTION_KEYS",
    "ENV_LOG_LEVEL",
    "ENV_STORE",
    "ENV_TOKEN_URL",
    "ZOOMGOV_API_URL",
    "ZOOMGOV_TOKEN_URL",
    "api_url_from_env",
    "env_value",
    "manager_options",
    "token_url_from_env",
]

DEFAULT_TOKEN_URL = "https://zoom.us/oauth/token"  # noqa: S105 - a URL
ZOOMGOV_TOKEN_URL = "https://zoomgov.com/oauth/token"  # noqa: S105 - a URL
DEFAULT_API_URL = "https://api.zoom.us/v2"
ZOOMGOV_API_URL = "https://api.zoomgov.com/v2"  # from third-party code; not confirmed by Zoom

ENV_TOKEN_URL = "ZOOM_TOKEN_URL"  # noqa: S105 - a variable's name
ENV_API_URL = "ZOOM_API_URL"
ENV_STORE = "ZOOM_S2S_STORE"
ENV_ENCRYPTION_KEYS = "ZOOM_S2S_ENCRYPTION_KEYS"
ENV_LOG_LEVEL = "ZOOM_S2S_LOG_LEVEL"
ENV_ACCESS_TOKEN = "ZOOM_ACCESS_TOKEN"  # noqa: S105 - a variable's name, not a token


def env_value(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The stripped value of variable ``name``, or ``None`` if it is unset, empty or blank.

    Args:
        name: The variable's name.
        environ: The mapping to read; ``os.environ`` by default.
    """
    value = (os.environ if environ is None else environ).get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def token_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``$ZOOM_TOKEN_URL`` if set and not blank, else :data:`DEFAULT_TOKEN_URL`."""
    return env_value(ENV_TOKEN_URL, environ) or DEFAULT_TOKEN_URL


def api_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``$ZOOM_API_URL`` if set and not blank, else :data:`DEFAULT_API_URL`."""
    return env_value(ENV_API_URL, environ) or DEFAULT_API_URL


def manager_options(
    environ: Mapping[str, str] | None = None, *, per_process: bool = False, **options: Any
) -> dict[str, Any]:
    """``TokenManager`` keyword arguments, ``credentials`` included, from the environment.

    Args:
        environ: The mapping to read; ``os.environ`` by default.
        per_process: For the blocking facade: an encrypted store is returned as
            a factory, which the facade calls in each process.
        **options: More ``TokenManager`` arguments. ``store`` and ``token_url``
            here are defaults: ``$ZOOM_S2S_STORE`` and ``$ZOOM_TOKEN_URL`` win.

    Raises:
        ConfigurationError: A credential variable is missing, an encryption key
            or the store URL is invalid, or encryption keys are set while the
            store is an object (wrap it in ``EncryptedTokenStore`` yourself).
    """
    from .errors import ConfigurationError
    from .models import Credentials

    env = os.environ if environ is None else environ
    credentials = Credentials.from_env(env)
    options["token_url"] = (
        env_value(ENV_TOKEN_URL, env) or options.get("token_url") or DEFAULT_TOKEN_URL
    )
    store = env_value(ENV_STORE, env) or options.get("store")
    keys = [k.strip() for k in (env_value(ENV_ENCRYPTION_KEYS, env) or "").split(",") if k.strip()]
    if keys:
        if store is not None and not isinstance(store, str):
            raise ConfigurationError(
                f"${ENV_ENCRYPTION_KEYS} is set but store= is a store object; pass a URL, "
                "or wrap the store in EncryptedTokenStore yourself"
            )
        from .stores.encrypted import validate_keys
        from .stores.url import store_from_url

        validate_keys(keys)
        make = functools.partial(store_from_url, store or "memory://", encryption_keys=keys)
        if per_process:
            store = make
        else:
            store = make()
            options.setdefault("close_store", True)  # made here: the manager owns it
    options["store"] = store
    return {**options, "credentials": credentials}
