"""The encrypted store of one profile: unlocking it, and its repositories.

:meth:`Store.create` makes the store of a new profile: a fresh random
database key, wrapped by the recovery passphrase into the recovery file,
then the SQLCipher database at the newest schema, then (if the OS keyring
works) a copy of the key in the keyring.

:meth:`Store.open` unlocks it:

1. Without a passphrase, the key comes from the OS keyring. If the keyring
   is unavailable (no desktop session: ``NoKeyringError``), has no entry
   for the profile, or holds a key that does not open the database (it was
   replaced, or the profile was copied from another machine), it raises
   :class:`PassphraseRequiredError` with the reason, and the UI asks for
   the recovery passphrase.
2. With a passphrase, the key is unwrapped from the recovery file
   (:class:`WrongPassphraseError` if it does not open it), the database is
   opened, and the key is put back into the keyring if one is available
   and did not hold it: the next start needs no passphrase.

Nothing is written while unlocking until the database has opened with the
key, so a wrong passphrase or key leaves every file as it was. Then
pending migrations run (:mod:`.migrations`).

A :class:`Store` belongs to the thread that opened it (SQLite's rule); the
async client uses :class:`~.async_store.AsyncStore`, which runs it on one
worker thread.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator

from ..errors import (
    KeyringProblem,
    KeyringUnavailableError,
    PassphraseRequiredError,
    ProfileError,
    StoreCorruptError,
    StoreNotFoundError,
    WrongKeyError,
)
from ..profiles import Profile
from .attachments import AttachmentRepository
from .contact_tokens import ContactTokenRepository
from .contacts import ContactRepository
from .conversations import ConversationRepository
from .database import Database
from .database_key import DatabaseKey
from .devices import DeviceRepository
from .groups import GroupStateRepository
from .identity import IdentityRepository
from .kdf import DEFAULT_SCRYPT, ScryptParams, check_new_passphrase
from .key_packages import KeyPackageRepository
from .key_wrap import read_key_wrap, unwrap_key, wrap_key, write_key_wrap
from .keychain import Keychain
from .messages import MessageRepository
from .migrations import migrate, schema_version
from .outbox import OutboxRepository
from .pending_inbound import PendingInboundRepository
from .pending_links import PendingLinkRepository
from .reactions import ReactionRepository
from .read_markers import ReadMarkerRepository
from .sent_messages import SentMessageRepository
from .settings import SettingsRepository
from .sync_clock import SyncClockRepository

__all__ = ["Store", "UnlockMethod"]


class UnlockMethod(enum.StrEnum):
    """Where the database key came from."""

    CREATED = "created"
    KEYRING = "keyring"
    PASSPHRASE = "passphrase"  # noqa: S105 (a method's name, not a secret)


class Store:
    """An unlocked store: the database and a repository per concept.

    Group several writes into one atomic unit with :meth:`transaction`.
    """

    def __init__(
        self,
        db: Database,
        profile: Profile,
        key: DatabaseKey,
        *,
        keychain: Keychain,
        unlocked_with: UnlockMethod,
        key_in_keyring: bool,
    ) -> None:
        self.db = db
        self.profile = profile
        self._key = key
        self._keychain = keychain
        self.unlocked_with = unlocked_with
        self.key_in_keyring = key_in_keyring
        """Whether the OS keyring holds the key (False: the passphrase is needed next time)."""
        self.settings = SettingsRepository(db)
        self.identity = IdentityRepository(db)
        self.contacts = ContactRepository(db)
        self.contact_tokens = ContactTokenRepository(db)
        self.conversations = ConversationRepository(db)
        self.messages = MessageRepository(db)
        self.reactions = ReactionRepository(db)
        self.read_markers = ReadMarkerRepository(db)
        self.groups = GroupStateRepository(db)
        self.key_packages = KeyPackageRepository(db)
        self.outbox = OutboxRepository(db)
        self.sent_messages = SentMessageRepository(db)
        self.pending_inbound = PendingInboundRepository(db)
        self.pending_links = PendingLinkRepository(db)
        self.devices = DeviceRepository(db)
        self.sync_clock = SyncClockRepository(db)
        self.attachments = AttachmentRepository(db)

    # -- creating and unlocking ----------------------------------------------

    @classmethod
    def create(
        cls,
        profile: Profile,
        passphrase: str,
        *,
        keychain: Keychain | None = None,
        kdf: ScryptParams = DEFAULT_SCRYPT,
    ) -> Store:
        """Create the store of a new profile, protected by ``passphrase``."""
        check_new_passphrase(passphrase)
        keychain = keychain if keychain is not None else Keychain()
        if profile.db_path.exists() or profile.key_wrap_path.exists():
            raise ProfileError(f"profile {profile.name!r} already has a store")
        key = DatabaseKey.generate()
        write_key_wrap(profile.key_wrap_path, wrap_key(key, passphrase, kdf))
        try:
            db = Database.open(profile.db_path, key, create=True)
            try:
                migrate(db)
            except BaseException:
                db.close()
                raise
        except BaseException:
            for path in (profile.key_wrap_path, *profile.db_files):
                path.unlink(missing_ok=True)
            raise
        in_keyring = keychain.try_save(profile.id, key)
        return cls(
            db,
            profile,
            key,
            keychain=keychain,
            unlocked_with=UnlockMethod.CREATED,
            key_in_keyring=in_keyring,
        )

    @classmethod
    def open(
        cls,
        profile: Profile,
        *,
        passphrase: str | None = None,
        keychain: Keychain | None = None,
    ) -> Store:
        """Unlock the profile's store: from the keyring, or with ``passphrase``.

        Without ``passphrase``: PassphraseRequiredError if the keyring cannot
        give a key that opens the database. With it: WrongPassphraseError if
        it is wrong.
        """
        keychain = keychain if keychain is not None else Keychain()
        if not profile.db_path.is_file():
            raise StoreNotFoundError(f"profile {profile.name!r} has no database")
        if passphrase is None:
            return cls._open_from_keyring(profile, keychain)
        return cls._open_with_passphrase(profile, passphrase, keychain)

    @classmethod
    def _open_from_keyring(cls, profile: Profile, keychain: Keychain) -> Store:
        try:
            key = keychain.load(profile.id)
        except KeyringUnavailableError:
            raise PassphraseRequiredError(KeyringProblem.UNAVAILABLE) from None
        if key is None:
            raise PassphraseRequiredError(KeyringProblem.MISSING)
        try:
            db = Database.open(profile.db_path, key)
        except WrongKeyError:
            raise PassphraseRequiredError(KeyringProblem.STALE) from None
        return cls._ready(
            db, profile, key, keychain, unlocked_with=UnlockMethod.KEYRING, key_in_keyring=True
        )

    @classmethod
    def _open_with_passphrase(cls, profile: Profile, passphrase: str, keychain: Keychain) -> Store:
        key = unwrap_key(read_key_wrap(profile.key_wrap_path), passphrase)
        try:
            db = Database.open(profile.db_path, key)
        except WrongKeyError as exc:
            raise StoreCorruptError(
                "the recovery file's key does not open the database",
                user_message="The recovery file does not match the message store of this "
                "profile. Restore the profile from a backup.",
            ) from exc
        try:
            in_keyring = keychain.load(profile.id) == key or keychain.try_save(profile.id, key)
        except KeyringUnavailableError:
            in_keyring = False
        return cls._ready(
            db,
            profile,
            key,
            keychain,
            unlocked_with=UnlockMethod.PASSPHRASE,
            key_in_keyring=in_keyring,
        )

    @classmethod
    def _ready(
        cls,
        db: Database,
        profile: Profile,
        key: DatabaseKey,
        keychain: Keychain,
        *,
        unlocked_with: UnlockMethod,
        key_in_keyring: bool,
    ) -> Store:
        try:
            migrate(db)
        except BaseException:
            db.close()
            raise
        return cls(
            db,
            profile,
            key,
            keychain=keychain,
            unlocked_with=unlocked_with,
            key_in_keyring=key_in_keyring,
        )

    # -- the key ---------------------------------------------------------------

    def change_passphrase(self, old: str, new: str, *, kdf: ScryptParams = DEFAULT_SCRYPT) -> None:
        """Re-wrap the database key under ``new``; WrongPassphraseError if ``old`` is wrong.

        The recovery file is replaced atomically, and only once ``old`` has
        been checked.
        """
        check_new_passphrase(new)
        unwrap_key(read_key_wrap(self.profile.key_wrap_path), old)
        write_key_wrap(self.profile.key_wrap_path, wrap_key(self._key, new, kdf))

    def remember_key(self) -> bool:
        """Put the key into the OS keyring (again); whether the keyring took it."""
        self.key_in_keyring = self._keychain.try_save(self.profile.id, self._key)
        return self.key_in_keyring

    # -- using it ----------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Store]:
        """Everything inside commits together, or not at all (``durable``: see
        :meth:`Database.transaction`)."""
        with self.db.transaction(durable=durable):
            yield self

    @property
    def schema_version(self) -> int:
        return schema_version(self.db)

    def close(self) -> None:
        self.db.close()

    @property
    def closed(self) -> bool:
        return self.db.closed

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
