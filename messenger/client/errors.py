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

Any other exception escaping ``messenger.client`` is a bug.
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = [
    "BackupCorruptError",
    "BackupError",
    "BackupVersionError",
    "ClientError",
    "ConstraintError",
    "DiskFullError",
    "DuplicateMessageError",
    "GroupStateRegressionError",
    "InvalidProfileNameError",
    "KeyringProblem",
    "KeyringUnavailableError",
    "PassphraseRequiredError",
    "ProfileError",
    "ProfileExistsError",
    "ProfileNotFoundError",
    "StoreBusyError",
    "StoreCorruptError",
    "StoreError",
    "StoreIOError",
    "StoreLockedError",
    "StoreNotFoundError",
    "StoreVersionError",
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
