"""Contact device notes (docs/devices.md §4): "Alice added a device", on the store.

:func:`~messenger.client.sync.effects.apply_transition` writes one note per
contact that stays in the group with a device more (or fewer): once per
conversation per change, never for this account's own devices, and not
when a whole account joins or leaves (those have their own notes). Notes
are kinds and account IDs; the sentence is worded when shown.
"""

from __future__ import annotations

import json
import os

from messenger.client import MemberView, Note, NoteKind, NoteView, note_text
from messenger.client.groups import GroupMember
from messenger.client.models import message_views
from messenger.client.store import ConversationKind, Store
from messenger.client.sync.effects import Actor, apply_transition

ME = Actor("acct-me", "client-me-1", lambda: os.urandom(16))


def member(account: str, client: str, leaf: int) -> GroupMember:
    return GroupMember(leaf, account, client, os.urandom(32), f"queue-{client}")


def transition(
    store: Store,
    conversation_id: int,
    before: list[GroupMember],
    after: list[GroupMember],
    *,
    committer: GroupMember | None = None,
) -> None:
    conversation = store.conversations.get(conversation_id)
    assert conversation is not None
    apply_transition(
        store,
        conversation,
        before=before,
        after=after,
        info_before=None,
        info_after=None,
        committer=None if committer is None else committer.identity,
        leavers=frozenset(),
        me=ME,
        now=1000,
        epoch=2,
    )


def device_notes(store: Store, conversation_id: int) -> list[tuple[NoteKind, tuple[str, ...]]]:
    found = []
    for message in store.messages.latest(conversation_id, 50):
        note = message.note
        if note is not None and note.kind in (NoteKind.DEVICE_ADDED, NoteKind.DEVICE_REMOVED):
            found.append((note.kind, note.accounts))
    return found


def test_a_contact_linking_and_removing_a_device_gets_a_note_each(store: Store) -> None:
    chat = store.conversations.create(
        b"g" * 32, ConversationKind.DIRECT, now=1, peer_account_id="acct-alice"
    )
    me1 = member("acct-me", "client-me-1", 0)
    laptop = member("acct-alice", "client-laptop", 1)
    desktop = member("acct-alice", "client-desktop", 2)
    transition(store, chat.id, [me1, laptop], [me1, laptop, desktop], committer=laptop)
    assert device_notes(store, chat.id) == [(NoteKind.DEVICE_ADDED, ("acct-alice",))]
    # A commit that changes nothing about devices writes no note.
    transition(store, chat.id, [me1, laptop, desktop], [me1, laptop, desktop])
    assert len(device_notes(store, chat.id)) == 1
    transition(store, chat.id, [me1, laptop, desktop], [me1, desktop], committer=desktop)
    assert sorted(device_notes(store, chat.id)) == [
        (NoteKind.DEVICE_ADDED, ("acct-alice",)),
        (NoteKind.DEVICE_REMOVED, ("acct-alice",)),
    ]
    # Read back: worded with the contact's name.
    store.contacts.upsert("acct-alice", now=1, display_name="Alice")
    views = message_views(store, store.messages.latest(chat.id, 50), ME.account_id)
    sentences = [v.message.body for v in views if v.note is not None]
    assert "Alice added a device" in sentences and "Alice removed a device" in sentences


def test_own_devices_and_whole_accounts_get_no_device_note(store: Store) -> None:
    group = store.conversations.create(b"h" * 32, ConversationKind.GROUP, now=1, title="Trip")
    me1, me2 = member("acct-me", "client-me-1", 0), member("acct-me", "client-me-2", 3)
    bob = member("acct-bob", "client-bob", 1)
    carol1, carol2 = member("acct-carol", "c1", 2), member("acct-carol", "c2", 4)
    transition(store, group.id, [me1, bob], [me1, bob, me2])  # this account linked a device
    transition(store, group.id, [me1, bob, me2], [me1, bob, me2, carol1, carol2])  # Carol joins
    assert device_notes(store, group.id) == []
    # Two contacts change devices in one commit: one note each.
    bob2 = member("acct-bob", "client-bob-2", 5)
    transition(
        store,
        group.id,
        [me1, bob, me2, carol1, carol2],
        [me1, bob, bob2, me2, carol1],
    )
    assert sorted(device_notes(store, group.id)) == [
        (NoteKind.DEVICE_ADDED, ("acct-bob",)),
        (NoteKind.DEVICE_REMOVED, ("acct-carol",)),
    ]


def test_the_new_kinds_round_trip_and_read_well() -> None:
    for kind in (NoteKind.DEVICE_ADDED, NoteKind.DEVICE_REMOVED, NoteKind.REJOIN_FAILED):
        note = Note(kind, actor="acct-alice", accounts=("acct-alice",))
        assert Note.from_row(kind.value, note.to_json()) == note
        assert json.loads(note.to_json())["accounts"] == ["acct-alice"]
    alice = MemberView("acct-alice", "Alice", False)
    me = MemberView("acct-me", "You", True)
    assert note_text(NoteView(NoteKind.DEVICE_ADDED, members=(alice,))) == "Alice added a device"
    assert note_text(NoteView(NoteKind.DEVICE_REMOVED, members=(alice,))) == (
        "Alice removed a device"
    )
    assert note_text(NoteView(NoteKind.DEVICE_ADDED, members=(me,))) == "You linked a device"
    assert note_text(NoteView(NoteKind.REJOIN_FAILED)).startswith("This device could not rejoin")
