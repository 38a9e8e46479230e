"""An image sent from the composer shows inline on the other side: real clients, real server.

Alice attaches a photo in her window's composer with a caption and sends
it; Bob's window shows the file message with the thumbnail, the client
downloads it (images are fetched at once), and his timeline then paints
the full image decoded from ``attachment_bytes``. Alice's own copy is
readable at once too. Both sides run the real ``MessengerClient`` on a
local server on 127.0.0.1 (docs/attachments.md §4, §6).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from messenger.client import MessageKind, TransferState
from tests.ui.conftest import wait_until
from tests.ui.fake_client import scenic_image
from tests.ui.test_contacts import account_id, people
from tests.ui.test_onboarding import RUN_SLOW, SLOW, no_keyring  # noqa: F401 (fixtures)
from ui import tasks
from ui.bridge import Bridge
from ui.platform import fake_services
from ui.preferences import PreferencesStore
from ui.views.main_window import MainWindow

pytestmark = [
    pytest.mark.usefixtures("loop", "no_keyring"),
    pytest.mark.qt_log_ignore("propagateSizeHints", "does not support raise"),
]


async def window_for(client: Any, root: Path) -> MainWindow:
    bridge = Bridge(client)
    bridge.start()
    window = MainWindow(client, bridge, PreferencesStore(root), fake_services())
    window.resize(1200, 760)
    window.show()
    await wait_until(lambda: window.loaded, timeout=SLOW)
    return window


def test_an_image_sent_from_the_composer_shows_inline_on_the_other_side(
    run: Any, tmp_path: Path
) -> None:
    async def body() -> None:
        async with people(tmp_path, "alice", "bob") as (alice, bob):
            bob_id = (await alice.add_contact("bob")).account_id  # the handle gives the token
            assert bob_id == await account_id(bob)
            chat = await alice.create_conversation(bob_id)
            a_window = await window_for(alice, tmp_path / "a-prefs")
            b_window = await window_for(bob, tmp_path / "b-prefs")
            try:
                await wait_until(lambda: a_window.list_model.row_of(chat.id) >= 0, timeout=SLOW)
                await a_window.show_conversation(chat.id)
                photo = tmp_path / "lake.png"
                photo.write_bytes(scenic_image(900, 600))
                composer = a_window.pane.composer
                assert composer.add_paths([photo]) == 1
                composer.field.setPlainText("The lake this morning")
                composer.submit()

                # Alice's own copy: in her timeline at once, readable once uploaded
                def own_file() -> Any:
                    views = [
                        v for v in a_window.pane.model.views() if v.message.kind is MessageKind.FILE
                    ]
                    return views[-1] if views else None

                await wait_until(lambda: own_file() is not None, timeout=SLOW)
                await wait_until(
                    lambda: own_file().attachment.state is TransferState.SENT, timeout=SLOW
                )

                # Bob: the conversation appears, the image arrives and is fetched
                await wait_until(lambda: b_window.list_model.rowCount() >= 1, timeout=SLOW)
                b_chat = b_window.list_model.ids()[0]
                await b_window.show_conversation(b_chat)

                def bobs_file() -> Any:
                    views = [
                        v for v in b_window.pane.model.views() if v.message.kind is MessageKind.FILE
                    ]
                    return views[-1] if views else None

                await wait_until(lambda: bobs_file() is not None, timeout=SLOW)
                received = bobs_file()
                assert received.message.body == "The lake this morning"
                attachment = received.attachment
                assert attachment.name == "lake.png" and attachment.is_image
                assert (attachment.width, attachment.height) == (900, 600)
                assert attachment.thumbnail  # shown before the download completes
                timeline = b_window.pane.timeline
                images = timeline.bubbles.images
                await wait_until(
                    lambda: bobs_file().attachment.state is TransferState.DOWNLOADED,
                    timeout=SLOW,
                )
                timeline.viewport().repaint()
                await wait_until(lambda: images._full.get(bobs_file().id) is not None, timeout=SLOW)
                index = b_window.pane.model.index(b_window.pane.model.row_of(bobs_file().id))
                layout = timeline.bubbles.layout_for(index)
                assert layout is not None and layout.attachment is not None
                assert layout.attachment.kind == "image"
                full = images._full[bobs_file().id]
                assert full.width() >= 320  # the full image, not the 320 px thumbnail scaled
                spoken = index.data(Qt.ItemDataRole.AccessibleTextRole)
                assert "lake.png, image, " in spoken and "downloaded" in spoken
            finally:
                a_window.quit()
                b_window.quit()
                tasks.set_error_sink(None)

    run(body(), timeout=RUN_SLOW)
