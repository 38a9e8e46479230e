"""Linking a device through both screens, with real clients on a real local server.

The laptop (an account, started) opens Settings → Devices → "Link a device";
the desktop (a profile without an account) types the code and the server
into onboarding's "Link to an existing account". The laptop approves
"Link “Desktop”?", both screens run to their end, and both devices list
each other. A mistyped code gets the client's sentence first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from messenger.client import MessengerClient
from tests.client.helpers import FAST_KDF, PASSPHRASE
from tests.ui.conftest import wait_until
from tests.ui.test_contacts import people
from tests.ui.test_onboarding import SLOW, no_keyring, stay_open  # noqa: F401
from ui.bridge import Bridge
from ui.views.devices import DevicesPanel
from ui.views.onboarding import OnboardingView

pytestmark = [
    pytest.mark.usefixtures("loop"),
    pytest.mark.qt_log_ignore("propagateSizeHints"),
]


class NoServer:
    async def start(self) -> str:
        raise AssertionError("no local server is started here")


@pytest.mark.usefixtures("no_keyring")
def test_link_a_device_through_both_screens(run: Any, tmp_path: Path, qtbot: Any) -> None:
    async def body() -> None:
        async with people(tmp_path, "alice") as (laptop,):
            info = await laptop.account()
            assert info is not None
            desktop = await MessengerClient.create(
                "desktop", PASSPHRASE, data_dir=tmp_path / "desktop", kdf=FAST_KDF
            )
            try:
                bridge = Bridge(laptop)
                bridge.start()
                panel = DevicesPanel(laptop, bridge=bridge)
                qtbot.addWidget(panel)
                panel.show()
                await wait_until(lambda: len(panel.rows) == 1, timeout=SLOW)
                assert panel.rows[0].device.this_device
                assert not panel.sign_out_button.isVisible()  # the only device
                panel.link_button.click()
                dialog = panel.link_dialog
                assert dialog is not None
                await wait_until(lambda: dialog.state() == "waiting", timeout=SLOW)
                assert dialog.server_label.text() == info.server_url
                assert dialog.qr.text().startswith("messenger://link?")

                view = OnboardingView(tmp_path / "desktop", "desktop", NoServer(), client=desktop)
                qtbot.addWidget(view)
                view.show()
                view.link_button.click()
                card = view.link_card
                card.server_field.setText(info.server_url)
                card.name_field.setText("Desktop")
                card.code_field.setText("0000-0000")  # mistyped: the client says why
                card.continue_button.click()
                assert view.current_card() is card
                assert "24" in view.error_text()
                card.code_field.setText(dialog.code_text().lower())  # case does not matter
                card.continue_button.click()

                await wait_until(lambda: dialog.state() == "offer", timeout=SLOW)
                assert dialog.offer_title.text() == "Link “Desktop”?"
                assert dialog.history_check.isChecked()
                dialog.approve_button.click()
                await wait_until(
                    lambda: (
                        dialog.state() in ("done", "failed")
                        and view.current_card() in (view.done_card, view.link_card)
                    ),
                    timeout=SLOW,
                )
                assert dialog.error_text() == ""
                assert view.error_text() == ""
                assert dialog.state() == "done"
                assert dialog.done_title.text() == "Desktop is linked"
                assert view.current_card() is view.done_card
                assert desktop.has_account
                joined = await desktop.account()
                assert joined is not None and joined.account_id == info.account_id

                # "Start messaging": the app starts the new device, which joins the
                # devices group and names itself there; the laptop's list follows
                # DevicesChanged.
                await desktop.start()
                await wait_until(
                    lambda: any(r.name_label.text() == "Desktop" for r in panel.rows),
                    timeout=SLOW,
                )
                assert panel.sign_out_button.isVisible()
                dialog.accept()
                await bridge.stop()
            finally:
                await desktop.close()

    run(body(), timeout=300)
