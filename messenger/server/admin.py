"""The operator's commands beside a running server: revoke an invite, status, backup.

Each one works while a server serves the same database (docs/self-hosting.md):

* :func:`revoke_invite` deletes an invite by its code (the database keeps
  only the code's hash, :func:`~messenger.server.registration.invite_hash`);
* :func:`server_status` gives totals only (schema version, accounts,
  clients, groups, queued messages, database size, whether a server holds
  the SQLite lock), never anything about one user and never an address;
* :func:`backup_sqlite` copies a SQLite database with SQLite's online
  backup API, one consistent snapshot even while the server writes;
  :func:`backup_postgres` runs ``pg_dump`` with the configured DSN, the
  password passed in the environment (``PGPASSWORD``), never on a command
  line or in a message;
* :func:`restore_sqlite` and :func:`restore_postgres` put a backup back
  (the server stopped, the database empty), then :func:`renumber_queues`
  moves every queue's sequence numbers up by :data:`RESTORE_SEQ_GAP`.

Why renumber: a backup is older than the clients. A client that fetched
past the backup's sequence numbers keeps its cursor, and would skip every
new message numbered at or below it -- it would hear nothing until the
queue caught up. Moving the restored entries and ``next_seq`` up by far
more than any queue receives keeps the queue contiguous (its length is
``next_seq`` minus the oldest entry) and puts every new message above every
cursor. Entries restored from the backup that a client had already
processed come again above its cursor: the client meets them as messages
it has already seen (old epochs, used generations) and drops them.

The secret key file (``server-secret.key``) is not in the database; a
backup copies it only when asked (``include_key``), and the command reminds
the operator of it otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from .registration import invite_hash
from .storage import Database, SqliteDatabase, StorageError, Tx
from .storage.migrations import schema_version

__all__ = [
    "RESTORE_SEQ_GAP",
    "BackupError",
    "ServerStatus",
    "backup_postgres",
    "backup_sqlite",
    "copy_secret_key",
    "postgres_dump_command",
    "renumber_queues",
    "restore_postgres",
    "restore_sqlite",
    "revoke_invite",
    "server_status",
]

_PRIVATE_FILE: Final = 0o600
#: How far a restore moves queue sequence numbers up (see the module docstring):
#: more messages than any one queue receives between a backup and its restore.
RESTORE_SEQ_GAP: Final = 1 << 32


class BackupError(StorageError):
    """A backup could not be written."""


async def revoke_invite(db: Database, code: str) -> bool:
    """Delete the invite ``code``; whether it existed."""
    digest = invite_hash(code)

    async def op(tx: Tx) -> int:
        return await tx.execute("DELETE FROM invites WHERE code_hash = ?", digest)

    return await db.transaction(op) > 0


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """Totals about a server's database; nothing about any one user."""

    backend: str
    schema_version: int
    accounts: int
    clients: int
    groups: int
    queued_messages: int
    usable_invites: int
    database_bytes: int
    #: SQLite: whether a server process holds the database's lock. PostgreSQL:
    #: ``None`` (several processes may serve; see ``other_connections``).
    server_running: bool | None
    #: PostgreSQL: connections to the database other than this command's.
    other_connections: int | None

    def lines(self) -> list[str]:
        """``key: value`` lines for the terminal."""
        running = {True: "yes", False: "no", None: "n/a (PostgreSQL)"}[self.server_running]
        out = [
            f"backend: {self.backend}",
            f"schema version: {self.schema_version}",
            f"accounts: {self.accounts}",
            f"clients: {self.clients}",
            f"groups: {self.groups}",
            f"queued messages: {self.queued_messages}",
            f"usable invites: {self.usable_invites}",
            f"database size: {_size(self.database_bytes)}",
            f"server running: {running}",
        ]
        if self.other_connections is not None:
            out.append(f"other database connections: {self.other_connections}")
        return out


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{n} bytes ({value:.1f} {unit})"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _sqlite_bytes(path: Path) -> int:
    """The database file and its write-ahead log."""
    total = 0
    for name in (str(path), f"{path}-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += os.stat(name).st_size
    return total


async def server_status(db: Database, now_ms: int, *, serving: bool | None) -> ServerStatus:
    """The totals of ``db``; ``serving``: whether a server holds its SQLite lock."""

    async def count(tx: Tx, sql: str, *args: object) -> int:
        row = await tx.fetchone(sql, *args)
        return int(row[0]) if row is not None and row[0] is not None else 0

    async def op(tx: Tx) -> tuple[int, ...]:
        version = await schema_version(tx)
        size = other = -1
        if tx.dialect == "postgresql":
            size = await count(tx, "SELECT pg_database_size(current_database())")
            other = await count(
                tx,
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
        return (
            version,
            await count(tx, "SELECT count(*) FROM accounts"),
            await count(tx, "SELECT count(*) FROM clients"),
            await count(tx, "SELECT count(*) FROM mls_groups"),
            await count(tx, "SELECT count(*) FROM queue_entries"),
            await count(
                tx,
                "SELECT count(*) FROM invites WHERE uses_left > 0 "
                "AND (expires_at IS NULL OR expires_at > ?)",
                now_ms,
            ),
            size,
            other,
        )

    version, accounts, clients, groups, queued, invites, size, other = await db.read(op)
    if isinstance(db, SqliteDatabase):
        size = _sqlite_bytes(db.path)
    return ServerStatus(
        backend=db.dialect,
        schema_version=version,
        accounts=accounts,
        clients=clients,
        groups=groups,
        queued_messages=queued,
        usable_invites=invites,
        database_bytes=size,
        server_running=serving if db.dialect == "sqlite" else None,
        other_connections=other if db.dialect == "postgresql" else None,
    )


@contextlib.contextmanager
def _new_private_file(target: Path) -> Iterator[Path]:
    """A new file beside ``target``, 0600 from creation, renamed onto ``target`` at the end.

    ``target`` must not exist: a backup never overwrites one. On failure the
    partial file is removed.
    """
    if target.exists():
        raise BackupError(f"{target} exists; choose a new file name")
    partial = target.with_name(target.name + ".partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_FILE)
    except FileExistsError:
        raise BackupError(f"{partial} exists (an interrupted backup?); remove it first") from None
    except OSError as exc:
        raise BackupError(f"cannot create {partial}: {exc.strerror}") from None
    os.close(fd)
    try:
        yield partial
        if target.exists():
            raise BackupError(f"{target} appeared during the backup; not overwritten")
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy the SQLite database ``source`` to the new file ``target``; its size.

    SQLite's online backup API copies every page in one step, under one read
    transaction: the copy is the database as of one commit, whatever a
    running server writes meanwhile (WAL lets the server go on writing). The
    copy is a single file (rollback journal mode), checked with
    ``PRAGMA quick_check``, and 0600 from creation.
    """
    if not source.exists():
        raise BackupError(f"there is no database at {source}")
    with _new_private_file(target) as partial:
        try:
            # Read-write, though it only reads: a read-only connection to a WAL
            # database leaves -wal and -shm files behind, owned by whoever ran
            # the backup; the last read-write connection removes them.
            src = sqlite3.connect(source)
            try:
                src.execute("PRAGMA busy_timeout=10000")
                dest = sqlite3.connect(partial)
                try:
                    src.backup(dest)  # pages=-1: all at once, one consistent snapshot
                    dest.execute("PRAGMA journal_mode=DELETE")
                    check = dest.execute("PRAGMA quick_check").fetchone()
                finally:
                    dest.close()
            finally:
                src.close()
        except sqlite3.Error as exc:
            raise BackupError(f"the backup of {source} failed: {exc}") from exc
        if check is None or check[0] != "ok":
            raise BackupError("the copy failed SQLite's integrity check")
        os.chmod(partial, _PRIVATE_FILE)
    return target.stat().st_size


def copy_secret_key(key_file: Path, target: Path) -> None:
    """Copy the server's secret key file to the new file ``target`` (0600)."""
    if not key_file.exists():
        raise BackupError(f"there is no secret key file at {key_file}")
    with _new_private_file(target) as partial, open(partial, "wb") as out:
        out.write(key_file.read_bytes())


#: libpq URI parameters that ``pg_dump`` does not understand but asyncpg does.
_SEARCH_PATH: Final = "search_path"


def _libpq(dsn: str) -> tuple[str, dict[str, str], list[str]]:
    """A libpq URL without the password, the environment with it, and the schemas.

    The password moves from the URL to ``PGPASSWORD`` so that no command
    line (visible in ``ps``) carries it. A ``search_path`` query parameter
    (asyncpg's server setting, which libpq does not know) is taken out.
    """
    parts = urlsplit(dsn)
    env: dict[str, str] = {}
    netloc = parts.netloc
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{hostinfo}"
    schemas: list[str] = []
    query: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == _SEARCH_PATH:
            schemas.extend(s.strip() for s in value.split(",") if s.strip())
        else:
            query.append((key, value))
    return urlunsplit(("postgresql", netloc, parts.path, urlencode(query), "")), env, schemas


def postgres_dump_command(dsn: str, target: Path) -> tuple[list[str], dict[str, str]]:
    """The ``pg_dump`` command line and the environment it needs (:func:`_libpq`).

    A ``search_path`` in the DSN limits the dump to those schemas (``--schema``).
    """
    url, env, schemas = _libpq(dsn)
    command = [
        "pg_dump",
        "--format=custom",
        "--no-owner",
        f"--file={target}",
        f"--dbname={url}",
        *(f"--schema={schema}" for schema in schemas),
    ]
    return command, env


def backup_postgres(dsn: str, target: Path) -> int:
    """Dump the PostgreSQL database of ``dsn`` to the new file ``target``; its size.

    ``pg_dump`` takes one consistent snapshot (a repeatable-read
    transaction), so the server may keep running. ``messenger-server
    restore`` puts it back (:func:`restore_postgres`, docs/self-hosting.md).
    """
    with _new_private_file(target) as partial:
        command, env = postgres_dump_command(dsn, partial)
        _run_postgres_tool(command, env, "pg_dump")
        os.chmod(partial, _PRIVATE_FILE)
    return target.stat().st_size


def _run_postgres_tool(command: list[str], env: dict[str, str], what: str) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(
            f"{command[0]} is not installed (Debian: apt-get install postgresql-client)"
        )
    result = subprocess.run(  # noqa: S603 (a fixed program; arguments are not a shell line)
        command, env={**os.environ, **env}, capture_output=True, check=False
    )
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()
        password = env.get("PGPASSWORD")
        if password:
            message = message.replace(password, "***")
        raise BackupError(f"{what} failed: {message}")


async def renumber_queues(db: Database, gap: int = RESTORE_SEQ_GAP) -> int:
    """Move every queue entry and every ``next_seq`` up by ``gap``; the queues moved."""

    async def op(tx: Tx) -> int:
        # No collision inside the primary key (queue_id, seq): gap exceeds any
        # queue's span of sequence numbers.
        await tx.execute("UPDATE queue_entries SET seq = seq + ?", gap)
        return await tx.execute("UPDATE queues SET next_seq = next_seq + ?", gap)

    return await db.transaction(op)


def restore_sqlite(backup: Path, database: Path) -> None:
    """Put the SQLite ``backup`` in place as ``database`` (which must not exist).

    The caller then opens the database exclusively (which fails while a
    server runs) and calls :func:`renumber_queues`.
    """
    if database.exists():
        raise BackupError(
            f"{database} exists: stop the server and move it (and its -wal and -shm files) "
            "away before restoring"
        )
    try:
        with sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True) as check:
            row = check.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as exc:
        raise BackupError(f"{backup} is not a SQLite backup: {exc}") from exc
    if row is None or row[0] != "ok":
        raise BackupError(f"{backup} failed SQLite's integrity check")
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm", "-journal"):
        # A log left by another database would be replayed into this one.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{database}{suffix}")
    with _new_private_file(database) as partial, open(partial, "wb") as out:
        with open(backup, "rb") as source:
            shutil.copyfileobj(source, out)
        out.flush()
        os.fsync(out.fileno())


async def restore_postgres(db: Database, dsn: str, backup: Path) -> None:
    """``pg_restore`` the dump ``backup`` into the empty database of ``dsn``.

    ``db`` (connected to the same database) checks that no Messenger schema
    is there yet.
    """

    async def existing(tx: Tx) -> int:
        row = await tx.fetchone(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
            "AND table_schema = ANY(current_schemas(false))",
            "schema_migrations",
        )
        return int(row[0]) if row is not None else 0

    if await db.read(existing):
        raise BackupError(
            "the database already holds a Messenger schema: restore into an empty database "
            "(or drop the schema first)"
        )
    url, env, _ = _libpq(dsn)
    command = ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={url}", str(backup)]
    await asyncio.to_thread(_run_postgres_tool, command, env, "pg_restore")
