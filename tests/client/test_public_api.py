"""The public surface of messenger.client, pinned (architecture guide, convention 8)."""

from __future__ import annotations

import messenger.client
import messenger.client.events
import messenger.client.store
from messenger.client import ClientError


def test_client_exports() -> None:
    assert sorted(messenger.client.__all__) == sorted(
        [
            "AccountError",
            "AccountExistsError",
            "AttachmentCorruptError",
            "AttachmentError",
            "AttachmentNotDownloadedError",
            "AttachmentQuotaError",
            "AttachmentTooLargeError",
            "AttachmentUnavailableError",
            "ImageRejectedError",
            "InvalidTimerError",
            "DISAPPEARING_CHOICES",
            "format_timer",
            "MessagesExpired",
            "TransferProgress",
            "TransferState",
            "AttachmentView",
            "format_size",
            "AccountInfo",
            "AccountUpdated",
            "AuthError",
            "BackupCorruptError",
            "BackupError",
            "BackupInfo",
            "BackupVersionError",
            "CertificateAuthorityFileError",
            "ClientClosedError",
            "ClientError",
            "ClientOptions",
            "ConnectionState",
            "ConnectionStateChanged",
            "ConstraintError",
            "Contact",
            "ContactError",
            "ContactNotFoundError",
            "ContactTokenError",
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
            "DeviceRemovedError",
            "DeviceReplacedError",
            "DeviceView",
            "DevicesChanged",
            "DiskFullError",
            "DuplicateMessageError",
            "Event",
            "EventsDropped",
            "ForeignServerError",
            "GroupExistsError",
            "GroupStateRegressionError",
            "HandleTakenError",
            "InsecureServerAddressError",
            "InvalidAddressError",
            "InvalidProfileNameError",
            "InvalidServerAddressError",
            "KdfLimitError",
            "KeyringProblem",
            "KeyringUnavailableError",
            "DeviceLink",
            "LinkCancelledError",
            "LinkCode",
            "LinkCodeError",
            "LinkExpiredError",
            "LinkFailedError",
            "LinkOffer",
            "LinkProgress",
            "LinkStage",
            "parse_link_code",
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
            "Note",
            "NoteKind",
            "NoteView",
            "OperationFailed",
            "OutdatedClientError",
            "PassphraseRequiredError",
            "Preferences",
            "PreferencesChanged",
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
            "SearchHit",
            "ServerRejectedError",
            "ServerUnavailableError",
            "SignupRefusedError",
            "StaleEpochError",
            "StoreBusyError",
            "StoreCorruptError",
            "StoreError",
            "StoreIOError",
            "StoreLockedError",
            "StoreNotFoundError",
            "StoreVersionError",
            "Subscription",
            "SuiteNotSupportedError",
            "TypingChanged",
            "UnknownAccountError",
            "UnknownGroupError",
            "UntrustedCertificateError",
            "UntrustedKeyError",
            "WeakPassphraseError",
            "WrongBackupPassphraseError",
            "WrongKeyError",
            "WrongPassphraseError",
            "default_data_dir",
            "export_backup",
            "note_text",
            "read_backup_info",
            "restore_backup",
            "start_local_server",
        ]
    )
    for name in messenger.client.__all__:
        assert hasattr(messenger.client, name), name
    for name in messenger.client.store.__all__:
        assert hasattr(messenger.client.store, name), name


def test_machinery_is_not_exported() -> None:
    """The store, its keys and KDF are for the client's own code and tests, not the UI."""
    for name in ("AsyncStore", "Store", "Keychain", "ScryptParams", "UnlockMethod", "EventBus"):
        assert name not in messenger.client.__all__
        assert not hasattr(messenger.client, name), name
        assert hasattr(messenger.client.store, name) or hasattr(messenger.client.events, name)


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
        "InboundPipeline",
        "Intent",
        "KeyPackagePool",
        "OutboxSender",
        "PushListener",
        "SendHook",
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
