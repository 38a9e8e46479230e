"""The public surface of messenger.client, pinned (architecture guide, convention 8)."""

from __future__ import annotations

import messenger.client
import messenger.client.store
from messenger.client import ClientError


def test_client_exports() -> None:
    assert sorted(messenger.client.__all__) == sorted(
        [
            "AccountError",
            "AccountExistsError",
            "AccountInfo",
            "AsyncStore",
            "AuthError",
            "BackupCorruptError",
            "BackupError",
            "BackupInfo",
            "BackupVersionError",
            "ClientClosedError",
            "ClientError",
            "ClientOptions",
            "ConnectionState",
            "ConnectionStateChanged",
            "ConstraintError",
            "Contact",
            "ContactError",
            "ContactNotFoundError",
            "ContactUpdated",
            "ContentDecodeError",
            "ContentError",
            "Conversation",
            "ConversationError",
            "ConversationKind",
            "ConversationLeftError",
            "ConversationNotFoundError",
            "ConversationUpdated",
            "ConversationView",
            "DiskFullError",
            "DuplicateMessageError",
            "Event",
            "ForeignServerError",
            "GroupExistsError",
            "GroupStateRegressionError",
            "HandleTakenError",
            "InvalidAddressError",
            "InvalidProfileNameError",
            "InvalidServerAddressError",
            "KdfLimitError",
            "Keychain",
            "KeyringProblem",
            "KeyringUnavailableError",
            "MemberView",
            "Message",
            "MessageKind",
            "MessageNotFoundError",
            "MessageReceived",
            "MessageStatus",
            "MessageStatusChanged",
            "MessageTooLongError",
            "MessageUpdated",
            "MessageView",
            "MessengerClient",
            "NetworkError",
            "NoAccountError",
            "NoKeyPackageError",
            "NotAMemberError",
            "NotAllowedError",
            "OperationFailed",
            "PassphraseRequiredError",
            "Profile",
            "ProfileError",
            "ProfileExistsError",
            "ProfileNotFoundError",
            "Profiles",
            "ProtocolError",
            "RateLimitedError",
            "ReactionSummary",
            "SafetyNumber",
            "SafetyNumberUnavailableError",
            "SafetyNumberView",
            "ScryptParams",
            "SearchHit",
            "ServerRejectedError",
            "ServerUnavailableError",
            "SignupRefusedError",
            "StaleEpochError",
            "Store",
            "StoreBusyError",
            "StoreCorruptError",
            "StoreError",
            "StoreIOError",
            "StoreLockedError",
            "StoreNotFoundError",
            "StoreVersionError",
            "Subscription",
            "TypingChanged",
            "UnknownAccountError",
            "UnknownGroupError",
            "UnlockMethod",
            "UntrustedKeyError",
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


def test_subpackage_exports() -> None:
    import messenger.client.net
    import messenger.client.sync

    assert messenger.client.net.__all__ == [
        "DEFAULT_TIMEOUT",
        "Backoff",
        "PushSocket",
        "Signer",
        "Transport",
        "connect_push",
        "error_from_api",
        "error_from_response",
        "normalize_server_url",
        "transport_errors",
    ]
    assert messenger.client.sync.__all__ == [
        "CURSOR_KEY",
        "PAUSE_ENV",
        "InboundPipeline",
        "Intent",
        "KeyPackagePool",
        "OutboxSender",
        "PushListener",
        "build_commit",
    ]
    for package in (messenger.client.net, messenger.client.sync):
        for name in package.__all__:
            assert hasattr(package, name), name


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
