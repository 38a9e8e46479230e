"""The public surface of messenger.client, pinned (architecture guide, convention 8)."""

from __future__ import annotations

import messenger.client
import messenger.client.store
from messenger.client import ClientError


def test_client_exports() -> None:
    assert sorted(messenger.client.__all__) == sorted(
        [
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
    )
    for name in messenger.client.__all__:
        assert hasattr(messenger.client, name), name
    for name in messenger.client.store.__all__:
        assert hasattr(messenger.client.store, name), name


def test_every_error_has_a_user_message() -> None:
    errors = [
        getattr(messenger.client, name)
        for name in messenger.client.__all__
        if isinstance(getattr(messenger.client, name), type)
        and issubclass(getattr(messenger.client, name), ClientError)
    ]
    assert len(errors) > 20
    for error in errors:
        assert error.default_user_message.endswith("."), error
    assert len({e.default_user_message for e in errors}) > 15
