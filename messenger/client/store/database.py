"""One SQLCipher 4 connection: opening with a raw key, queries, transactions.

:class:`Database` is the sync core. A connection belongs to the thread that
opened it (SQLite's rule, enforced by the driver); the async client runs
all of its database work on one dedicated thread (:mod:`.async_store`).

Opening (:meth:`Database.open`):

* ``PRAGMA cipher_log_level = NONE`` (SQLCipher would otherwise print to
  stderr), then ``PRAGMA key`` with the raw 32-byte key and
  ``cipher_compatibility = 4`` so that a later SQLCipher keeps reading the
  file the same way;
* a first query: SQLCipher checks the key only when it first reads a page,
  and a wrong key shows up there as "file is not a database"
  (:class:`WrongKeyError`);
* WAL journal, ``synchronous = FULL`` (a committed MLS epoch must survive a
  power cut: the server deletes what it has delivered), foreign keys on,
  ``secure_delete`` on (deleted content is overwritten with zeros, so a
  disappearing message leaves nothing in a free page: docs/attachments.md
  §7), a busy timeout.

Every SQLite error is mapped to a typed :class:`StoreError` at this one
seam (:func:`map_sqlite_error`); notably "database or disk is full" becomes
:class:`DiskFullError`. Programming errors (bad SQL, wrong thread) are not
mapped: they are bugs.

File modes: the database file is created empty, readable and writable by
its owner only (0600), before SQLite opens it; SQLite gives its -wal, -shm
and -journal files the database file's mode, so they are private from the
start too, whatever the umask. Opening an existing database tightens files
left group- or world-readable by an older version (POSIX).

Transactions (:meth:`Database.transaction`) are ``BEGIN IMMEDIATE`` so that
a writer takes the lock up front, and nest as savepoints. This is what
"stage, persist, merge" (architecture guide, convention 4) relies on: the
new group state and the messages it produced commit together or not at all.

A transaction that changes only what this device decided alone -- a
message the user typed, queued but not yet encrypted; a send the server
accepted (its retry is answered from the idempotency key) -- may be
committed with ``durable=False``: ``synchronous = NORMAL`` for that commit
only, so it does not wait for the disk (the WAL is fsynced about 2 ms per
commit here). A crash of the process loses nothing (the WAL is in the OS's
hands); a power cut may lose such commits made since the last durable one,
and only those: the WAL is one sequence, and every durable commit -- of an
MLS state, of a cursor before an ack -- fsyncs everything before it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import sqlcipher3.dbapi2 as sqlcipher  # type: ignore[import-untyped]

from ..errors import (
    ClientError,
    ConstraintError,
    DiskFullError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreIOError,
    StoreNotFoundError,
    WrongKeyError,
)
from .database_key import DatabaseKey

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SIDECAR_SUFFIXES",
    "Database",
    "ExecResult",
    "Params",
    "Row",
    "SqlValue",
    "create_private_file",
    "map_sqlite_error",
    "tighten_database_files",
]

SqlValue = None | int | float | str | bytes
Params = Sequence[SqlValue] | Mapping[str, SqlValue]
Row = tuple[Any, ...]

BUSY_TIMEOUT_MS: Final = 5000
#: The files SQLite keeps beside a database, named by appending these.
SIDECAR_SUFFIXES: Final = ("-wal", "-shm", "-journal")
_PRIVATE_FILE: Final = 0o600
_EXPORT_SCHEMA: Final = "export_target"

_log = logging.getLogger(__name__)

# Primary result codes (https://sqlite.org/rescode.html).
_SQLITE_PERM: Final = 3
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_SQLITE_READONLY: Final = 8
_SQLITE_IOERR: Final = 10
_SQLITE_CORRUPT: Final = 11
_SQLITE_FULL: Final = 13
_SQLITE_CANTOPEN: Final = 14
_SQLITE_CONSTRAINT: Final = 19
_SQLITE_NOLFS: Final = 22
_SQLITE_NOTADB: Final = 26


def map_sqlite_error(exc: Exception, *, opening: bool = False) -> ClientError:
    """The typed error for a SQLite/SQLCipher error."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return DiskFullError(text)
    if primary == _SQLITE_NOTADB or "file is not a database" in text:
        return WrongKeyError(text) if opening else StoreCorruptError(text)
    if primary == _SQLITE_CORRUPT:
        return StoreCorruptError(text)
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return StoreBusyError(text)
    if primary == _SQLITE_CANTOPEN:
        return StoreNotFoundError(text) if opening else StoreIOError(text)
    if primary in (_SQLITE_IOERR, _SQLITE_READONLY, _SQLITE_PERM, _SQLITE_NOLFS):
        return StoreIOError(text)
    if primary == _SQLITE_CONSTRAINT or isinstance(exc, sqlcipher.IntegrityError):
        return ConstraintError(text)
    return StoreError(text)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (whatever the umask), unless it exists.

    SQLite opens an empty file as a new database, and creates the -wal,
    -shm and -journal files with the database file's mode.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, _PRIVATE_FILE)
    except FileExistsError:
        return
    except FileNotFoundError as exc:
        raise StoreNotFoundError(f"no directory for {path.name}") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(f"could not create {path.name}") from exc
        raise StoreIOError(f"could not create {path.name}: {exc.strerror}") from exc
    os.close(fd)


def tighten_database_files(path: Path) -> None:
    """Make the database at ``path`` and its sidecar files owner-only (POSIX).

    For files an older version left with the umask's mode; a file that
    cannot be changed (another owner) is left as it is.
    """
    if os.name != "posix":
        return
    for file in (path, *(path.with_name(path.name + s) for s in SIDECAR_SUFFIXES)):
        try:
            mode = os.lstat(file).st_mode
        except OSError:  # absent (most sidecars, most of the time) or unreadable
            continue
        if stat.S_ISREG(mode) and mode & 0o077:
            try:
                os.chmod(file, _PRIVATE_FILE)
            except OSError as exc:
                _log.warning("could not make %s private: %s", file.name, exc.strerror)


# Errors that are about the database, not about our code.
_MAPPED: Final = (sqlcipher.OperationalError, sqlcipher.DatabaseError)
_BUGS: Final = (sqlcipher.ProgrammingError, sqlcipher.InterfaceError)


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What a write statement did."""

    rowcount: int
    lastrowid: int | None


class Database:
    """An open, unlocked SQLCipher connection. Use :meth:`open`."""

    def __init__(self, connection: Any, path: Path) -> None:
        self._conn = connection
        self.path = path
        self._depth = 0
        self._closed = False
        self._relaxed = False
        """``synchronous = NORMAL`` is on (set by a non-durable transaction, kept until
        something else is written: switching costs two statements per transaction)."""

    # -- opening and closing -------------------------------------------------

    @classmethod
    def open(cls, path: Path, key: DatabaseKey, *, create: bool = False) -> Database:
        """Open (or with ``create``, create) the database at ``path`` with ``key``.

        StoreNotFoundError if it does not exist and ``create`` is false;
        WrongKeyError if ``key`` does not open it.
        """
        if not create and not path.is_file():
            raise StoreNotFoundError(f"no database at {path}")
        if create:
            create_private_file(path)
        tighten_database_files(path)
        uri = path.absolute().as_uri() + ("?mode=rwc" if create else "?mode=rw")
        try:
            conn = sqlcipher.connect(uri, uri=True, isolation_level=None, check_same_thread=True)
        except _MAPPED as exc:
            raise map_sqlite_error(exc, opening=True) from exc
        db = cls(conn, path)
        try:
            db._unlock(key)
        except BaseException:
            conn.close()
            raise
        return db

    def _unlock(self, key: DatabaseKey) -> None:
        conn = self._conn
        try:
            conn.execute("PRAGMA cipher_log_level = NONE")
            conn.execute(f"PRAGMA key = {key.sqlcipher_pragma_value()}")
            conn.execute("PRAGMA cipher_compatibility = 4")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except _MAPPED as exc:
            raise map_sqlite_error(exc, opening=True) from exc
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except _MAPPED as exc:
            raise map_sqlite_error(exc) from exc

    def close(self) -> None:
        """Close the connection (a transaction still open is rolled back)."""
        if not self._closed:
            self._closed = True
            self._conn.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- statements ------------------------------------------------------------

    def _cursor(self, sql: str, params: Params) -> Any:
        if self._depth and not self._conn.in_transaction:
            # SQLite rolls a whole transaction back on some errors (full
            # disk, I/O); carrying on would autocommit statement by statement.
            raise StoreError("the transaction was rolled back by an earlier error")
        if (
            self._relaxed
            and not self._conn.in_transaction
            and not sql.startswith(("BEGIN", "PRAGMA"))
        ):
            self._synchronous(relaxed=False)  # a statement of its own: durable
        return self._conn.execute(sql, params)

    def _synchronous(self, *, relaxed: bool) -> None:
        self._conn.execute(f"PRAGMA synchronous = {'NORMAL' if relaxed else 'FULL'}")
        self._relaxed = relaxed

    def execute(self, sql: str, params: Params = ()) -> ExecResult:
        """Run one write statement."""
        try:
            cur = self._cursor(sql, params)
            return ExecResult(rowcount=cur.rowcount, lastrowid=cur.lastrowid)
        except _BUGS:
            raise
        except _MAPPED as exc:
            raise map_sqlite_error(exc) from exc

    def executemany(self, sql: str, rows: Sequence[Params]) -> ExecResult:
        """Run one write statement for each parameter set."""
        if self._depth and not self._conn.in_transaction:
            raise StoreError("the transaction was rolled back by an earlier error")
        if self._relaxed and not self._conn.in_transaction:
            self._synchronous(relaxed=False)
        try:
            cur = self._conn.executemany(sql, rows)
            return ExecResult(rowcount=cur.rowcount, lastrowid=cur.lastrowid)
        except _BUGS:
            raise
        except _MAPPED as exc:
            raise map_sqlite_error(exc) from exc

    def query(self, sql: str, params: Params = ()) -> list[Row]:
        """All rows of a query, as tuples."""
        try:
            rows: list[Row] = self._cursor(sql, params).fetchall()
        except _BUGS:
            raise
        except _MAPPED as exc:
            raise map_sqlite_error(exc) from exc
        return rows

    def query_one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        try:
            cursor = self._cursor(sql, params)
            row: Row | None = cursor.fetchone()
            cursor.close()  # resets the statement (finishes an INSERT ... RETURNING)
        except _BUGS:
            raise
        except _MAPPED as exc:
            raise map_sqlite_error(exc) from exc
        return row

    def query_value(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None if there is no row."""
        row = self.query_one(sql, params)
        return None if row is None else row[0]

    # -- transactions ------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """Commit everything done inside, or (on any exception) nothing.

        Nested use makes a savepoint: an exception caught inside the outer
        block rolls back only the inner one. ``durable=False`` (outermost
        only): the commit does not wait for the disk (see the module docstring).
        """
        depth = self._depth
        if depth == 0 and self._relaxed == durable:
            try:
                self._synchronous(relaxed=not durable)
            except _MAPPED as exc:
                raise map_sqlite_error(exc) from exc
        savepoint = f"sp_{depth}"
        self.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth = depth
            self._rollback(depth, savepoint)
            raise
        self._depth = depth
        if not self._conn.in_transaction:
            raise StoreError("the transaction was rolled back by an earlier error")
        try:
            self.execute("COMMIT" if depth == 0 else f"RELEASE {savepoint}")
        except BaseException:
            self._rollback(depth, savepoint)
            raise

    def _rollback(self, depth: int, savepoint: str) -> None:
        if not self._conn.in_transaction:
            return  # SQLite already rolled everything back
        with contextlib.suppress(*_MAPPED):
            if depth == 0:
                self._conn.execute("ROLLBACK")
            else:
                self._conn.execute(f"ROLLBACK TO {savepoint}")
                self._conn.execute(f"RELEASE {savepoint}")

    # -- whole-database operations -------------------------------------------

    def export_to(self, path: Path, key: DatabaseKey) -> None:
        """Copy the whole database into a new SQLCipher file at ``path`` keyed with ``key``.

        Uses ``sqlcipher_export``; the schema version (``user_version``),
        which it does not copy, is copied too. The copy is consistent: it is
        made inside one read transaction. A new file at ``path`` is created
        readable by its owner only.
        """
        if self._depth:
            raise StoreError("cannot export inside a transaction")
        create_private_file(path)
        tighten_database_files(path)
        version = int(self.query_value("PRAGMA user_version"))
        self.execute(
            f"ATTACH DATABASE ? AS {_EXPORT_SCHEMA} KEY ?",
            (str(path), f"x'{key.hex()}'"),
        )
        try:
            with self.transaction():
                self.query_one(f"SELECT sqlcipher_export('{_EXPORT_SCHEMA}')")
                self.execute(f"PRAGMA {_EXPORT_SCHEMA}.user_version = {version:d}")
        finally:
            self.execute(f"DETACH DATABASE {_EXPORT_SCHEMA}")

    def check_integrity(self) -> None:
        """StoreCorruptError unless SQLite's integrity check passes."""
        rows = self.query("PRAGMA integrity_check")
        if rows != [("ok",)]:
            raise StoreCorruptError(f"integrity check failed: {rows[:3]!r}")
