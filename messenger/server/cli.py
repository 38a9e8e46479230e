"""The ``messenger-server`` command (also ``python -m messenger.server``).

::

    messenger-server [--config FILE] [serve [--host H] [--port P] [--data-dir DIR]]
    messenger-server [--config FILE] migrate [--data-dir DIR]
    messenger-server [--config FILE] mint-invite [--data-dir DIR] [--count N] [--uses N]
                                                 [--expires-days D]
    messenger-server [--config FILE] revoke-invite [--data-dir DIR] CODE
    messenger-server [--config FILE] status [--data-dir DIR]
    messenger-server [--config FILE] backup [--data-dir DIR] --to FILE [--include-key]
    messenger-server [--config FILE] restore [--data-dir DIR] --from FILE [--key KEYFILE]

Settings come from the TOML file (``--config`` or ``MESSENGER_CONFIG``) and
``MESSENGER_*`` environment variables (:mod:`.config`); the flags win over
both. ``mint-invite`` prints the new codes, one per line; the database keeps
only their hashes. ``mint-invite`` and ``migrate`` also run beside a serving
process on SQLite (short WAL transactions; the lock file only keeps a second
*server* out); ``migrate`` then only checks that the schema is current, as
changing it under a running server is not safe.

``revoke-invite``, ``status`` and ``backup`` (:mod:`.admin`) also work
beside a running server, on SQLite and PostgreSQL: ``status`` prints totals
only (nothing about one user, no address); ``backup`` writes a consistent
copy (SQLite's online backup API, or ``pg_dump``) to a new 0600 file, and
with ``--include-key`` the secret key file beside it (``FILE.key``).
``restore`` puts a backup back while no server runs, into an empty database,
and moves queue sequence numbers past every client's cursor (:mod:`.admin`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette

from .admin import (
    BackupError,
    backup_postgres,
    backup_sqlite,
    copy_secret_key,
    renumber_queues,
    restore_postgres,
    restore_sqlite,
    revoke_invite,
    server_status,
)
from .app import create_app
from .config import ConfigError, ServerConfig, load_config
from .logs import configure_logging, log_event
from .push import Hub
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

__all__ = ["UvicornServer", "main", "uvicorn_config"]

_log = logging.getLogger("messenger.server")
#: Where the data lives when nothing says otherwise (ServerConfig's default).
DEFAULT_DATA_DIR: Final = Path("messenger-data")
_DATA_DIR_HELP: Final = (
    "where the SQLite database and the secret key file live (default: "
    f"./{DEFAULT_DATA_DIR}, relative to the current directory; "
    "or MESSENGER_DATA_DIR, or data_dir in the TOML file)"
)


class UvicornServer(uvicorn.Server):
    """uvicorn's server, which ends the long polls when it shuts down.

    uvicorn waits for requests under way (up to ``timeout_graceful_shutdown``)
    before it stops, and a long poll (``GET /v1/queue/messages?wait=``, such as
    an app's contact queue's) would hold it until its wait ran out, then be
    cancelled with an error: waking them first lets them answer now.
    """

    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self._hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._hub.close()
        await super().shutdown(sockets)


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
    revoke = sub.add_parser(
        "revoke-invite",
        help="revoke an invite code",
        description="Delete an invite code so that no one can register with it any more "
        "(also while the server runs).",
    )
    revoke.add_argument("code", help="the invite code, as mint-invite printed it")
    status = sub.add_parser(
        "status",
        help="print totals about the database",
        description="Print the schema version, totals of accounts, clients, groups and "
        "queued messages, the database size and whether a server runs on it. "
        "Nothing about any one user.",
    )
    backup = sub.add_parser(
        "backup",
        help="write a consistent copy of the database",
        description="Copy the database to a new file (mode 0600) while the server may run: "
        "SQLite's online backup API, or pg_dump --format=custom on PostgreSQL. "
        "The secret key file is not in the database: copy it too (--include-key).",
    )
    backup.add_argument("--to", type=Path, required=True, help="the new backup file")
    backup.add_argument(
        "--include-key",
        action="store_true",
        help="also copy the secret key file to FILE.key (keep it as safe as the server)",
    )
    restore = sub.add_parser(
        "restore",
        help="put a backup back (the server stopped)",
        description="Restore a backup made by 'backup' into an empty database while no "
        "server runs, then move every queue's sequence numbers up so that clients newer "
        "than the backup receive new messages. Start the server afterwards.",
    )
    restore.add_argument("--from", dest="source", type=Path, required=True, help="the backup")
    restore.add_argument(
        "--key", type=Path, help="the secret key file to restore too (backup's FILE.key)"
    )
    for command in (serve, migrate_cmd, mint, revoke, status, backup, restore):
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


def _require_database(config: ServerConfig) -> None:
    """A StorageError when the SQLite database does not exist (rather than create it)."""
    url = config.effective_database_url
    if url.startswith("sqlite://"):
        path = SqliteDatabase.from_url(url, exclusive=False).path
        if not path.exists():
            raise StorageError(f"there is no database at {path} (check --data-dir)")


async def _revoke(config: ServerConfig, code: str) -> bool:
    _require_database(config)
    db, serving = _admin_database(config)
    await db.connect()
    try:
        if serving:
            await _migrate_beside_server(db)
        else:
            await migrate(db, int(time.time() * 1000))
        return await revoke_invite(db, code)
    finally:
        await db.close()


async def _status(config: ServerConfig) -> list[str]:
    _require_database(config)
    db, serving = _admin_database(config)
    await db.connect()
    try:
        status = await server_status(db, int(time.time() * 1000), serving=serving)
    finally:
        await db.close()
    lines = status.lines()
    if status.schema_version != LATEST_VERSION:
        lines.append(f"(this server version expects schema {LATEST_VERSION}: run migrate)")
    return lines


def _backup(config: ServerConfig, target: Path, include_key: bool) -> list[str]:
    url = config.effective_database_url
    if url.startswith("sqlite://"):
        source = SqliteDatabase.from_url(url, exclusive=False).path
        size = backup_sqlite(source, target)
    else:
        size = backup_postgres(url, target)
    lines = [f"backup written to {target} ({size} bytes)"]
    key_target = target.with_name(target.name + ".key")
    if include_key:
        copy_secret_key(config.secret_key_path, key_target)
        lines.append(f"secret key file copied to {key_target}")
    else:
        lines.append(
            f"the secret key file ({config.secret_key_path}) is not in the backup: "
            "keep a copy of it too (or use --include-key)"
        )
    return lines


async def _restore(config: ServerConfig, source: Path, key: Path | None) -> list[str]:
    if not source.is_file():
        raise BackupError(f"there is no backup at {source}")
    lines: list[str] = []
    if key is not None:
        target = config.secret_key_path
        if target.exists():
            if target.read_bytes() != key.read_bytes():
                raise BackupError(f"{target} exists and differs from {key}: move it away first")
        else:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            copy_secret_key(key, target)
            lines.append(f"secret key file restored to {target}")
    url = config.effective_database_url
    if url.startswith("sqlite://"):
        probe = SqliteDatabase.from_url(url, exclusive=False)
        if probe.in_use():
            raise BackupError("a server is running on this database: stop it first")
        restore_sqlite(source, probe.path)
        db: Database = SqliteDatabase.from_url(url)  # exclusive: no server starts meanwhile
        await db.connect()
    else:
        db = open_database(url, 2)
        await db.connect()
        try:
            await restore_postgres(db, url, source)
        except BaseException:
            await db.close()
            raise
    try:
        moved = await renumber_queues(db)
    finally:
        await db.close()
    lines.append(f"database restored from {source}; sequence numbers of {moved} queues moved up")
    if key is None and not config.secret_key_path.exists():
        lines.append(
            f"no secret key file at {config.secret_key_path}: restore it (--key) before "
            "starting the server, or issued credentials and handles are lost"
        )
    return lines


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
        if args.command == "revoke-invite":
            if not asyncio.run(_revoke(config, args.code.strip())):
                print("messenger-server: no such invite code", file=sys.stderr)
                return 1
            print("invite revoked")
            return 0
        if args.command == "status":
            for line in asyncio.run(_status(config)):
                print(line)
            return 0
        if args.command == "backup":
            for line in _backup(config, args.to, args.include_key):
                print(line)
            return 0
        if args.command == "restore":
            for line in asyncio.run(_restore(config, args.source, args.key)):
                print(line)
            return 0
        _raise_file_limit(config)
        app = create_app(config)
        server = UvicornServer(uvicorn_config(app, config.host, config.port), app.state.server.hub)
        server.run()
        return 0 if server.started else 1
    except StorageError as exc:
        print(f"messenger-server: {exc}", file=sys.stderr)
        return 1
