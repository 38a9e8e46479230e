"""New conversations and group details, with real clients on a real server.

A group is created from the dialog with a member; the details dialog adds a
member, removes one, mutes and archives, and leaves after the inline
confirmation. Direct conversations start from the contact list. Edge states
(empty contacts, errors, long RTL names) run on the fake client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from messenger.client import NotAllowedError
from tests.ui.conftest import wait_until
from tests.ui.fake_client import FakeClient
from tests.ui.test_contacts import account_id, address, eventually, people
from tests.ui.test_onboarding import RUN_SLOW, SLOW, no_keyring, stay_open  # noqa: F401 (fixtures)
from ui.bridge import Bridge
from ui.views.group import AddMembersDialog, GroupDetailsDialog
from ui.views.new_conversation import EMPTY, NewConversationDialog


@pytest.mark.usefixtures("no_keyring")
def test_group_create_add_remove_leave(run: Any, tmp_path: Path, qtbot: Any) -> None:
    async def body() -> None:
        async with people(tmp_path, "alice", "bob", "carol") as (alice, bob, carol):
            bob_id, carol_id = await account_id(bob), await account_id(carol)
            await alice.add_contact(await address(bob))
            await alice.add_contact(await address(carol))

            new = NewConversationDialog(alice)
            qtbot.addWidget(new)
            new.show()
            created: list[int] = []
            new.created.connect(created.append)
            await wait_until(lambda: new.direct_picker.list.count() == 2)
            new.group_mode.click()
            assert new.group_name.isVisible() and not new.start_button.isEnabled()
            new.group_name.setText("Climbing")
            new.group_picker.set_checked(bob_id)
            assert new.group_picker.checked() == [bob_id]
            new.start_button.click()
            await wait_until(lambda: bool(created), timeout=SLOW)
            cid = created[0]
            await eventually(lambda: _count(alice, cid, 2))
            assert [m.account_id for m in await alice.members(cid) if not m.is_me] == [bob_id]

            bridge = Bridge(alice)
            bridge.start()
            details = GroupDetailsDialog(alice, cid, bridge=bridge)
            qtbot.addWidget(details)
            details.show()
            await wait_until(lambda: details.view is not None)
            assert details.title.text() == "Climbing"
            # bob's handle, or the name he announces once he has joined
            assert [n.casefold() for n in details.member_names()] == ["you", "bob"]
            assert details.subtitle.text() == "Group · 2 members"
            # The details name the group's cipher suite (issue 14: the GUI shows it).
            assert details.encryption.text().endswith(
                "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519"  # every member supports it
            )
            assert details.encryption.isVisibleTo(details)

            # Add carol through the picker dialog the "Add members…" button opens.
            picker = AddMembersDialog(alice, [bob_id, await account_id(alice)], details)
            picker.chosen.connect(details._add)
            await wait_until(lambda: picker.picker.list.count() == 1)
            picker.picker.set_checked(carol_id)
            picker.add_button.click()
            await eventually(lambda: _count(alice, cid, 3))
            await wait_until(lambda: len(details.member_names()) == 3, timeout=SLOW)

            # Rename, mute, archive.
            details.name_field.setText("Climbing club")
            details.rename_button.click()
            await wait_until(lambda: details.title.text() == "Climbing club", timeout=SLOW)
            details.mute_toggle.click()
            await wait_until(lambda: details.view is not None and details.view.muted)
            details.archive_toggle.click()
            await wait_until(lambda: details.view is not None and details.view.archived)
            assert [c.id for c in await alice.conversations(archived=True)] == [cid]

            # Remove bob: select him, then Remove.
            for row in range(details.members.count()):
                if details.members.item(row).data(Qt.ItemDataRole.UserRole) == bob_id:
                    details.members.setCurrentRow(row)
            assert details.remove_button.isEnabled()
            details.remove_button.click()
            await eventually(lambda: _count(alice, cid, 2))
            await wait_until(
                lambda: "bob" not in [n.casefold() for n in details.member_names()], timeout=30
            )

            # Leave: the first click only asks.
            left: list[int] = []
            details.left.connect(left.append)
            details.leave_button.click()
            assert details.confirm.isVisible() and "Climbing club" in details.confirm_text.text()
            details.confirm_cancel.click()
            assert not details.confirm.isVisible() and not left
            details.leave_button.click()
            details.confirm_leave.click()
            await wait_until(lambda: bool(left), timeout=SLOW)
            assert left == [cid]

            async def gone() -> bool:
                return not (await alice.conversation(cid)).active

            await eventually(gone)
            await bridge.stop()

    run(body(), timeout=RUN_SLOW)


async def _count(client: Any, cid: int, n: int) -> bool:
    return len(await client.members(cid)) == n


@pytest.mark.usefixtures("no_keyring")
def test_direct_conversation_from_the_list(run: Any, tmp_path: Path, qtbot: Any) -> None:
    async def body() -> None:
        async with people(tmp_path, "alice", "bob") as (alice, bob):
            await alice.add_contact(await address(bob))
            dialog = NewConversationDialog(alice)
            qtbot.addWidget(dialog)
            dialog.show()
            created: list[int] = []
            dialog.created.connect(created.append)
            await wait_until(lambda: dialog.direct_picker.list.count() == 1)
            dialog.direct_picker.filter.setText("bo")
            assert dialog.direct_picker.current() == await account_id(bob)
            dialog.direct_picker.filter.returnPressed.emit()  # nothing: Enter is the button
            dialog.start_button.click()
            await wait_until(lambda: bool(created), timeout=SLOW)
            assert [c.id for c in await alice.conversations()] == created

    run(body(), timeout=RUN_SLOW)


def test_empty_contacts_offer_to_add_one(run: Any, qtbot: Any) -> None:
    client = FakeClient()
    dialog = NewConversationDialog(client)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()

    async def body() -> None:
        await wait_until(lambda: client.calls["contacts"] == 1 and not dialog.working())
        assert dialog.direct_picker.empty.isVisible()
        assert dialog.direct_picker.empty.text() == EMPTY
        dialog.start_button.click()
        assert dialog.error_text() == "Choose a contact, or add one first."
        assert dialog.add_contact_button.isVisible()

    run(body())


def test_errors_and_rtl_names_with_the_fake(run: Any, qtbot: Any) -> None:
    client = FakeClient()
    rtl = "مجموعة الأصدقاء الطويلة جدا 🎉" * 4
    client.add_contact_now("acct-b", "Bob", verified=True)
    conversation = client.add_conversation_now(rtl, ["acct-b"])
    client.fail("rename", NotAllowedError("no", user_message="You cannot rename this group."))
    dialog = GroupDetailsDialog(client, conversation.id)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()

    async def body() -> None:
        await wait_until(lambda: dialog.view is not None)
        assert dialog.title.text() == rtl
        assert "Bob  ✓" in dialog.member_names()
        dialog.name_field.setText("New")
        dialog.rename_button.click()
        await wait_until(lambda: dialog.error_text() != "")
        assert dialog.error_text() == "You cannot rename this group."
        assert dialog.title.text() == rtl

    run(body())
