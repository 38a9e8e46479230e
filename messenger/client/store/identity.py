"""This client's identity: its account on the server and its signature key.

One row: the server's ids for this account, client and delivery queue
(``messenger.api.models.RegisterResponse``), the Ed25519 signature key pair
whose public half the Authentication Service certified, the credential it
issued (encoded), the server's credential-signing key, and the MLS cipher
suite in use; and the account key pair with this device's certificate
(docs/devices.md §1). The private keys live only here, inside the encrypted
store.
The device token of a copy that took its device over (a restored backup)
is kept in the settings table and read into :attr:`Identity.device_token`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .database import Database
from .settings import SettingsRepository

__all__ = ["Identity", "IdentityRepository"]

_COLUMNS = (
    "server_url, account_id, client_id, queue_id, cipher_suite, signature_private_key, "
    "signature_public_key, credential, created_at, handle, display_name, server_key, "
    "account_private_key, account_public_key, certified_at, device_certificate"
)


@dataclass(frozen=True, slots=True)
class Identity:
    """The account and keys of this client."""

    server_url: str
    account_id: str
    client_id: str
    queue_id: str
    cipher_suite: int
    signature_private_key: bytes = field(repr=False)
    signature_public_key: bytes
    credential: bytes
    """The Authentication Service's credential, in its encoded form."""
    created_at: int
    handle: str | None = None
    display_name: str | None = None
    server_key: bytes | None = None
    """The Ed25519 key with which the server signs credentials."""
    account_private_key: bytes | None = field(default=None, repr=False)
    """The account key (Ed25519, docs/devices.md §1): every device of the
    account holds it, the server never; it certifies the account's devices."""
    account_public_key: bytes | None = None
    certified_at: int | None = None
    """When the account key certified this device (Unix ms)."""
    device_certificate: bytes | None = None
    """The account key's signature over ``signing.device_certificate_tbs``."""
    device_token: bytes | None = field(default=None, repr=False)
    """This copy's device token, once it took its device over (not in the identity
    row: the settings table, :data:`~.settings.DEVICE_TOKEN`); sign with it."""
    queue_key: bytes | None = field(default=None, repr=False)
    """This client's queue key, once it made one (the settings table,
    :data:`~.settings.QUEUE_KEY`); prove the queue with it."""
    queue_key_given: bool = False
    """Whether the server has :attr:`queue_key` (then the queue is read with
    queue requests signed by it alone)."""


class IdentityRepository:
    """The one identity row."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self) -> Identity | None:
        row = self._db.query_one(f"SELECT {_COLUMNS} FROM identity WHERE singleton = 1")  # noqa: S608
        if row is None:
            return None
        settings = SettingsRepository(self._db)
        queue_key, given = settings.queue_key()
        return replace(
            Identity(*row),
            device_token=settings.device_token(),
            queue_key=queue_key,
            queue_key_given=given,
        )

    def save(self, identity: Identity) -> None:
        """Store the identity, replacing any previous one."""
        self._db.execute(
            f"INSERT OR REPLACE INTO identity (singleton, {_COLUMNS}) "  # noqa: S608
            "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                identity.server_url,
                identity.account_id,
                identity.client_id,
                identity.queue_id,
                identity.cipher_suite,
                identity.signature_private_key,
                identity.signature_public_key,
                identity.credential,
                identity.created_at,
                identity.handle,
                identity.display_name,
                identity.server_key,
                identity.account_private_key,
                identity.account_public_key,
                identity.certified_at,
                identity.device_certificate,
            ),
        )

    def set_handle(self, handle: str | None) -> bool:
        """Change the handle; whether there is an identity to change."""
        result = self._db.execute("UPDATE identity SET handle = ? WHERE singleton = 1", (handle,))
        return result.rowcount > 0

    def set_display_name(self, display_name: str | None) -> bool:
        """Change the display name; whether there is an identity to change."""
        result = self._db.execute(
            "UPDATE identity SET display_name = ? WHERE singleton = 1", (display_name,)
        )
        return result.rowcount > 0
