"""The app lock over a window: a wrong passphrase stays locked, the right one unlocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QWidget

from messenger.client import MessengerClient
from tests.client.helpers import FAST_KDF, PASSPHRASE
from tests.ui.conftest import wait_until
from tests.ui.fake_client import FakeClient
from tests.ui.test_onboarding import no_keyring, stay_open  # noqa: F401 (fixtures)
from ui.views.lock_screen import WRONG, LockScreen


@pytest.mark.usefixtures("no_keyring")
def test_lock_and_unlock_a_real_profile(run: Any, tmp_path: Path, qtbot: Any) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    window.resize(800, 600)
    window.show()

    async def body() -> None:
        client = await MessengerClient.create("me", PASSPHRASE, data_dir=tmp_path, kdf=FAST_KDF)
        try:
            lock = LockScreen(client, window)
            unlocked: list[bool] = []
            lock.unlocked.connect(lambda: unlocked.append(True))
            lock.lock()
            assert lock.isVisible() and lock.geometry() == window.rect()
            window.resize(1000, 700)
            await wait_until(lambda: lock.geometry() == window.rect())
            lock.passphrase.setText("not it at all")
            lock.unlock_button.click()
            await wait_until(lambda: lock.error_text() != "")
            assert lock.error_text() == WRONG and lock.isVisible() and not unlocked
            lock.passphrase.setText(PASSPHRASE)
            lock.passphrase.returnPressed.emit()
            await wait_until(lambda: bool(unlocked))
            assert not lock.isVisible()
        finally:
            await client.close()

    run(body())


def test_a_failing_check_shows_its_sentence(run: Any, qtbot: Any) -> None:
    client = FakeClient()
    lock = LockScreen(client)  # type: ignore[arg-type]
    qtbot.addWidget(lock)
    lock.lock()
    from messenger.client import StoreIOError

    client.fail("check_passphrase", StoreIOError("disk"))

    async def body() -> None:
        lock.passphrase.setText("anything")
        lock.submit()
        await wait_until(lambda: lock.error_text() != "")
        assert lock.error_text() == StoreIOError.default_user_message
        assert lock.isVisible()

    run(body())
