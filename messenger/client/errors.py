"""The error hierarchy of the client.

One base, :class:`ClientError` (architecture guide, convention 5). Every
error carries a ``user_message``: one plain sentence that the UI may show as
it is. The exception's own message (``str(exc)``) is for logs and
developers; it never holds a key, a passphrase or message content.

* :class:`ProfileError` -- profiles on disk: missing, taken, badly named.
* :class:`StoreError` -- the encrypted local store (SQLCipher):

  * :class:`StoreLockedError` -- the store could not be unlocked:
    :class:`PassphraseRequiredError` (the OS keyring could not give the
    key; ask for the recovery passphrase), :class:`WrongPassphraseError`,
    :class:`WrongKeyError` (a key does not open the database);
  * :class:`StoreCorruptError`, :class:`StoreVersionError`,
    :class:`StoreBusyError`, :class:`StoreIOError`, :class:`ConstraintError`
    and its kind :class:`DuplicateMessageError`,
    :class:`GroupStateRegressionError`.

* :class:`KeyringUnavailableError` -- the OS keyring cannot be used.
* :class:`DiskFullError` -- the disk is full (SQLite's "database or disk is
  full", or ``ENOSPC`` while writing a file).
* :class:`WeakPassphraseError` -- a new passphrase is too short.
* :class:`BackupError` -- export and restore: :class:`WrongBackupPassphraseError`,
  :class:`BackupCorruptError`, :class:`BackupVersionError`.
* :class:`NetworkError` -- talking to the server (mapped from transport
  exceptions and API error bodies at one seam, ``messenger.client.net``):

  * :class:`ServerUnavailableError` -- unreachable, timed out, 5xx;
  * :class:`InvalidServerAddressError` -- the server URL cannot be used
    (:class:`InsecureServerAddressError`: plain ``http://`` to another
    computer, refused unless allowed explicitly);
  * :class:`UntrustedCertificateError` -- the server's TLS certificate did
    not verify; :class:`CertificateAuthorityFileError` -- ``MESSENGER_CA_FILE``
    cannot be read;
  * :class:`ProtocolError` -- the server answered something unexpected;
  * :class:`AuthError` -- the server refused the request signature;
  * :class:`RateLimitedError` (``retry_after``);
  * :class:`StaleEpochError` (``current_epoch``) -- a commit or message for
    an old epoch: fetch, apply, retry;
  * :class:`ServerRejectedError` (``code``) -- any other refusal, with the
    kinds :class:`HandleTakenError`, :class:`SignupRefusedError`,
    :class:`UnknownAccountError`, :class:`NoKeyPackageError`,
    :class:`ContactTokenError`,
    :class:`NotAMemberError`, :class:`UnknownGroupError`,
    :class:`GroupExistsError`.

* :class:`AccountError` -- :class:`NoAccountError`, :class:`AccountExistsError`.
* :class:`ContactError` -- :class:`InvalidAddressError`,
  :class:`ForeignServerError`, :class:`ContactNotFoundError`,
  :class:`SafetyNumberUnavailableError`, :class:`UntrustedKeyError`.
* :class:`ConversationError` -- :class:`ConversationNotFoundError`,
  :class:`MessageNotFoundError`, :class:`NotAllowedError`,
  :class:`ConversationLeftError`.
* :class:`ContentError` -- :class:`ContentDecodeError` (a peer sent bytes that
  are not message content), :class:`MessageTooLongError`.
* :class:`ClientClosedError` -- the client was closed.
* :class:`DeviceReplacedError` -- a copy of this profile restored from a
  backup took the account over on the server; this copy may no longer sync
  (not a :class:`NetworkError`: retrying cannot help).

Any other exception escaping ``messenger.client`` is a bug.
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = [
    "AccountError",
    "AccountExistsError",
    "AttachmentCorruptError",
    "AttachmentError",
    "AttachmentNotDownloadedError",
    "AttachmentQuotaError",
    "AttachmentTooLargeError",
    "AttachmentUnavailableError",
    "AuthError",
    "BackupCorruptError",
    "BackupError",
    "BackupVersionError",
    "CertificateAuthorityFileError",
    "ClientClosedError",
    "ClientError",
    "ConstraintError",
    "ContactError",
    "ContactNotFoundError",
    "ContactTokenError",
    "ContentDecodeError",
    "ContentError",
    "ConversationError",
    "ConversationLeftError",
    "ConversationNotFoundError",
    "DeviceRemovedError",
    "DeviceReplacedError",
    "DiskFullError",
    "DuplicateMessageError",
    "ForeignServerError",
    "GroupExistsError",
    "GroupStateRegressionError",
    "HandleTakenError",
    "ImageRejectedError",
    "InsecureServerAddressError",
    "InvalidAddressError",
    "InvalidProfileNameError",
    "InvalidServerAddressError",
    "InvalidTimerError",
    "KdfLimitError",
    "KeyringProblem",
    "KeyringUnavailableError",
    "LinkCancelledError",
    "LinkCodeError",
    "LinkError",
    "LinkExpiredError",
    "LinkFailedError",
    "MessageNotFoundError",
    "MessageTooLongError",
    "NetworkError",
    "NoAccountError",
    "NoKeyPackageError",
    "NotAMemberError",
    "NotAllowedError",
    "OutdatedClientError",
    "PassphraseRequiredError",
    "ProfileError",
    "ProfileExistsError",
    "ProfileNotFoundError",
    "ProtocolError",
    "RateLimitedError",
    "SafetyNumberUnavailableError",
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
    "UnknownAccountError",
    "UnknownGroupError",
    "UntrustedCertificateError",
    "UntrustedKeyError",
    "WeakPassphraseError",
    "WrongBackupPassphraseError",
    "WrongKeyError",
    "WrongPassphraseError",
]


class ClientError(Exception):
    """Base of every error raised on purpose by ``messenger.client``.

    ``user_message`` is a sentence for the user; subclasses set a default
    and a raiser may give a more precise one.
    """

    default_user_message: ClassVar[str] = "Something went wrong."

    def __init__(self, message: str = "", *, user_message: str | None = None) -> None:
        self.user_message = user_message or self.default_user_message
        super().__init__(message or self.user_message)


# -- profiles -----------------------------------------------------------------


class ProfileError(ClientError):
    """A profile directory is missing, taken or badly named."""

    default_user_message = "The profile could not be used."


class ProfileNotFoundError(ProfileError):
    """No profile has this name."""

    default_user_message = "There is no profile with this name."


class ProfileExistsError(ProfileError):
    """A profile with this name already exists."""

    default_user_message = "A profile with this name already exists."


class InvalidProfileNameError(ProfileError):
    """The name cannot be a profile name (characters, length, reserved)."""

    default_user_message = (
        "A profile name may use letters, digits, spaces, dots, dashes and underscores "
        "(at most 64), and must start with a letter or a digit."
    )


# -- the store ------------------------------------------------------------------


class StoreError(ClientError):
    """The encrypted local store failed."""

    default_user_message = "The message store could not be used."


class StoreLockedError(StoreError):
    """The store could not be unlocked."""

    default_user_message = "The message store could not be unlocked."


class KeyringProblem(enum.StrEnum):
    """Why the OS keyring did not give the database key."""

    UNAVAILABLE = "unavailable"
    """There is no usable keyring (no desktop session, locked, refused)."""
    MISSING = "missing"
    """The keyring works but holds no key for this profile."""
    STALE = "stale"
    """The keyring holds a key that does not open the database."""


class PassphraseRequiredError(StoreLockedError):
    """The key is not in the keyring: unlock with the recovery passphrase."""

    default_user_message = "Enter your recovery passphrase to unlock the message store."

    def __init__(self, reason: KeyringProblem) -> None:
        self.reason = reason
        super().__init__(f"the OS keyring did not give the database key ({reason})")


class WrongPassphraseError(StoreLockedError):
    """The recovery passphrase does not unwrap the database key."""

    default_user_message = "The recovery passphrase is wrong."


class WrongKeyError(StoreLockedError):
    """A database key does not open the database ("file is not a database")."""

    default_user_message = (
        "The message store could not be opened with its key: it may be damaged or "
        "belong to another profile."
    )


class StoreNotFoundError(StoreError):
    """The database (or its recovery file) does not exist."""

    default_user_message = "The message store of this profile is missing."


class StoreCorruptError(StoreError):
    """The database or the recovery file is damaged."""

    default_user_message = "The message store is damaged. Restore it from a backup."


class KdfLimitError(ClientError):
    """Key-derivation parameters above the ceiling (a crafted or damaged file)."""

    default_user_message = (
        "The file asks for a passphrase check far more costly than Messenger allows, "
        "so it was not opened. It was not made by Messenger, or it was altered."
    )


class StoreVersionError(StoreError):
    """The database was written by a newer version of the app."""

    default_user_message = (
        "The message store was written by a newer version of Messenger. Update the app."
    )


class StoreBusyError(StoreError):
    """Another process holds the database lock."""

    default_user_message = (
        "The message store is in use by another Messenger window. Close it and try again."
    )


class StoreIOError(StoreError):
    """The database file could not be read or written (permissions, I/O)."""

    default_user_message = "The message store could not be read or written."


class ConstraintError(StoreError):
    """A write broke a constraint of the schema (a bug or a duplicate)."""

    default_user_message = "The message store refused an inconsistent change."


class DuplicateMessageError(ConstraintError):
    """A message with this id is already in the conversation."""

    default_user_message = "This message is already stored."


class GroupStateRegressionError(StoreError):
    """Saving this group state would move the group back to an older epoch."""

    default_user_message = "A conversation's encryption state could not be saved."


class KeyringUnavailableError(ClientError):
    """The OS keyring cannot be used (absent, locked or failing)."""

    default_user_message = "The system keyring is not available."


class DiskFullError(ClientError):
    """The disk is full."""

    default_user_message = "The disk is full. Free some space and try again."


class WeakPassphraseError(ClientError):
    """A new passphrase is too short."""

    default_user_message = "Choose a recovery passphrase of at least 8 characters."


# -- backups --------------------------------------------------------------------


class BackupError(ClientError):
    """A backup could not be written or restored."""

    default_user_message = "The backup failed."


class WrongBackupPassphraseError(BackupError):
    """The passphrase does not open the backup."""

    default_user_message = "The backup passphrase is wrong."


class BackupCorruptError(BackupError):
    """The backup file is truncated, altered or not a backup at all."""

    default_user_message = "The backup file is damaged or is not a Messenger backup."


class BackupVersionError(BackupError):
    """The backup was written by a newer version of the app."""

    default_user_message = "The backup was made by a newer version of Messenger. Update the app."


# -- the server -------------------------------------------------------------------


class NetworkError(ClientError):
    """Talking to the server failed."""

    default_user_message = "The server could not be reached."


class ServerUnavailableError(NetworkError):
    """The server cannot be reached, timed out, or failed (5xx): retry later."""

    default_user_message = "The server is not reachable right now. Messages will be sent later."


class InvalidServerAddressError(NetworkError):
    """The server URL is malformed or uses a scheme other than http(s)."""

    default_user_message = (
        "The server address is not valid. Use a URL like https://chat.example.org."
    )


class ProtocolError(NetworkError):
    """The server answered with something that does not follow the API."""

    default_user_message = "The server answered in a way this app does not understand."


class AuthError(NetworkError):
    """The server refused the request's signature (unknown client, clock, replay).

    ``code`` is the API's error code (``auth_missing``, ``auth_invalid``, …)
    when the server gave one.
    """

    default_user_message = (
        "The server did not accept this device's credentials. Check the computer's clock."
    )

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


class RateLimitedError(NetworkError):
    """Too many requests: wait ``retry_after`` seconds."""

    default_user_message = "The server is busy. Try again in a moment."

    def __init__(self, retry_after: float, message: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(message or f"rate limited; retry after {retry_after} s")


class StaleEpochError(NetworkError):
    """A commit or message was for an old epoch; the group is at ``current_epoch``."""

    default_user_message = "The conversation changed meanwhile; retrying."

    def __init__(self, current_epoch: int, message: str = "") -> None:
        self.current_epoch = current_epoch
        super().__init__(message or f"stale epoch; the group is at epoch {current_epoch}")


class ServerRejectedError(NetworkError):
    """The server refused the request; ``code`` is the API error code."""

    default_user_message = "The server refused the request."

    def __init__(self, code: str, message: str = "", *, user_message: str | None = None) -> None:
        self.code = code
        super().__init__(message or f"refused: {code}", user_message=user_message)


class HandleTakenError(ServerRejectedError):
    default_user_message = "This handle is taken. Choose another one."


class SignupRefusedError(ServerRejectedError):
    """The server does not take new accounts (closed, or an invite is needed)."""

    default_user_message = "This server does not accept new accounts without a valid invite."


class UnknownAccountError(ServerRejectedError):
    default_user_message = "No account has this handle on the server."


class NoKeyPackageError(ServerRejectedError):
    """The contact has no KeyPackage left on the server."""

    default_user_message = (
        "This contact cannot be added right now: their app has to be online once first."
    )


class ContactTokenError(ServerRejectedError):
    """The account's KeyPackages are claimed with its contact token, and this app
    has none that the server takes (docs/metadata.md §1): an invite link, the
    account's handle or a shared group gives it."""

    default_user_message = (
        "You can't add this person yet: ask them for a new invite link, or for their handle."
    )


class NotAMemberError(ServerRejectedError):
    default_user_message = "You are no longer a member of this conversation."


class UnknownGroupError(ServerRejectedError):
    default_user_message = "The server does not know this conversation."


class OutdatedClientError(ServerRejectedError):
    """The server follows a newer version of the protocol (for example padded messages)."""

    default_user_message = "This app is too old for the server. Update the app to keep chatting."


class GroupExistsError(ServerRejectedError):
    default_user_message = "This conversation already exists on the server."


# -- the account, contacts, conversations, content ------------------------------------


class AccountError(ClientError):
    default_user_message = "The account could not be used."


class NoAccountError(AccountError):
    default_user_message = "This profile has no account yet. Create one first."


class AccountExistsError(AccountError):
    default_user_message = "This profile already has an account."


class ContactError(ClientError):
    default_user_message = "The contact could not be used."


class InvalidAddressError(ContactError):
    default_user_message = (
        "This is not a contact address. Use handle@server or an invite link (messenger://...)."
    )


class ForeignServerError(ContactError):
    default_user_message = "This contact is on another server; only contacts on yours can be added."


class ContactNotFoundError(ContactError):
    default_user_message = "There is no such contact."


class SafetyNumberUnavailableError(ContactError):
    default_user_message = (
        "The safety number is shown once you have a conversation with this contact."
    )


class UntrustedKeyError(ContactError):
    """A KeyPackage or credential did not verify against the server's key."""

    default_user_message = "The contact's keys could not be verified."


class ConversationError(ClientError):
    default_user_message = "The conversation could not be changed."


class ConversationNotFoundError(ConversationError):
    default_user_message = "There is no such conversation."


class MessageNotFoundError(ConversationError):
    default_user_message = "There is no such message."


class NotAllowedError(ConversationError):
    """The operation does not apply (e.g. removing someone from a one-to-one chat)."""

    default_user_message = "This cannot be done in this conversation."


class ConversationLeftError(ConversationError):
    default_user_message = "You are no longer a member of this conversation."


class ContentError(ClientError):
    default_user_message = "The message could not be read."


class ContentDecodeError(ContentError):
    """Decrypted bytes are not a valid message content encoding (a peer's fault)."""


class MessageTooLongError(ContentError):
    default_user_message = "The message is too long."


class ClientClosedError(ClientError):
    default_user_message = "The messenger was closed."


class DeviceReplacedError(ClientError):
    """This copy of the profile was replaced: a restored backup took the account over.

    The server answers ``device_replaced`` to every request of this copy.
    Stop syncing and sending; keep what is queued (it belongs to the user)
    and tell the user.
    """

    default_user_message = (
        "This account was restored on another computer. This copy no longer receives messages."
    )


class DeviceRemovedError(DeviceReplacedError):
    """This device was removed from the account by another of its devices.

    The server answers ``device_removed`` to every request of this device.
    Like a replaced copy, it stops syncing and sending and tells the user;
    what is stored stays readable on this computer (docs/devices.md).
    """

    default_user_message = (
        "This device was removed from your account on another device. "
        "It no longer receives or sends messages."
    )


# -- transport security (appended) ---------------------------------------------------


class InsecureServerAddressError(InvalidServerAddressError):
    """A plain ``http://`` server address that is not this computer (loopback).

    Refused before any connection; ``allow_insecure_http`` (the CLI's
    ``--allow-insecure-http``) overrides it.
    """

    default_user_message = (
        "This server address uses plain http://, which is not encrypted: only a server on "
        "this computer may be reached that way. Use https://, or allow insecure HTTP "
        "explicitly."
    )


class UntrustedCertificateError(NetworkError):
    """The server's TLS certificate did not verify (unknown authority, wrong name, expired)."""

    default_user_message = (
        "The server's certificate is not trusted, so the connection was refused. If the "
        "server uses a private certificate authority, set MESSENGER_CA_FILE to its "
        "certificate."
    )


class CertificateAuthorityFileError(NetworkError):
    """The file named by ``MESSENGER_CA_FILE`` cannot be read as certificates."""

    default_user_message = (
        "The certificate authority file named by MESSENGER_CA_FILE could not be read."
    )


# -- linking a device (appended; docs/devices.md §2) ---------------------------------


class LinkError(ClientError):
    """Linking a new device to the account did not work."""

    default_user_message = "The device could not be linked."


class LinkCodeError(LinkError):
    """A link code or link QR code that cannot be read."""

    default_user_message = (
        "This is not a valid link code: it has 24 letters and digits, shown on the "
        "device that links this one."
    )


class LinkExpiredError(LinkError):
    """The link code expired, or is unknown to the server (it was never opened or is closed)."""

    default_user_message = (
        "This link code has expired or was already used. Start linking again on your other device."
    )


class LinkCancelledError(LinkError):
    """The link was cancelled or declined on one of the two devices."""

    default_user_message = "Linking was cancelled."


class LinkFailedError(LinkError):
    """The link stopped halfway: a message that does not open, a refusal, a broken exchange."""

    default_user_message = (
        "Linking the device failed. Nothing was changed; start linking again on your other device."
    )


# -- attachments (docs/attachments.md §5) ------------------------------------------


class AttachmentError(ClientError):
    """Sending, fetching or reading an attachment did not work."""

    default_user_message = "The file could not be sent or received."


class AttachmentTooLargeError(AttachmentError):
    """The file is over the server's limit (checked before anything is uploaded)."""

    default_user_message = "This file is too large to send."


class AttachmentCorruptError(AttachmentError):
    """A blob that does not match its message: wrong size or digest, a chunk that fails."""

    default_user_message = (
        "The file that arrived is damaged or was changed on the way, so it was not kept."
    )


class AttachmentUnavailableError(AttachmentError):
    """The server no longer has the blob, or this device may no longer fetch it."""

    default_user_message = "This file is no longer available."


class AttachmentQuotaError(AttachmentError):
    """The server is out of space, or this device is over its storage quota."""

    default_user_message = (
        "The server has no room for this file right now. Try again later, or send a smaller file."
    )


class AttachmentNotDownloadedError(AttachmentError):
    """The attachment's content is not on this device yet."""

    default_user_message = "Download the file first."


class ImageRejectedError(AttachmentError):
    """An image that is malformed, or larger than images may be before decoding."""

    default_user_message = "This image cannot be shown: it is damaged or too large."


class InvalidTimerError(ConversationError):
    """A disappearing-message timer outside the allowed range."""

    default_user_message = "Choose a timer from 10 seconds to 1 year, or turn it off."
