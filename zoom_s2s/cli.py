"""The ``zoom-s2s`` command.

Parsing uses the standard library's argparse: the commands are few and flat,
and it keeps the runtime dependencies at aiohttp, attrs and stamina.

Commands: ``token``, ``user``, ``account-id``, ``demo``, ``fake-server``,
``store init`` and ``store sql``.
Commands that need the app read its credentials from ``ZOOM_ACCOUNT_ID``,
``ZOOM_CLIENT_ID`` and ``ZOOM_CLIENT_SECRET`` unless flags give them; the
other defaults come from the environment through :mod:`zoom_s2s._env` (an
empty variable counts as unset). Errors print one line to stderr and exit with
status 1 (2 for usage errors); no traceback. Only ``token`` ever prints a
token; nothing prints the secret or a URL's password.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

import aiohttp

from ._env import (
    ENV_ACCESS_TOKEN,
    ENV_API_URL,
    ENV_ENCRYPTION_KEYS,
    ENV_LOG_LEVEL,
    ENV_STORE,
    ENV_TOKEN_URL,
    api_url_from_env,
    env_value,
    token_url_from_env,
)
from ._version import __version__
from .client import ZoomClient, discover_account_id
from .errors import ConfigurationError, ZoomS2SError
from .manager import TokenManager
from .models import ENV_ACCOUNT_ID, ENV_CLIENT_ID, ENV_CLIENT_SECRET
from .stores.url import store_from_url

__all__ = ["ENV_ACCESS_TOKEN", "ENV_ENCRYPTION_KEYS", "main"]

logger = logging.getLogger(__name__)

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
COMMANDS: dict[str, Command] = {}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def command(name: str) -> Callable[[Command], Command]:
    """Register an async ``cmd_*`` function under ``name``."""

    def register(func: Command) -> Command:
        COMMANDS[name] = func
        return func

    return register


def add_credential_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("credentials (default: environment variables)")
    group.add_argument("--account-id", help=f"Zoom account id (default: ${ENV_ACCOUNT_ID})")
    group.add_argument("--client-id", help=f"app client id (default: ${ENV_CLIENT_ID})")
    group.add_argument(
        "--client-secret-file",
        metavar="PATH",
        help=f"read the client secret from this file (default: ${ENV_CLIENT_SECRET}); "
        "there is no flag for the secret itself, so it never shows in 'ps'",
    )
    parser.add_argument(
        "--token-url",
        default=token_url_from_env(),
        help=f"token endpoint (default: ${ENV_TOKEN_URL} or %(default)s)",
    )
    parser.add_argument(
        "--store",
        default=env_value(ENV_STORE) or "memory://",
        metavar="URL",
        help="token store: memory://, file:///abs/dir, redis://..., rediss://... "
        f"(default: ${ENV_STORE} or %(default)s)",
    )
    add_insecure_flag(parser)


def add_insecure_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--allow-insecure-http`` (plain HTTP to a host that is not loopback)."""
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="accept http:// URLs to hosts other than loopback (credentials and tokens "
        "then cross the network in clear text)",
    )


def environment_from_args(args: argparse.Namespace) -> dict[str, str]:
    """The environment with the flags written over it (a flag wins over its variable)."""
    env = dict(os.environ)
    for name, value in (
        (ENV_ACCOUNT_ID, args.account_id),
        (ENV_CLIENT_ID, args.client_id),
        (ENV_TOKEN_URL, args.token_url),
        (ENV_STORE, args.store),
    ):
        if value:
            env[name] = value
    if args.client_secret_file:
        env[ENV_CLIENT_SECRET] = read_secret_file(args.client_secret_file)
    return env


def read_secret_file(path: str) -> str:
    """The stripped UTF-8 text of ``path``; a clear error if unreadable or not UTF-8."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read --client-secret-file {path!r}: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError as exc:  # never show the bytes: they are the secret
        raise ConfigurationError(
            f"--client-secret-file {path!r} is not UTF-8 text (invalid byte at position "
            f"{exc.start}); save the client secret as plain text, as the app's "
            "credentials page shows it"
        ) from None


def manager_from_args(args: argparse.Namespace) -> TokenManager:
    """A TokenManager configured by the common flags and the environment."""
    return TokenManager.from_env(
        environment_from_args(args), allow_insecure_http=args.allow_insecure_http
    )


@command("token")
async def cmd_token(args: argparse.Namespace) -> int:
    """Print a valid access token (from the store if one is there)."""
    async with manager_from_args(args) as tokens:
        token = await tokens.get_token()
    print(token.access_token)
    return 0


@command("user")
async def cmd_user(args: argparse.Namespace) -> int:
    """Print a user's JSON as Zoom returns it (``me``: the app's creating user)."""
    async with (
        manager_from_args(args) as tokens,
        ZoomClient(tokens, args.api_url, allow_insecure_http=args.allow_insecure_http) as zoom,
    ):
        user = await zoom.get_user(args.user_id)
    print(json.dumps(user.raw, indent=2, ensure_ascii=False))
    return 0


@command("account-id")
async def cmd_account_id(args: argparse.Namespace) -> int:
    """Print the account id behind an access token of any Zoom OAuth app."""
    access_token = (args.access_token or "").strip() or env_value(ENV_ACCESS_TOKEN)
    if not access_token:
        raise ConfigurationError(
            f"no access token: pass --access-token or set ${ENV_ACCESS_TOKEN} to a token "
            "of any Zoom OAuth app of the account"
        )
    account_id = await discover_account_id(
        access_token, base_url=args.api_url, allow_insecure_http=args.allow_insecure_http
    )
    print(account_id)
    return 0


@command("demo")
async def cmd_demo(args: argparse.Namespace) -> int:
    """Run the offline demo: many processes and coroutines, one token fetch."""
    from .demo import run_demo

    return await asyncio.to_thread(
        run_demo,
        workers=args.workers,
        coroutines=args.coroutines,
        calls=args.calls,
        store=args.store,
    )


@command("store")
async def cmd_store(args: argparse.Namespace) -> int:
    """``store init URL [--schema S]``: create or upgrade the store's schema (PostgreSQL;
    other stores have none). ``store sql [--schema S] [--grant-to USER]``: print the DDL
    and the minimal grants for a DBA to run, without connecting anywhere."""
    if args.store_command == "sql":
        from .stores.postgres import grants_sql, schema_sql

        sql = schema_sql(args.schema)  # both checked before anything is printed
        if args.grant_to:
            sql += grants_sql(args.grant_to, args.schema)
        print(sql, end="")
        return 0
    options = {} if args.schema is None else {"schema": args.schema}
    if options and not args.url.lower().startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            "--schema is for PostgreSQL stores (postgresql://...); other stores have no schema"
        )
    store = store_from_url(args.url, **options)
    try:
        init_schema = getattr(store, "init_schema", None)
        if init_schema is None:
            print(f"{store.name}: this store has no schema to create; nothing to do")
        else:
            print(f"{store.name}: {await init_schema()}")
    finally:
        await store.aclose()
    return 0


@command("fake-server")
async def cmd_fake_server(args: argparse.Namespace) -> int:
    """Serve the fake Zoom until interrupted; its environment goes to stdout, ready to eval.

    stdout is shell code (``export NAME=value`` lines and ``#`` comments):
    ``zoom-s2s fake-server > fake.env &`` then ``. ./fake.env``. The secret
    is printed there because that is this command's job (it is a fake's).
    When it stops (Ctrl-C, SIGTERM) a summary of its counters goes to stderr.
    """
    import shlex
    import signal

    from .testing.fake_zoom import FakeZoom

    zoom = FakeZoom(
        host=args.host,
        port=args.port,
        expires_in=args.expires_in,
        revoke_previous=args.revoke_previous,
    )
    if args.users:
        zoom.default_account.add_users(args.users)
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(zoom)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot bind the fake Zoom to {args.host}:{args.port}: "
                f"{exc.strerror or exc}; choose another --port or --host, or stop "
                "the program using it"
            ) from None
        creds = zoom.credentials
        print(f"# fake Zoom listening on {zoom.url}")
        print(f"# token URL {zoom.token_url}, API base {zoom.api_base_url}")
        print(f"# its counters: GET {zoom.stats_url}")
        for name, value in (
            (ENV_ACCOUNT_ID, creds.account_id),
            (ENV_CLIENT_ID, creds.client_id),
            (ENV_CLIENT_SECRET, creds.client_secret),
            (ENV_TOKEN_URL, zoom.token_url),
            (ENV_API_URL, zoom.api_base_url),
        ):
            print(f"export {name}={shlex.quote(value)}")
        print("# press Ctrl-C to stop", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        try:
            await stop.wait()
        finally:
            print(fake_summary(zoom.snapshot()), file=sys.stderr, flush=True)
    return 0


def fake_summary(stats: dict[str, Any]) -> str:
    """The fake's counters in a few lines (what ``GET /_fake/stats`` serves)."""
    lines = [
        f"fake Zoom stopped: {stats['token_requests']} token requests, "
        f"{stats['tokens_issued']} tokens issued, {stats['api_requests']} API requests, "
        f"{stats['rate_limited']} answered 429"
    ]
    for route, statuses in stats["requests"].items():
        counts = ", ".join(f"{status}: {count}" for status, count in statuses.items())
        lines.append(f"  {route}  {counts}")
    return "\n".join(lines)


def add_api_url_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--api-url`` (default: ``$ZOOM_API_URL`` or Zoom's API)."""
    parser.add_argument(
        "--api-url",
        default=api_url_from_env(),
        metavar="URL",
        help=f"REST API base (default: ${ENV_API_URL} or %(default)s)",
    )


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 (any free port) to 65535."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {value}")
    return value


def lifetime(text: str) -> float:
    """argparse type: a finite number of seconds above 0 (no ``nan``, no ``inf``)."""
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line, as every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="zoom-s2s",
        description="One shared Zoom Server-to-Server OAuth token for every process and host.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=(env_value(ENV_LOG_LEVEL) or "WARNING").upper(),
        help=f"log to stderr from this level (default: ${ENV_LOG_LEVEL} or %(default)s); "
        "logs name tokens by fingerprint only",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    token = sub.add_parser("token", help="print a valid access token")
    add_credential_flags(token)

    user = sub.add_parser("user", help="print a user's JSON (default: the app's creator)")
    user.add_argument(
        "user_id",
        nargs="?",
        default="me",
        metavar="USER_ID",
        help="user id, email address or 'me' (default: %(default)s)",
    )
    add_credential_flags(user)
    add_api_url_flag(user)

    account = sub.add_parser(
        "account-id", help="print the account id behind an access token of any Zoom OAuth app"
    )
    account.add_argument(
        "--access-token",
        metavar="TOKEN",
        help=f"the access token (default: ${ENV_ACCESS_TOKEN}; prefer the variable, "
        "a flag shows in 'ps')",
    )
    add_api_url_flag(account)
    add_insecure_flag(account)

    demo = sub.add_parser(
        "demo", help="offline demo: processes x coroutines on a fake Zoom share one token"
    )
    demo.add_argument(
        "--workers", type=positive_int, default=4, help="worker processes (default: %(default)s)"
    )
    demo.add_argument(
        "--coroutines",
        type=positive_int,
        default=25,
        help="coroutines per worker (default: %(default)s)",
    )
    demo.add_argument(
        "--calls",
        type=positive_int,
        default=3,
        help="get_user('me') calls per coroutine (default: %(default)s)",
    )
    demo.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="shared token store (default: a FileTokenStore in a new temporary "
        "directory); e.g. redis://localhost:6379/0",
    )

    store = sub.add_parser("store", help="manage a token store: 'store init URL', 'store sql'")
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    init = store_sub.add_parser(
        "init", help="create the store's schema now (PostgreSQL; otherwise nothing to do)"
    )
    init.add_argument("url", metavar="URL", help="the store URL, e.g. postgresql://host/db")
    init.add_argument(
        "--schema", default=None,
        help="PostgreSQL schema holding the store's tables (default: zoom_s2s)",
    )
    sql = store_sub.add_parser(
        "sql", help="print the PostgreSQL DDL (and grants) for a DBA; connects nowhere"
    )
    sql.add_argument(
        "--schema", default="zoom_s2s", help="schema to create (default: %(default)s)"
    )
    sql.add_argument(
        "--grant-to", metavar="USER", default=None,
        help="also print the minimal grants for this application user",
    )

    fake = sub.add_parser("fake-server", help="serve the fake Zoom for local testing")
    fake.add_argument("--host", default="127.0.0.1", help="interface (default: %(default)s)")
    fake.add_argument(
        "--port", type=port_number, default=8080, help="port (default: %(default)s)"
    )
    fake.add_argument(
        "--expires-in", type=lifetime, default=3599, help="token lifetime, s (default: %(default)s)"
    )
    fake.add_argument(
        "--revoke-previous",
        action="store_true",
        help="a new token revokes the earlier ones (Zoom's behaviour before June 2023)",
    )
    fake.add_argument(
        "--users",
        type=int,
        default=0,
        metavar="N",
        help="add N generated users to the account (to try pagination)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zoom-s2s`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_level not in LOG_LEVELS:  # a bad $ZOOM_S2S_LOG_LEVEL (flags are checked)
        parser.error(f"${ENV_LOG_LEVEL} must be one of {', '.join(LOG_LEVELS)}")
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except ZoomS2SError as exc:
        text = str(exc).replace("pass allow_insecure_http=True", "pass --allow-insecure-http")
        print(f"zoom-s2s: error: {text}", file=sys.stderr)
        return 1
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        print(f"zoom-s2s: error: cannot reach Zoom: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line, the traceback only at DEBUG
        logger.debug("unexpected error", exc_info=True)
        print(
            f"zoom-s2s: error: unexpected {type(exc).__name__}; rerun with --log-level DEBUG "
            "for details and report it",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
