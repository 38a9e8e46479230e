"""Unlocking a real profile with its recovery passphrase.

A wrong passphrase gets the client's sentence and another try (never a
crash); the right one emits the open client; "Keep me unlocked on this
computer" puts the key into the keyring so the next start needs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest

from messenger.client import (
    KeyringProblem,
    MessengerClient,
    PassphraseRequiredError,
    Profiles,
)
from tests.client.helpers import FAST_KDF, PASSPHRASE, MemoryKeyring
from tests.ui.conftest import wait_until
from tests.ui.test_onboarding import no_keyring, stay_open  # noqa: F401 (fixtures)
from ui.views.unlock import REASONS, UnlockView


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


async def make_profile(data_dir: Path) -> None:
    client = await MessengerClient.create("me", PASSPHRASE, data_dir=data_dir, kdf=FAST_KDF)
    await client.close()


@pytest.mark.usefixtures("no_keyring")
def test_wrong_then_right_passphrase(run: Any, tmp_path: Path, qtbot: Any) -> None:
    data = tmp_path / "data"

    async def body() -> None:
        await make_profile(data)
        try:
            await MessengerClient.open("me", data_dir=data)
        except PassphraseRequiredError as exc:
            reason = exc.reason
        else:
            raise AssertionError("the fail keyring gave a key")
        view = UnlockView(Profiles(data).get("me"), data, reason=reason)
        qtbot.addWidget(view)
        view.show()
        assert REASONS[KeyringProblem.UNAVAILABLE] in [
            w.text() for w in view.card.findChildren(type(view.error))
        ]
        assert not view.remember.isVisibleTo(view)  # no keyring to keep the key in
        got: list[Any] = []
        view.unlocked.connect(got.append)
        view.unlock_button.click()
        assert view.error_text() == "Enter your recovery passphrase."
        view.passphrase.setText("wrong passphrase")
        view.unlock_button.click()
        await wait_until(lambda: view.attempts == 1)
        assert view.error_text() == "The recovery passphrase is wrong. Try again."
        assert not got and view.passphrase.isEnabled()
        view.passphrase.setText(PASSPHRASE)
        view.passphrase.returnPressed.emit()
        await wait_until(lambda: bool(got))
        assert view.passphrase.text() == ""
        await got[0].close()

    run(body())


def test_keep_me_unlocked(
    run: Any, tmp_path: Path, memory_keyring: MemoryKeyring, qtbot: Any
) -> None:
    data = tmp_path / "data"

    async def body() -> None:
        await make_profile(data)
        memory_keyring.passwords.clear()  # as if the keyring lost the key
        view = UnlockView(Profiles(data).get("me"), data, reason=KeyringProblem.MISSING)
        qtbot.addWidget(view)
        view.show()
        assert view.remember.isVisibleTo(view)
        got: list[Any] = []
        view.unlocked.connect(got.append)
        view.passphrase.setText(PASSPHRASE)
        view.remember.setChecked(True)
        view.unlock_button.click()
        await wait_until(lambda: bool(got))
        await got[0].close()
        again = await MessengerClient.open("me", data_dir=data)  # no passphrase needed now
        assert again.key_in_keyring
        await again.close()

    run(body())
