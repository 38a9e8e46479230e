"""The settings dialog with a real client: every page does what it says.

Privacy toggles reach the client; this computer's choices reach the
preferences file; the keyring sentence is plain; the passphrase changes
(a wrong current one first); a backup is exported with progress and then
restored through onboarding into a new data directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from messenger.client import MessengerClient
from tests.client.helpers import FAST_KDF, PASSPHRASE
from tests.ui.conftest import wait_until
from tests.ui.fake_client import FakeClient
from tests.ui.test_contacts import people
from tests.ui.test_onboarding import RUN_SLOW, SLOW, LocalStarter, no_keyring, stay_open  # noqa: F401
from ui.preferences import NotificationContent, PreferencesStore, Theme
from ui.views.onboarding import OnboardingView
from ui.views.settings import KEYRING_NOT_SAVED, SECTIONS, SettingsDialog


@pytest.mark.usefixtures("no_keyring")
def test_every_page_with_a_real_client(run: Any, tmp_path: Path, qtbot: Any) -> None:
    prefs = PreferencesStore(tmp_path / "prefs")

    async def body() -> None:
        async with people(tmp_path, "alice") as (alice,):
            dialog = SettingsDialog(alice, prefs, kdf=FAST_KDF)
            qtbot.addWidget(dialog)
            dialog.show()
            info = await alice.account()
            assert info is not None
            await wait_until(lambda: dialog.invite_link.text() == info.invite_link)
            assert dialog.profile_address.text() == info.address
            assert dialog.about_rows["Server"].text() == info.server_url
            assert [dialog.sections.item(i).text() for i in range(dialog.sections.count())] == list(
                SECTIONS
            )
            # Profile: the display name reaches the account.
            dialog.display_name.setText("Alice A.")
            dialog.save_name_button.click()
            await wait_until(lambda: dialog.profile_name.text() == "Alice A.")
            assert await alice.own_display_name() == "Alice A."
            # Privacy: toggles go to the client.
            dialog.show_section("Privacy")
            assert dialog.pages.currentWidget() is dialog.page("Privacy")
            assert dialog.read_receipts.isChecked()
            dialog.read_receipts.click()
            dialog.typing.click()
            await wait_until(lambda: not dialog.busy())
            preferences = await alice.preferences()
            assert not preferences.read_receipts and not preferences.typing_indicators
            # Automatic downloads: the default is checked, a choice reaches the client.
            assert dialog.auto_download_buttons[16 << 20].isChecked()
            dialog.auto_download_buttons[0].click()
            await wait_until(lambda: not dialog.busy())
            assert (await alice.preferences()).auto_download_bytes == 0
            dialog.auto_download_buttons[100 << 20].click()
            await wait_until(lambda: not dialog.busy())
            assert (await alice.preferences()).auto_download_bytes == 100 << 20
            # This computer's choices go to the preferences file.
            dialog.notifications.click()
            assert not prefs.value.notifications
            dialog.notifications.click()
            dialog.content_buttons[NotificationContent.SENDER].click()
            dialog.theme_buttons[Theme.DARK].click()
            dialog.close_to_tray.click()
            dialog.lock_after.setCurrentIndex(dialog.lock_after.findData(5))
            value = PreferencesStore(tmp_path / "prefs").value
            assert value.notification_content is NotificationContent.SENDER
            assert value.theme is Theme.DARK and value.close_to_tray
            assert value.lock_after_minutes == 5 and value.notifications
            # Security: plain words, then a wrong and a right current passphrase.
            dialog.show_section("Security")
            assert dialog.keyring_text.text() == KEYRING_NOT_SAVED
            dialog.old_passphrase.setText("not the passphrase")
            dialog.new_passphrase.first.setText("a new long passphrase")
            dialog.new_passphrase.second.setText("a new long passphrase")
            dialog.change_button.click()
            await wait_until(lambda: dialog.passphrase_error.isVisibleTo(dialog))
            assert dialog.passphrase_error.text() == "The recovery passphrase is wrong."
            dialog.old_passphrase.setText(PASSPHRASE)
            dialog.change_button.click()
            await wait_until(lambda: dialog.passphrase_done.isVisibleTo(dialog))
            assert await alice.check_passphrase("a new long passphrase")
            # Backup: export, with the passphrase rule live first.
            backup = tmp_path / "alice.msgbackup"
            dialog.show_section("Backup")
            dialog.backup_fields.first.setText("short")
            dialog.export_backup(backup)
            assert "at least 8 characters" in dialog.backup_error.text()
            dialog.backup_fields.first.setText("backup passphrase")
            dialog.backup_fields.second.setText("backup passphrase")
            dialog.export_backup(backup)
            assert dialog.backup_busy.isVisibleTo(dialog)
            await wait_until(lambda: dialog.backup_done.isVisibleTo(dialog), timeout=SLOW)
            assert "alice.msgbackup" in dialog.backup_done.text() and backup.exists()

        # The backup restores through onboarding, on a fresh data directory.
        starter = LocalStarter(tmp_path / "unused")
        view = OnboardingView(tmp_path / "restored", "alice", starter, kdf=FAST_KDF)
        qtbot.addWidget(view)
        view.show()
        got: list[Any] = []
        view.finished.connect(got.append)
        view.restore_button.click()
        view.backup_field.setText(str(backup))
        view.backup_passphrase.setText("backup passphrase")
        view.restore_fields.first.setText("recovery phrase 2")
        view.restore_fields.second.setText("recovery phrase 2")
        view.restore_start.click()
        await wait_until(lambda: bool(got), timeout=SLOW)
        restored: MessengerClient = got[0]
        try:
            account = await restored.account()
            assert account is not None and account.account_id == info.account_id
            assert account.display_name == "Alice A."
        finally:
            await restored.close()

    run(body(), timeout=RUN_SLOW)


def test_keyring_button_and_errors_with_the_fake(run: Any, tmp_path: Path, qtbot: Any) -> None:
    client = FakeClient()
    client.key_in_keyring = False
    prefs = PreferencesStore(tmp_path)
    dialog = SettingsDialog(client, prefs)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()

    async def body() -> None:
        await wait_until(lambda: dialog.invite_link.text() != "")
        dialog.show_section("Security")
        assert dialog.remember_button.isVisibleTo(dialog)
        dialog.remember_button.click()
        await wait_until(lambda: not dialog.remember_button.isVisibleTo(dialog))
        assert dialog.keyring_text.text().startswith("Your key is kept in the system keyring")
        from messenger.client import DiskFullError

        client.fail("backup", DiskFullError("full"))
        dialog.show_section("Backup")
        dialog.backup_fields.first.setText("backup passphrase")
        dialog.backup_fields.second.setText("backup passphrase")
        dialog.export_backup(tmp_path / "b")
        await wait_until(lambda: dialog.backup_error.isVisibleTo(dialog))
        assert dialog.backup_error.text() == DiskFullError.default_user_message
        assert dialog.export_button.isEnabled() and not dialog.backup_busy.isVisibleTo(dialog)

    run(body())
