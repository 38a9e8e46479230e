"""The contact tokens of other accounts (docs/metadata.md §1).

An account's KeyPackages are handed out only to a claim that presents its
contact token (:mod:`messenger.api.contact_token`). This client learns the
tokens of others from an invite link, a handle's lookup or the leaves of a
group it shares with them (:mod:`messenger.client.contact_tokens`), and
keeps the last one known per account here, in the encrypted store. This
account's own token is never stored: its devices derive it from the
account key.
"""

from __future__ import annotations

from .database import Database

__all__ = ["ContactTokenRepository"]


class ContactTokenRepository:
    """One contact token per other account."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, account_id: str) -> bytes | None:
        """The token known for ``account_id`` (None: none)."""
        value = self._db.query_value(
            "SELECT token FROM contact_tokens WHERE account_id = ?", (account_id,)
        )
        return None if value is None else bytes(value)

    def set(self, account_id: str, token: bytes, *, now: int) -> bool:
        """Keep ``token`` for ``account_id``; whether it changed what was kept."""
        if self.get(account_id) == token:
            return False
        self._db.execute(
            "INSERT INTO contact_tokens (account_id, token, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (account_id) DO UPDATE SET token = excluded.token, "
            "updated_at = excluded.updated_at",
            (account_id, token, now),
        )
        return True

    def delete(self, account_id: str) -> bool:
        """Forget the token of ``account_id``; whether there was one."""
        return (
            self._db.execute(
                "DELETE FROM contact_tokens WHERE account_id = ?", (account_id,)
            ).rowcount
            > 0
        )
