"""The OS keyring as the everyday home of the database key.

One entry per profile: service ``"messenger"``, user name the profile id,
secret the key in hex. The keyring is a convenience, never the only copy:
the recovery file (:mod:`.key_wrap`) always holds the key too, so a
missing, locked or replaced keyring only means asking for the passphrase.

This module is the one seam between the client and the ``keyring``
package. Without a desktop session ``keyring`` falls back to its
``fail.Keyring``, whose calls raise ``NoKeyringError``; backends may also
raise their own errors (D-Bus, Secret Service, Keychain Services). All of
them become :class:`KeyringUnavailableError`, since for the app they all
mean the same: use the passphrase.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from ..errors import KeyringUnavailableError
from .database_key import DatabaseKey

if TYPE_CHECKING:
    # ``keyring`` itself is imported by the calls that use it: loading its
    # backends takes ~0.1 s, not to be spent before a window shows.
    import keyring.backend

__all__ = ["KEYRING_SERVICE", "Keychain"]

KEYRING_SERVICE: Final = "messenger"

_log = logging.getLogger(__name__)


class Keychain:
    """Database keys in the OS keyring, by profile id.

    ``backend`` defaults to the process-wide keyring (``keyring.get_keyring()``
    at the time of each call, so ``keyring.set_keyring()`` takes effect).
    """

    def __init__(
        self,
        *,
        service: str = KEYRING_SERVICE,
        backend: keyring.backend.KeyringBackend | None = None,
    ) -> None:
        self.service = service
        self._backend = backend

    def _keyring(self) -> keyring.backend.KeyringBackend:
        import keyring

        return self._backend if self._backend is not None else keyring.get_keyring()

    def load(self, profile_id: str) -> DatabaseKey | None:
        """The stored key, or None if there is no entry or it is not a key.

        KeyringUnavailableError if the keyring cannot be asked.
        """
        try:
            value = self._keyring().get_password(self.service, profile_id)
        except Exception as exc:  # any backend failure means "no keyring"
            raise _unavailable(exc, "read") from exc
        if value is None:
            return None
        try:
            return DatabaseKey.from_hex(value)
        except ValueError:
            _log.warning("the keyring entry of profile %s is not a database key", profile_id)
            return None

    def save(self, profile_id: str, key: DatabaseKey) -> None:
        """Store (or replace) the key; KeyringUnavailableError if it cannot."""
        try:
            self._keyring().set_password(self.service, profile_id, key.hex())
        except Exception as exc:  # any backend failure means "no keyring"
            raise _unavailable(exc, "write") from exc

    def try_save(self, profile_id: str, key: DatabaseKey) -> bool:
        """Store the key if the keyring can; whether it did."""
        try:
            self.save(profile_id, key)
        except KeyringUnavailableError:
            return False
        return True

    def forget(self, profile_id: str) -> None:
        """Delete the entry if there is one; a keyring that cannot be reached is ignored."""
        import keyring.errors

        try:
            self._keyring().delete_password(self.service, profile_id)
        except keyring.errors.PasswordDeleteError:
            return
        except Exception as exc:  # any backend failure means "no keyring"
            _log.info("could not delete keyring entry of profile %s: %s", profile_id, _kind(exc))


def _kind(exc: BaseException) -> str:
    # Only the class name: a backend's message could echo what it was given.
    return type(exc).__name__


def _unavailable(exc: BaseException, what: str) -> KeyringUnavailableError:
    _log.info("OS keyring %s failed: %s", what, _kind(exc))
    return KeyringUnavailableError(f"keyring {what} failed ({_kind(exc)})")
