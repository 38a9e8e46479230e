"""Contacts: other accounts, their clients' keys, and safety-number verification.

A contact is an account id (from the server) with what the user knows of it:
handle, display name, whether it is blocked. ``contact_clients`` holds the
signature key of each of the account's clients (devices) as seen in MLS
credentials; the safety number is computed over those keys. When the user
compares safety numbers and confirms, the fingerprint they confirmed is
stored with the time (``verified_fingerprint``, ``verified_at``): if the
keys change later, the fingerprint no longer matches and the UI can say so.

``account_key`` is the contact's account key (docs/devices.md §1), pinned
the first time one of its credentials is seen: a credential of that account
with another account key is refused (``account_key_changed_at`` records
when), until the user accepts the new key explicitly
(:meth:`ContactRepository.replace_account_key`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .database import Database, Row

__all__ = ["Contact", "ContactClient", "ContactRepository"]

_COLUMNS = (
    "account_id, handle, display_name, verified_fingerprint, verified_at, blocked, "
    "added_at, updated_at, account_key, account_key_changed_at"
)


@dataclass(frozen=True, slots=True)
class Contact:
    """Another account."""

    account_id: str
    handle: str | None
    display_name: str | None
    verified_fingerprint: bytes | None
    verified_at: int | None
    blocked: bool
    added_at: int
    updated_at: int
    account_key: bytes | None = None
    """The account key pinned the first time it was seen (docs/devices.md §1)."""
    account_key_changed_at: int | None = None
    """When a credential with another account key than the pinned one was
    refused (for the UI: "the safety number changed"); None if never."""

    @property
    def verified(self) -> bool:
        return self.verified_fingerprint is not None


@dataclass(frozen=True, slots=True)
class ContactClient:
    """One client (device) of a contact, by its signature key."""

    account_id: str
    client_id: str
    signature_key: bytes
    first_seen_at: int


def _contact(row: Row) -> Contact:
    return Contact(
        account_id=row[0],
        handle=row[1],
        display_name=row[2],
        verified_fingerprint=row[3],
        verified_at=row[4],
        blocked=bool(row[5]),
        added_at=row[6],
        updated_at=row[7],
        account_key=row[8],
        account_key_changed_at=row[9],
    )


class ContactRepository:
    """Contacts and their clients."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(
        self,
        account_id: str,
        *,
        now: int,
        handle: str | None = None,
        display_name: str | None = None,
    ) -> Contact:
        """Add the contact, or update the handle and display name given (None keeps)."""
        self._db.execute(
            "INSERT INTO contacts (account_id, handle, display_name, added_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET "
            "handle = coalesce(excluded.handle, handle), "
            "display_name = coalesce(excluded.display_name, display_name), "
            "updated_at = excluded.updated_at",
            (account_id, handle, display_name, now, now),
        )
        contact = self.get(account_id)
        assert contact is not None
        return contact

    def get(self, account_id: str) -> Contact | None:
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM contacts WHERE account_id = ?",  # noqa: S608
            (account_id,),
        )
        return None if row is None else _contact(row)

    def by_handle(self, handle: str) -> Contact | None:
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM contacts WHERE handle = ?",  # noqa: S608
            (handle,),
        )
        return None if row is None else _contact(row)

    def all(self, *, include_blocked: bool = True) -> list[Contact]:
        """Contacts sorted by display name, then handle, then account id."""
        where = "" if include_blocked else "WHERE blocked = 0"
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM contacts {where} "  # noqa: S608
            "ORDER BY coalesce(display_name, handle, account_id) COLLATE NOCASE, account_id"
        )
        return [_contact(row) for row in rows]

    def set_verified(self, account_id: str, fingerprint: bytes, *, at: int) -> bool:
        """Record that the user verified the safety number ``fingerprint``."""
        result = self._db.execute(
            "UPDATE contacts SET verified_fingerprint = ?, verified_at = ?, updated_at = ? "
            "WHERE account_id = ?",
            (fingerprint, at, at, account_id),
        )
        return result.rowcount > 0

    def clear_verified(self, account_id: str, *, now: int) -> bool:
        result = self._db.execute(
            "UPDATE contacts SET verified_fingerprint = NULL, verified_at = NULL, updated_at = ? "
            "WHERE account_id = ?",
            (now, account_id),
        )
        return result.rowcount > 0

    def set_display_name(self, account_id: str, name: str | None, *, now: int) -> bool:
        """Set (or with None clear) the name the user knows the contact by."""
        result = self._db.execute(
            "UPDATE contacts SET display_name = ?, updated_at = ? WHERE account_id = ?",
            (name, now, account_id),
        )
        return result.rowcount > 0

    def is_blocked(self, account_id: str) -> bool:
        return bool(
            self._db.query_value("SELECT blocked FROM contacts WHERE account_id = ?", (account_id,))
        )

    def set_blocked(self, account_id: str, blocked: bool, *, now: int) -> bool:
        result = self._db.execute(
            "UPDATE contacts SET blocked = ?, updated_at = ? WHERE account_id = ?",
            (int(blocked), now, account_id),
        )
        return result.rowcount > 0

    def delete(self, account_id: str) -> bool:
        """Remove the contact and its clients."""
        result = self._db.execute("DELETE FROM contacts WHERE account_id = ?", (account_id,))
        return result.rowcount > 0

    # -- the pinned account key (docs/devices.md §1) --------------------------------

    def pin_account_key(self, account_id: str, account_key: bytes, *, now: int) -> bool:
        """Pin ``account_key`` if the contact has none yet (adding the contact);
        whether it is pinned now. A different pinned key is left alone."""
        with self._db.transaction():
            if self.get(account_id) is None:
                self.upsert(account_id, now=now)
            result = self._db.execute(
                "UPDATE contacts SET account_key = ?, updated_at = ? "
                "WHERE account_id = ? AND account_key IS NULL",
                (account_key, now, account_id),
            )
            return result.rowcount > 0

    def pinned_keys(self) -> dict[str, bytes]:
        """Every pinned account key, by account ID."""
        rows = self._db.query(
            "SELECT account_id, account_key FROM contacts WHERE account_key IS NOT NULL"
        )
        return {account_id: bytes(key) for account_id, key in rows}

    def account_key_changed(self, account_id: str, offered: bytes, *, at: int) -> bool:
        """Record that a credential with another account key, ``offered``, was refused."""
        result = self._db.execute(
            "UPDATE contacts SET account_key_changed_at = ?, account_key_offered = ?, "
            "updated_at = ? WHERE account_id = ? AND account_key IS NOT NULL",
            (at, offered, at, account_id),
        )
        return result.rowcount > 0

    def offered_account_key(self, account_id: str) -> bytes | None:
        """The last account key refused for the contact (None if none was)."""
        value = self._db.query_value(
            "SELECT account_key_offered FROM contacts WHERE account_id = ?", (account_id,)
        )
        return None if value is None else bytes(value)

    def replace_account_key(self, account_id: str, account_key: bytes, *, now: int) -> bool:
        """The user's explicit acceptance of a new account key: pin it, clear the
        change mark and "verified" (the safety number is a new one)."""
        result = self._db.execute(
            "UPDATE contacts SET account_key = ?, account_key_changed_at = NULL, "
            "account_key_offered = NULL, verified_fingerprint = NULL, verified_at = NULL, "
            "updated_at = ? "
            "WHERE account_id = ?",
            (account_key, now, account_id),
        )
        return result.rowcount > 0

    # -- clients -----------------------------------------------------------------

    def save_client(
        self, account_id: str, client_id: str, signature_key: bytes, *, now: int
    ) -> bool:
        """Record a client's signature key; whether it is new or its key changed."""
        with self._db.transaction():
            old = self._db.query_value(
                "SELECT signature_key FROM contact_clients WHERE account_id = ? AND client_id = ?",
                (account_id, client_id),
            )
            if old == signature_key:
                return False
            self._db.execute(
                "INSERT INTO contact_clients (account_id, client_id, signature_key, first_seen_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (account_id, client_id) DO UPDATE SET "
                "signature_key = excluded.signature_key, first_seen_at = excluded.first_seen_at",
                (account_id, client_id, signature_key, now),
            )
            return True

    def clients(self, account_id: str) -> list[ContactClient]:
        rows = self._db.query(
            "SELECT account_id, client_id, signature_key, first_seen_at FROM contact_clients "
            "WHERE account_id = ? ORDER BY client_id",
            (account_id,),
        )
        return [ContactClient(*row) for row in rows]

    def remove_client(self, account_id: str, client_id: str) -> bool:
        result = self._db.execute(
            "DELETE FROM contact_clients WHERE account_id = ? AND client_id = ?",
            (account_id, client_id),
        )
        return result.rowcount > 0
