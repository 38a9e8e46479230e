"""The OS keyring's state for one profile, in plain words.

Whether the store's key is in the system keyring decides whether the app
opens without the recovery passphrase. The facts come from the client
(:attr:`MessengerClient.key_in_keyring`, the reason carried by
:class:`PassphraseRequiredError`); this module names them and states them
as sentences for onboarding, unlock and the Security settings. The fake
returns a fixed state, so screens can be tested in each one.
"""

from __future__ import annotations

import enum
from typing import Final

from messenger.client import KeyringProblem, MessengerClient

__all__ = ["SENTENCES", "FakeKeyringState", "KeyringState", "KeyringStatus"]


class KeyringStatus(enum.StrEnum):
    SAVED = "saved"
    """The key is in the keyring: the app opens without the passphrase."""
    NOT_SAVED = "not-saved"
    """The keyring works but holds no key for this profile."""
    UNAVAILABLE = "unavailable"
    """There is no usable keyring (no desktop session, locked, refused)."""
    STALE = "stale"
    """The keyring holds an old key that does not open the store."""


SENTENCES: Final = {
    KeyringStatus.SAVED: (
        "Your key is kept in the system keyring, so the app opens without your passphrase."
    ),
    KeyringStatus.NOT_SAVED: (
        "Your key is not in the system keyring, so the app asks for your passphrase "
        "each time it starts."
    ),
    KeyringStatus.UNAVAILABLE: (
        "There is no system keyring on this computer, so the app asks for your passphrase "
        "each time it starts."
    ),
    KeyringStatus.STALE: (
        "The key in the system keyring is out of date; after you unlock with your "
        "passphrase, the app saves the current one."
    ),
}


class KeyringState:
    """Reads the keyring's state from an open client or a failed unlock."""

    def status(self, client: MessengerClient) -> KeyringStatus:
        return KeyringStatus.SAVED if client.key_in_keyring else KeyringStatus.NOT_SAVED

    def status_of_problem(self, problem: KeyringProblem) -> KeyringStatus:
        """The state behind a :class:`PassphraseRequiredError` (its ``reason``)."""
        return {
            KeyringProblem.UNAVAILABLE: KeyringStatus.UNAVAILABLE,
            KeyringProblem.MISSING: KeyringStatus.NOT_SAVED,
            KeyringProblem.STALE: KeyringStatus.STALE,
        }[problem]

    async def remember(self, client: MessengerClient) -> KeyringStatus:
        """Try to put the key into the keyring; the state afterwards."""
        saved = await client.remember_key()
        return KeyringStatus.SAVED if saved else KeyringStatus.UNAVAILABLE

    def sentence(self, status: KeyringStatus) -> str:
        return SENTENCES[status]


class FakeKeyringState(KeyringState):
    """Reports ``status`` whatever the client says; :meth:`remember` saves."""

    def __init__(self, status: KeyringStatus = KeyringStatus.UNAVAILABLE) -> None:
        self.fixed = status
        self.remembered = 0

    def status(self, client: MessengerClient) -> KeyringStatus:
        return self.fixed

    async def remember(self, client: MessengerClient) -> KeyringStatus:
        self.remembered += 1
        if self.fixed is not KeyringStatus.UNAVAILABLE:
            self.fixed = KeyringStatus.SAVED
        return self.fixed
