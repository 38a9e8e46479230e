"""Storage: one interface (:class:`Database`, :class:`Tx`), two backends.

SQLite (embedded, the default) and PostgreSQL (for several processes), chosen
by the database URL; versioned migrations in :mod:`.migrations`.
"""

from __future__ import annotations

from .base import Database, NotificationHandler, Operation, Row, StorageError, Tx, UniqueViolation
from .migrations import LATEST_VERSION, migrate
from .postgres import RESYNC, PostgresDatabase
from .sqlite import SqliteDatabase

__all__ = [
    "LATEST_VERSION",
    "RESYNC",
    "Database",
    "NotificationHandler",
    "Operation",
    "PostgresDatabase",
    "Row",
    "SqliteDatabase",
    "StorageError",
    "Tx",
    "UniqueViolation",
    "migrate",
    "open_database",
]


def open_database(url: str, pool_size: int = 10) -> Database:
    """The backend for ``url`` (``sqlite://…`` or ``postgresql://…``), not yet connected."""
    if url.startswith("sqlite://"):
        return SqliteDatabase.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url, pool_size)
    raise StorageError("the database URL must start with sqlite:// or postgresql://")
