"""The ``messenger-server`` command (also ``python -m messenger.server``).

::

    messenger-server [--config FILE] [serve [--host H] [--port P] [--data-dir DIR]]
    messenger-server [--config FILE] migrate [--data-dir DIR]
    messenger-server [--config FILE] mint-invite [--data-dir DIR] [--count N] [--uses N]
                                                 [--expires-days D]

Settings come from the TOML file (``--config`` or ``MESSENGER_CONFIG``) and
``MESSENGER_*`` environment variables (:mod:`.config`); the flags win over
both. ``mint-invite`` prints the new codes, one per line; the database keeps
only their hashes. ``mint-invite`` and ``migrate`` also run beside a serving
process on SQLite (short WAL transactions; the lock file only keeps a second
*server* out); ``migrate`` then only checks that the schema is current, as
changing it under a running server is not safe.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette

from .app import create_app
from .config import ConfigError, ServerConfig, load_config
from .logs import configure_logging, log_event
from .registration import mint_invites
from .storage import LATEST_VERSION, Database, SqliteDatabase, StorageError, migrate, open_database
from .storage.migrations import schema_version
from .transport import (
    ConnectionLimits,
    file_limit,
    files_wanted,
    guarded_protocols,
    raise_file_limit,
)

__all__ = ["main", "uvicorn_config"]

_log = logging.getLogger("messenger.server")
#: Where the data lives when nothing says otherwise (ServerConfig's default).
DEFAULT_DATA_DIR: Final = Path("messenger-data")
_DATA_DIR_HELP: Final = (
    "where the SQLite database and the secret key file live (default: "
    f"./{DEFAULT_DATA_DIR}, relative to the current directory; "
    "or MESSENGER_DATA_DIR, or data_dir in the TOML file)"
)


def uvicorn_config(
    app: Starlette, host: str, port: int, config: ServerConfig | None = None
) -> uvicorn.Config:
    """How the server runs under uvicorn (shared by the command and the tests).

    The connection limits and timeouts come from ``config``, by default the
    configuration of ``app`` (:func:`~messenger.server.app.create_app`); see
    :mod:`messenger.server.transport`.
    """
    if config is None:
        config = app.state.server.config
    assert isinstance(config, ServerConfig)
    limits = ConnectionLimits.from_config(config, file_limit())
    protocols = guarded_protocols(limits)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocols.http,
        ws=protocols.ws,
        backlog=limits.backlog,
        ws_max_size=1 << 16,
        ws_per_message_deflate=False,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=5,
        lifespan="on",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="messenger-server", description="Messenger home server (MLS Delivery Service)"
    )
    parser.add_argument("--config", help="TOML configuration file (or MESSENGER_CONFIG)")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser(
        "serve",
        help="run the server (default)",
        description="Run the server. Flags win over MESSENGER_* variables and the TOML file.",
    )
    serve.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: 8080)")
    migrate_cmd = sub.add_parser(
        "migrate",
        help="apply database migrations and exit",
        description="Apply database migrations and exit. Beside a running SQLite server "
        "it only checks that the schema is current.",
    )
    mint = sub.add_parser(
        "mint-invite",
        help="create invite codes",
        description="Print new invite codes, one per line (also while the server runs).",
    )
    for command in (serve, migrate_cmd, mint):
        command.add_argument("--data-dir", type=Path, help=_DATA_DIR_HELP)
    mint.add_argument("--count", type=int, default=1, help="how many codes (default 1)")
    mint.add_argument("--uses", type=int, default=1, help="registrations per code (default 1)")
    mint.add_argument("--expires-days", type=float, default=None, help="validity in days")
    return parser


def _admin_database(config: ServerConfig) -> tuple[Database, bool]:
    """The database for an admin command, and whether a server is serving it now.

    On SQLite an admin command does not take the server's lock file, so it
    works beside a running server (WAL lets its short transactions through).
    """
    url = config.effective_database_url
    if url.startswith("sqlite://"):
        db = SqliteDatabase.from_url(url, exclusive=False)
        return db, db.in_use()
    return open_database(url, 2), False


async def _migrate_beside_server(db: Database) -> int:
    """A running server migrated at start; refuse to change the schema under it."""
    version = await db.transaction(schema_version)
    if version != LATEST_VERSION:
        raise StorageError(
            f"the database schema is at version {version}, not {LATEST_VERSION}, and a server "
            "is running on it: stop the server, then run migrate"
        )
    return version


async def _migrate(config: ServerConfig) -> int:
    db, serving = _admin_database(config)
    await db.connect()
    try:
        if serving:
            return await _migrate_beside_server(db)
        return await migrate(db, int(time.time() * 1000))
    finally:
        await db.close()


async def _mint(config: ServerConfig, count: int, uses: int, days: float | None) -> list[str]:
    db, serving = _admin_database(config)
    await db.connect()
    try:
        if serving:
            await _migrate_beside_server(db)
        else:
            await migrate(db, int(time.time() * 1000))
        expires = None if days is None else int((time.time() + days * 86400) * 1000)
        return await mint_invites(db, count, uses, expires)
    finally:
        await db.close()


def _raise_file_limit(config: ServerConfig) -> None:
    """Allow enough open files for ``max_connections``; warn when the hard limit
    is lower (the connection cap is then lowered to fit)."""
    limit = raise_file_limit(files_wanted(config))
    cap = ConnectionLimits.from_config(config, limit).max_connections
    if cap < config.max_connections:
        log_event(
            _log,
            "open file limit below max_connections; connection cap lowered",
            logging.WARNING,
            file_limit=limit,
            max_connections=cap,
        )


def _with_flags(config: ServerConfig, args: argparse.Namespace) -> ServerConfig:
    """The command-line flags win over the environment and the file."""
    changes: dict[str, Any] = {}
    for name in ("host", "port", "data_dir"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    try:
        return dataclasses.replace(config, **changes) if changes else config
    except ValueError as exc:  # pragma: no cover - ServerConfig raises ConfigError
        raise ConfigError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the process exit status."""
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config, os.environ)
        config = _with_flags(config, args)
    except ConfigError as exc:
        print(f"messenger-server: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    try:
        if args.command == "migrate":
            version = asyncio.run(_migrate(config))
            print(f"schema at version {version}")
            return 0
        if args.command == "mint-invite":
            if args.count < 1 or args.uses < 1:
                print("messenger-server: --count and --uses must be at least 1", file=sys.stderr)
                return 2
            for code in asyncio.run(_mint(config, args.count, args.uses, args.expires_days)):
                print(code)
            return 0
        _raise_file_limit(config)
        server = uvicorn.Server(uvicorn_config(create_app(config), config.host, config.port))
        server.run()
        return 0 if server.started else 1
    except StorageError as exc:
        print(f"messenger-server: {exc}", file=sys.stderr)
        return 1
