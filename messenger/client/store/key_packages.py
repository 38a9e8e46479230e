"""KeyPackage private keys, by KeyPackageRef (RFC 9420 §5.2, §10, §16.8).

Each row is a :class:`messenger.mls.key_package_bundle.KeyPackageBundle` in
its private encoding (the KeyPackage with its init, leaf encryption and
signature private keys), keyed by its KeyPackageRef so that an incoming
Welcome finds it (RFC 9420 §12.4.3.1). A one-time KeyPackage is deleted in
the same transaction that stores the group state it was used for; a
last-resort one stays until it is replaced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .database import Database, Row

__all__ = ["KeyPackageRepository", "KeyPackageSecret"]

_COLUMNS = "ref, bundle, last_resort, created_at, expires_at, uploaded_at"


@dataclass(frozen=True, slots=True)
class KeyPackageSecret:
    """A KeyPackage this client published (or will), with its private keys."""

    ref: bytes
    bundle: bytes = field(repr=False)
    last_resort: bool
    created_at: int
    expires_at: int
    uploaded_at: int | None


def _secret(row: Row) -> KeyPackageSecret:
    return KeyPackageSecret(
        ref=row[0],
        bundle=row[1],
        last_resort=bool(row[2]),
        created_at=row[3],
        expires_at=row[4],
        uploaded_at=row[5],
    )


class KeyPackageRepository:
    """KeyPackage bundles by ref."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        ref: bytes,
        bundle: bytes,
        *,
        created_at: int,
        expires_at: int,
        last_resort: bool = False,
    ) -> None:
        """Store a new bundle (ConstraintError if the ref is taken)."""
        self._db.execute(
            "INSERT INTO key_packages (ref, bundle, last_resort, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (ref, bundle, int(last_resort), created_at, expires_at),
        )

    def get(self, ref: bytes) -> KeyPackageSecret | None:
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM key_packages WHERE ref = ?",  # noqa: S608
            (ref,),
        )
        return None if row is None else _secret(row)

    def delete(self, ref: bytes) -> bool:
        return self._db.execute("DELETE FROM key_packages WHERE ref = ?", (ref,)).rowcount > 0

    def not_uploaded(self) -> list[KeyPackageSecret]:
        """Bundles whose KeyPackage the server does not have yet, oldest first."""
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM key_packages WHERE uploaded_at IS NULL ORDER BY id"  # noqa: S608
        )
        return [_secret(row) for row in rows]

    def mark_uploaded(self, refs: Iterable[bytes], *, at: int) -> None:
        self._db.executemany(
            "UPDATE key_packages SET uploaded_at = ? WHERE ref = ?", [(at, ref) for ref in refs]
        )

    def count(self, *, now: int, last_resort: bool = False) -> int:
        """Unexpired one-time (or last-resort) bundles."""
        return int(
            self._db.query_value(
                "SELECT count(*) FROM key_packages WHERE last_resort = ? AND expires_at > ?",
                (int(last_resort), now),
            )
        )

    def delete_expired(self, *, now: int) -> int:
        """Delete bundles whose KeyPackage has expired; how many."""
        return self._db.execute("DELETE FROM key_packages WHERE expires_at <= ?", (now,)).rowcount
