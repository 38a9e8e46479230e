"""Link a device, against the fake client: every state of both sides.

The existing device's dialog: the code (QR, short code, copy, server,
countdown), the offer ("Link “Desktop”?", history on by default, Enter
links, Decline), the stages with a determinate bar that never goes back,
done, expiry and errors with "Try again", cancel closing the link at any
time. The new device's path in the onboarding: a pasted URI fills the
server, a bad code gets the client's sentence, the stages run to the done
card. And the QR widget: crisp whole-pixel modules, a white tile in both
themes, the accessible text that points to the typed code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import segno
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPixmap
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from messenger.client import ClientError, LinkProgress, LinkStage
from tests.ui.conftest import wait_until
from tests.ui.fake_client import (
    FakeClient,
)
from ui import theme
from ui.preferences import Theme
from ui.views.link_device import (
    CREATOR_STAGES,
    EXPIRED_TEXT,
    JOINER_STAGES,
    QR_DESCRIPTION,
    LinkDeviceDialog,
    StageProgress,
    countdown_text,
    device_link_parts,
)
from ui.widgets.progress import ProgressIndicator
from ui.widgets.qr_code import QUIET_ZONE, QrCode, qr_matrix

pytestmark = [
    pytest.mark.usefixtures("loop"),
    # the offscreen platform's note when a top-level widget is shown, not a problem here
    pytest.mark.qt_log_ignore("propagateSizeHints"),
]


@pytest.fixture(autouse=True)
def stay_open(qapp: QApplication) -> Iterator[None]:
    qapp.setQuitOnLastWindowClosed(False)
    yield


def account_client() -> FakeClient:
    client = FakeClient(display_name="Sam Rivera")
    client.add_device_now("Laptop", this_device=True)
    return client


async def waiting_dialog(client: FakeClient, qtbot: Any) -> LinkDeviceDialog:
    before = client.calls["wait_offer"]
    dialog = LinkDeviceDialog(client)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()
    await wait_until(lambda: dialog.state() == "waiting")
    await wait_until(lambda: client.calls["wait_offer"] == before + 1)
    return dialog


# -- the existing device ---------------------------------------------------------------------


def test_waiting_shows_the_code_twice_with_server_and_countdown(run: Any, qtbot: Any) -> None:
    client = account_client()

    async def body() -> None:
        dialog = await waiting_dialog(client, qtbot)
        link = client.links[-1]
        assert dialog.code_text() == link.code.text
        assert dialog.code_label.text().count("\n") == 1  # two lines of three groups
        assert dialog.qr.text() == link.code.uri
        assert dialog.server_label.text() == "https://chat.example.org"
        assert dialog.waiting_text.text() == "Waiting for the new device…"
        # 10 minutes minus the time the test took: 9:5x or 10:00
        assert dialog.countdown.text().startswith(("Expires in 9:", "Expires in 10:00"))
        # selectable with mouse and keyboard, reachable with Tab
        flags = dialog.code_label.textInteractionFlags()
        assert flags & Qt.TextInteractionFlag.TextSelectableByKeyboard
        assert dialog.code_label.focusPolicy() == Qt.FocusPolicy.StrongFocus
        dialog.copy_button.click()
        assert QGuiApplication.clipboard().text() == link.code.text
        assert dialog.copy_button.text() == "Copied"
        # the QR code says what to do when it cannot be scanned
        assert dialog.qr.accessibleDescription() == QR_DESCRIPTION
        assert "type the code" in QR_DESCRIPTION
        dialog.reject()

    run(body())


def test_offer_then_link_with_history_runs_the_stages_to_done(run: Any, qtbot: Any) -> None:
    client = account_client()
    client.progress_steps = (0.25, 0.6)

    async def body() -> None:
        import asyncio

        client.progress_gate = asyncio.Event()
        dialog = await waiting_dialog(client, qtbot)
        linked: list[str] = []
        dialog.linked.connect(linked.append)
        client.offer_link("Desktop")
        await wait_until(lambda: dialog.state() == "offer")
        assert dialog.offer_title.text() == "Link “Desktop”?"
        assert dialog.history_check.isChecked()
        assert dialog.approve_button.isDefault()
        assert dialog.approve_button.hasFocus()
        # Enter on the offer links (the default button)
        QTest.keyClick(dialog, Qt.Key.Key_Return)
        await wait_until(lambda: dialog.state() == "progress")
        assert dialog.progress_title.text() == "Linking “Desktop”…"
        expected = 0.15 + 0.7 * 0.6
        await wait_until(lambda: abs(dialog.progress.fraction - expected) < 1e-9)
        assert dialog.stage_text.text() == CREATOR_STAGES["TRANSFERRING_HISTORY"]
        assert dialog.progress.caption.text() == f"{int(expected * 100)}%"
        client.progress_gate.set()
        await wait_until(lambda: dialog.state() == "done")
        assert dialog.done_title.text() == "Desktop is linked"
        assert linked == ["Desktop"]
        assert client.links[-1].history is True
        assert not client.links[-1].cancelled  # a finished link is not cancelled
        assert [d.name for d in client.devices_] == ["Laptop", "Desktop"]
        assert dialog.done_button.hasFocus()
        dialog.done_button.click()
        assert not dialog.isVisible()
        assert not client.links[-1].cancelled

    run(body())


def test_link_without_history(run: Any, qtbot: Any) -> None:
    client = account_client()

    async def body() -> None:
        dialog = await waiting_dialog(client, qtbot)
        client.offer_link("Work PC")
        await wait_until(lambda: dialog.state() == "offer")
        dialog.history_check.setChecked(False)
        dialog.approve_button.click()
        await wait_until(lambda: dialog.state() == "done")
        assert client.links[-1].history is False
        dialog.accept()

    run(body())


def test_decline_closes_and_try_again_makes_a_new_code(run: Any, qtbot: Any) -> None:
    client = account_client()

    async def body() -> None:
        dialog = await waiting_dialog(client, qtbot)
        first = client.links[-1]
        client.offer_link("Stranger's PC")
        await wait_until(lambda: dialog.state() == "offer")
        dialog.decline_button.click()
        await wait_until(lambda: first.declined)
        assert dialog.state() == "failed"
        assert "declined" in dialog.error_text()
        assert client.calls["approve"] == 0
        assert dialog.retry_button.isDefault()
        dialog.retry_button.click()
        await wait_until(lambda: dialog.state() == "waiting" and len(client.links) == 2)
        assert client.links[-1].code.text != first.code.text
        assert dialog.code_text() == client.links[-1].code.text
        dialog.reject()
        await wait_until(lambda: client.links[-1].cancelled)

    run(body())


def test_expiry_shows_the_sentence_and_try_again(run: Any, qtbot: Any) -> None:
    client = account_client()

    async def body() -> None:
        dialog = await waiting_dialog(client, qtbot)
        client.expire_link()
        await wait_until(lambda: dialog.state() == "failed")
        assert dialog.error_text() == EXPIRED_TEXT
        assert dialog.failed_title.text() == "The code expired"
        assert dialog.cancel_button.text() == "Close"
        dialog.retry_button.click()
        await wait_until(lambda: dialog.state() == "waiting" and len(client.links) == 2)
        dialog.reject()

    run(body())


def test_start_failure_and_approve_failure_show_the_client_sentence(run: Any, qtbot: Any) -> None:
    client = account_client()
    client.fail("start_link", ClientError("x", user_message="The server is busy."), times=1)

    async def body() -> None:
        dialog = LinkDeviceDialog(client)  # type: ignore[arg-type]
        qtbot.addWidget(dialog)
        dialog.show()
        await wait_until(lambda: dialog.state() == "failed")
        assert dialog.error_text() == "The server is busy."
        dialog.retry_button.click()
        await wait_until(lambda: dialog.state() == "waiting")
        client.fail("approve", ClientError("y", user_message="The new device went away."))
        client.offer_link("Desktop")
        await wait_until(lambda: dialog.state() == "offer")
        dialog.approve_button.click()
        await wait_until(lambda: dialog.state() == "failed")
        assert dialog.error_text() == "The new device went away."
        # the half-done link was closed
        await wait_until(lambda: client.links[-1].cancelled)
        dialog.reject()

    run(body())


def test_cancel_while_waiting_and_during_progress_closes_the_link(run: Any, qtbot: Any) -> None:
    client = account_client()

    async def body() -> None:
        import asyncio

        dialog = await waiting_dialog(client, qtbot)
        QTest.keyClick(dialog, Qt.Key.Key_Escape)
        await wait_until(lambda: client.links[-1].cancelled)
        assert not dialog.isVisible()
        client.progress_gate = asyncio.Event()
        dialog = await waiting_dialog(client, qtbot)
        client.offer_link("Desktop")
        await wait_until(lambda: dialog.state() == "offer")
        dialog.approve_button.click()
        await wait_until(lambda: dialog.state() == "progress")
        assert dialog.cancel_button.isVisible()
        dialog.cancel_button.click()
        await wait_until(lambda: client.links[-1].cancelled)
        assert not dialog.isVisible()

    run(body())


def test_countdown_from_an_injected_clock(run: Any, qtbot: Any) -> None:
    client = account_client()
    now = [time.time()]

    async def body() -> None:
        dialog = LinkDeviceDialog(client, clock=lambda: now[0])  # type: ignore[arg-type]
        qtbot.addWidget(dialog)
        dialog.show()
        await wait_until(lambda: dialog.state() == "waiting")
        expires = client.links[-1].expires_at
        now[0] = (expires - 61_000) / 1000
        dialog._tick()
        assert dialog.countdown.text() == "Expires in 1:01"
        now[0] = expires / 1000 + 1
        dialog._tick()
        assert dialog.countdown.text() == "The code has expired"
        dialog.reject()

    run(body())


def test_countdown_text_and_uri_parts() -> None:
    assert countdown_text(600_000) == "Expires in 10:00"
    assert countdown_text(1) == "Expires in 0:01"
    assert countdown_text(0) == "The code has expired"
    assert device_link_parts(
        "messenger://link?server=https%3A%2F%2Fchat.example.org&code=ABCD"
    ) == ("https://chat.example.org", "ABCD")
    assert device_link_parts("messenger://add?server=https://x.org&account=a") is None
    assert device_link_parts("messenger://link?code=ABCD") is None
    assert device_link_parts("https://x.org") is None


def test_stage_progress_never_goes_back(qapp: QApplication) -> None:
    from PySide6.QtWidgets import QLabel

    bar = ProgressIndicator("Linking")
    text = QLabel()
    stages = StageProgress(bar, text, JOINER_STAGES)
    stages.report(LinkProgress(LinkStage.TRANSFERRING_HISTORY, 0.5))
    assert bar.fraction == pytest.approx(0.5)
    assert text.text() == JOINER_STAGES["TRANSFERRING_HISTORY"]
    stages.report(LinkProgress(LinkStage.REGISTERING, None))  # out of order
    assert bar.fraction == pytest.approx(0.5)
    stages.report(LinkProgress(LinkStage.JOINING_CONVERSATIONS, 2.0))  # clamped
    assert bar.fraction == pytest.approx(0.99)
    stages.report(LinkProgress(LinkStage.DONE, None))
    assert bar.fraction == 1.0 and bar.caption.text() == "Done"


# -- the QR widget ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", [Theme.LIGHT, Theme.DARK])
@pytest.mark.parametrize("ratio", [1.0, 1.5, 2.0])
def test_qr_modules_are_whole_pixels_on_white_in_both_themes(
    qapp: QApplication, scheme: Theme, ratio: float
) -> None:
    theme.apply_theme(qapp, scheme)
    try:
        text = "messenger://link?server=https%3A%2F%2Fchat.example.org&code=" + "7" * 24
        widget = QrCode(text, size=248)
        pixmap = QPixmap(QSize(248, 248) * ratio)
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(QColor("#FF00FF"))
        widget.render(pixmap)
        image = pixmap.toImage()
        matrix = qr_matrix(text)
        count = len(matrix) + 2 * QUIET_ZONE
        assert widget.modules == count
        module = widget.module_pixels(ratio)
        assert module >= 2
        side = module * count
        offset = (image.width() - side) // 2
        # every module is one flat colour: black where segno says dark, else white
        for y in range(count):
            for x in range(count):
                dark = (
                    QUIET_ZONE <= x < count - QUIET_ZONE
                    and QUIET_ZONE <= y < count - QUIET_ZONE
                    and matrix[y - QUIET_ZONE][x - QUIET_ZONE]
                )
                want = QColor("#000000") if dark else QColor("#FFFFFF")
                for dx, dy in ((0, 0), (module - 1, module - 1)):
                    got = image.pixelColor(offset + x * module + dx, offset + y * module + dy)
                    assert got == want, (x, y, dx, dy, got.name())
        # and it decodes as the same text (segno's own matrix round trip)
        assert segno.make(text, error="m").matrix == tuple(
            bytearray(int(c) for c in row) for row in matrix
        )
    finally:
        theme.apply_theme(qapp, Theme.LIGHT)


# -- the new device: onboarding's "Link to an existing account" ------------------------------


def onboarding(tmp_path: Path, client: FakeClient, qtbot: Any, **kwargs: Any) -> Any:
    from ui.views.onboarding import OnboardingView

    class NoServer:
        async def start(self) -> str:
            raise AssertionError("no local server here")

    view = OnboardingView(tmp_path / "data", "linked", NoServer(), client=client, **kwargs)  # type: ignore[arg-type]
    qtbot.addWidget(view)
    view.show()
    return view


CODE = "7KQ2-M9XD-4TRB-8HZN-C3WE-5PFA"


def test_onboarding_link_path_with_a_pasted_uri(run: Any, tmp_path: Path, qtbot: Any) -> None:
    client = FakeClient(has_account=False)
    client.progress_steps = (0.3, 0.7)

    async def body() -> None:
        import asyncio

        client.progress_gate = asyncio.Event()
        view = onboarding(tmp_path, client, qtbot, server_url="https://chat.example.org")
        assert view.link_button.accessibleName() == "Link to an existing account"
        view.link_button.click()
        card = view.link_card
        assert view.current_card() is card
        assert view.focusWidget() is card.code_field
        assert card.server_field.text() == "https://chat.example.org"
        assert card.name_field.text()  # prefilled from the computer
        card.code_field.setText(
            "messenger://link?server=https%3A%2F%2Fother.example.net&code=" + CODE.replace("-", "")
        )
        assert card.server_field.text() == "https://other.example.net"
        assert card.code_field.text() == CODE.replace("-", "")
        card.name_field.setText("  Home   desktop ")
        card.continue_button.click()
        await wait_until(lambda: view.current_card() is view.working_card)
        assert view.working_card.title.text() == "Linking this computer…"
        await wait_until(lambda: view.signup_progress.fraction > 0.6)
        assert view.working_text.text() == JOINER_STAGES["TRANSFERRING_HISTORY"]
        assert view.signup_progress.caption.text().endswith("%")
        assert "estimate" not in view.signup_progress.caption.text()
        client.progress_gate.set()
        await wait_until(lambda: view.current_card() is view.done_card)
        assert client.linked_with is not None
        code, name = client.linked_with
        assert name == "Home desktop"
        assert code.server_url == "https://other.example.net"
        assert "now a device of your account" in view.done_address.text()
        finished: list[Any] = []
        view.finished.connect(finished.append)
        view.start_button.click()
        assert finished == [client]

    run(body())


def test_onboarding_link_path_bad_code_and_failure(run: Any, tmp_path: Path, qtbot: Any) -> None:
    client = FakeClient(has_account=False)

    async def body() -> None:
        view = onboarding(tmp_path, client, qtbot)
        view.link_button.click()
        card = view.link_card
        card.continue_button.click()
        assert view.error_text() == "Enter the link code your other device shows."
        card.code_field.setText("NOT-A-CODE")
        card.server_field.setText("https://chat.example.org")
        QTest.keyClick(card.code_field, Qt.Key.Key_Return)
        assert view.current_card() is card
        assert view.error_text()  # the client's sentence about the code
        assert "Traceback" not in view.error_text()
        assert client.calls["link_account"] == 0
        # a well-formed code that the server does not know: the client's sentence
        client.fail(
            "link_account",
            ClientError("gone", user_message="This link code is not valid any more."),
            times=1,
        )
        card.code_field.setText(CODE)
        card.continue_button.click()
        await wait_until(lambda: view.current_card() is card and view.error_text())
        assert view.error_text() == "This link code is not valid any more."
        # Escape goes back to the first card; the path opens again
        QTest.keyClick(view, Qt.Key.Key_Escape)
        assert view.current_card() is view.server_card

    run(body())


def test_forwarded_device_link_opens_the_link_path(run: Any, tmp_path: Path, qtbot: Any) -> None:
    client = FakeClient(has_account=False)

    async def body() -> None:
        view = onboarding(tmp_path, client, qtbot)
        uri = "messenger://link?server=https%3A%2F%2Fchat.example.org&code=" + CODE
        assert view.use_link(uri)
        assert view.current_card() is view.link_card
        assert view.link_card.server_field.text() == "https://chat.example.org"
        assert view.link_card.code_field.text() == CODE
        # an invite link still goes to the server step
        assert view.use_link("messenger://add?server=https%3A%2F%2Fx.org&account=abc")
        assert view.current_card() is view.server_card

    run(body())


# -- device links reaching the app (launch argument, single instance) -----------------------

DEVICE_LINK = "messenger://link?server=https%3A%2F%2Fchat.example.org&code=" + CODE


def test_single_instance_forwards_device_links_of_the_right_shape() -> None:
    from ui.platform.single_instance import forwarded_link

    assert forwarded_link(DEVICE_LINK) == DEVICE_LINK
    assert forwarded_link(DEVICE_LINK.replace("-", "")) is not None
    for bad in (
        "messenger://link?server=https%3A%2F%2Fchat.example.org",  # no code
        "messenger://link?code=" + CODE,  # no server
        "messenger://link?server=file%3A%2F%2F%2Fetc&code=" + CODE,  # not http(s)
        DEVICE_LINK + "&extra=1",  # nothing else
        DEVICE_LINK + "&code=" + CODE,  # twice
        "messenger://link?server=https%3A%2F%2Fx.org&code=%3Cscript%3E" + "A" * 24,
        "messenger://link?server=https%3A%2F%2Fx.org&code=SHORT",
    ):
        assert forwarded_link(bad) is None, bad


@pytest.mark.qt_log_ignore("does not support raise")
def test_app_opens_the_link_path_for_a_device_link(
    tmp_path: Path, run: Any, qapp: QApplication
) -> None:
    """At launch (``--link``) and forwarded: a profile without an account gets the
    link path; one with an account says where the code belongs."""
    import time as clock

    from tests.ui.fake_client import populate
    from ui import tasks
    from ui.app import DEVICE_LINK_HERE, App
    from ui.platform import fake_services
    from ui.views.onboarding import OnboardingView

    async def body() -> None:
        app = App(tmp_path, "new", fake_services(), tmp_path / "prefs", link=DEVICE_LINK)
        await app.start()
        screen = app.screen
        assert isinstance(screen, OnboardingView)
        assert screen.current_card() is screen.link_card
        assert screen.link_card.code_field.text() == CODE
        # forwarded later: the same card, refilled
        screen.link_card.code_field.clear()
        app.open_link(DEVICE_LINK)
        assert screen.link_card.code_field.text() == CODE
        await app.shutdown()

        client = FakeClient(display_name="Sam")
        populate(client, int(clock.time() * 1000))
        other = App(tmp_path / "b", "sam", fake_services(), tmp_path / "prefs-b")
        window = await other.open_main(client)  # type: ignore[arg-type]
        await wait_until(lambda: window.loaded)
        other.open_link(DEVICE_LINK)
        assert window.toast.isVisible()
        assert "add_contact" not in window.dialogs  # not mistaken for an invite link
        assert DEVICE_LINK_HERE.startswith("This code links a new computer")
        await other.shutdown()
        tasks.set_error_sink(None)

    run(body())


def test_every_control_of_the_new_screens_has_an_accessible_name(
    run: Any, tmp_path: Path, qtbot: Any
) -> None:
    from PySide6.QtWidgets import QAbstractButton, QLineEdit, QWidget

    from ui.views.devices import DevicesPanel

    client = account_client()
    client.add_device_now("Desktop", client_id="desk", verified=False)

    async def body() -> None:
        dialog = await waiting_dialog(client, qtbot)
        devices = DevicesPanel(client)  # type: ignore[arg-type]
        qtbot.addWidget(devices)
        devices.show()
        await wait_until(lambda: len(devices.rows) == 2)
        devices.rows[0].action.click()  # rename: the field and its buttons show
        view = onboarding(tmp_path, FakeClient(has_account=False), qtbot)
        for screen in (dialog, devices, view.link_card):
            assert screen.accessibleName() or screen is view.link_card
            for control in screen.findChildren(QWidget):
                if isinstance(control, QAbstractButton | QLineEdit) and not (
                    control.objectName().startswith("qt_")
                ):
                    assert control.accessibleName(), type(control).__name__
        dialog.reject()

    run(body())
