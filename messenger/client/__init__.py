"""The messenger client: profiles, the encrypted store, backups.

Everything the UI may use is exported here (architecture guide, "The
layers": ``ui`` imports only the public names of ``messenger.client``).

* :mod:`.profiles` -- per-OS data directory, several profiles;
* :mod:`.store` -- the SQLCipher store: unlock via the OS keyring or the
  recovery passphrase, migrations, repositories, an async wrapper;
* :mod:`.backup` -- export a profile to one encrypted file and restore it;
* :mod:`.errors` -- :class:`ClientError` and its kinds, each with a
  ``user_message``.
"""

from __future__ import annotations

from .backup import BackupInfo, export_backup, read_backup_info, restore_backup
from .errors import (
    BackupCorruptError,
    BackupError,
    BackupVersionError,
    ClientError,
    ConstraintError,
    DiskFullError,
    DuplicateMessageError,
    GroupStateRegressionError,
    InvalidProfileNameError,
    KeyringProblem,
    KeyringUnavailableError,
    PassphraseRequiredError,
    ProfileError,
    ProfileExistsError,
    ProfileNotFoundError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreIOError,
    StoreLockedError,
    StoreNotFoundError,
    StoreVersionError,
    WeakPassphraseError,
    WrongBackupPassphraseError,
    WrongKeyError,
    WrongPassphraseError,
)
from .profiles import Profile, Profiles, default_data_dir
from .store import (
    AsyncStore,
    Contact,
    Conversation,
    ConversationKind,
    Keychain,
    Message,
    MessageKind,
    MessageStatus,
    ScryptParams,
    SearchHit,
    Store,
    UnlockMethod,
)

__all__ = [
    "AsyncStore",
    "BackupCorruptError",
    "BackupError",
    "BackupInfo",
    "BackupVersionError",
    "ClientError",
    "ConstraintError",
    "Contact",
    "Conversation",
    "ConversationKind",
    "DiskFullError",
    "DuplicateMessageError",
    "GroupStateRegressionError",
    "InvalidProfileNameError",
    "Keychain",
    "KeyringProblem",
    "KeyringUnavailableError",
    "Message",
    "MessageKind",
    "MessageStatus",
    "PassphraseRequiredError",
    "Profile",
    "ProfileError",
    "ProfileExistsError",
    "ProfileNotFoundError",
    "Profiles",
    "ScryptParams",
    "SearchHit",
    "Store",
    "StoreBusyError",
    "StoreCorruptError",
    "StoreError",
    "StoreIOError",
    "StoreLockedError",
    "StoreNotFoundError",
    "StoreVersionError",
    "UnlockMethod",
    "WeakPassphraseError",
    "WrongBackupPassphraseError",
    "WrongKeyError",
    "WrongPassphraseError",
    "default_data_dir",
    "export_backup",
    "read_backup_info",
    "restore_backup",
]
