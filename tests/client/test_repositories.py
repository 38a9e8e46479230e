"""Create, read, update and delete through every repository."""

from __future__ import annotations

import pytest

from messenger.client import DuplicateMessageError
from messenger.client.errors import ConstraintError
from messenger.client.store import (
    ConversationKind,
    Identity,
    MessageKind,
    MessageStatus,
    OutboxKind,
    Store,
)

from .helpers import ME, PEER, add_text, direct_conversation


def test_settings(store: Store) -> None:
    assert store.settings.get("sync.cursor") is None
    assert store.settings.get_int("sync.cursor") == 0
    store.settings.set("sync.cursor", 41)
    store.settings.set("sync.cursor", 42)
    store.settings.set("ui", {"theme": "dark", "sizes": [1, 2]})
    assert store.settings.get_int("sync.cursor") == 42
    assert store.settings.get("ui") == {"theme": "dark", "sizes": [1, 2]}
    assert store.settings.items() == {"sync.cursor": 42, "ui": {"theme": "dark", "sizes": [1, 2]}}
    store.settings.set("flag", True)
    assert store.settings.get_int("flag", -1) == -1
    assert store.settings.delete("ui") and not store.settings.delete("ui")
    assert store.settings.get("ui", "default") == "default"


def test_identity(store: Store) -> None:
    assert store.identity.get() is None
    assert not store.identity.set_handle("alice")
    identity = Identity(
        server_url="https://chat.example",
        account_id="acct",
        client_id="client",
        queue_id="queue",
        cipher_suite=1,
        signature_private_key=b"\x01" * 32,
        signature_public_key=b"\x02" * 32,
        credential=b"credential",
        created_at=5,
    )
    store.identity.save(identity)
    assert store.identity.get() == identity
    assert "\\x01" not in repr(identity)
    assert store.identity.set_handle("alice") and store.identity.set_display_name("Alice")
    saved = store.identity.get()
    assert saved is not None and (saved.handle, saved.display_name) == ("alice", "Alice")
    store.identity.save(identity)  # replaces, still one row
    assert store.db.query_value("SELECT count(*) FROM identity") == 1


def test_contacts(store: Store) -> None:
    bob = store.contacts.upsert("bob", handle="bob", now=1)
    assert (bob.handle, bob.display_name, bob.verified, bob.blocked) == ("bob", None, False, False)
    store.contacts.upsert("bob", display_name="Bob B.", now=2)
    bob2 = store.contacts.get("bob")
    assert bob2 is not None and (bob2.handle, bob2.display_name, bob2.updated_at) == (
        "bob",
        "Bob B.",
        2,
    )
    store.contacts.upsert("carol", display_name="alice-ish", now=3)
    assert [c.account_id for c in store.contacts.all()] == ["carol", "bob"]
    assert store.contacts.by_handle("bob") == store.contacts.get("bob")

    assert store.contacts.set_verified("bob", b"fingerprint", at=4)
    verified = store.contacts.get("bob")
    assert verified is not None and verified.verified and verified.verified_at == 4
    assert store.contacts.clear_verified("bob", now=5)
    cleared = store.contacts.get("bob")
    assert cleared is not None and not cleared.verified

    assert store.contacts.set_blocked("carol", True, now=6)
    assert [c.account_id for c in store.contacts.all(include_blocked=False)] == ["bob"]

    assert store.contacts.save_client("bob", "phone", b"k1", now=7)
    assert not store.contacts.save_client("bob", "phone", b"k1", now=8)
    assert store.contacts.save_client("bob", "phone", b"k2", now=9)  # key changed
    assert store.contacts.save_client("bob", "laptop", b"k3", now=10)
    assert [(c.client_id, c.signature_key) for c in store.contacts.clients("bob")] == [
        ("laptop", b"k3"),
        ("phone", b"k2"),
    ]
    assert store.contacts.remove_client("bob", "laptop")
    with pytest.raises(ConstraintError):  # a client needs its contact
        store.contacts.save_client("nobody", "c", b"k", now=1)

    assert store.contacts.delete("bob") and store.contacts.get("bob") is None
    assert store.contacts.clients("bob") == []
    assert not store.contacts.set_verified("bob", b"x", at=1)


def test_conversations_and_members(store: Store) -> None:
    direct = direct_conversation(store, "bob", group_id=b"g-direct")
    group = store.conversations.create(b"g-team", ConversationKind.GROUP, title="Team", now=2_000)
    assert direct.kind is ConversationKind.DIRECT and direct.peer_account_id == "bob"
    assert store.conversations.by_group(b"g-team") == group
    assert store.conversations.direct_with("bob") == direct
    assert store.conversations.direct_with("carol") is None
    with pytest.raises(ValueError):
        store.conversations.create(b"g-x", ConversationKind.DIRECT, now=1)
    with pytest.raises(ValueError):
        store.conversations.create(b"g-y", ConversationKind.GROUP, peer_account_id="bob", now=1)
    with pytest.raises(ConstraintError):
        store.conversations.create(b"g-team", ConversationKind.GROUP, now=1)

    assert [c.id for c in store.conversations.all()] == [group.id, direct.id]
    store.conversations.touch(direct.id, 3_000)
    store.conversations.touch(direct.id, 2_500)  # never back
    assert [c.id for c in store.conversations.all()] == [direct.id, group.id]
    got = store.conversations.get(direct.id)
    assert got is not None and got.last_activity_at == 3_000

    assert store.conversations.rename(group.id, "Team 2")
    assert store.conversations.set_muted(group.id, True)
    assert store.conversations.set_archived(group.id, True)
    assert [c.id for c in store.conversations.all(archived=True)] == [group.id]
    assert store.conversations.mark_left(direct.id, 4_000)
    assert not store.conversations.mark_left(direct.id, 5_000)
    assert store.conversations.direct_with("bob") is None
    updated = store.conversations.get(group.id)
    assert updated is not None and (updated.title, updated.muted, updated.archived) == (
        "Team 2",
        True,
        True,
    )

    assert store.conversations.add_member(group.id, "bob", joined_at=1)
    assert not store.conversations.add_member(group.id, "bob", joined_at=2)
    assert store.conversations.add_member(group.id, "carol", joined_at=3)
    assert [m.account_id for m in store.conversations.members(group.id)] == ["bob", "carol"]
    assert store.conversations.remove_member(group.id, "bob")
    assert [m.account_id for m in store.conversations.members(group.id)] == ["carol"]

    add_text(store, group.id, "bye")
    store.read_markers.mark_read(group.id, ME, 1, at=1)
    assert store.conversations.delete(group.id)
    assert store.conversations.get(group.id) is None
    assert store.db.query_value("SELECT count(*) FROM messages") == 0
    assert store.db.query_value("SELECT count(*) FROM conversation_members") == 0
    assert store.db.query_value("SELECT count(*) FROM read_markers") == 0


def test_messages(store: Store) -> None:
    conversation = direct_conversation(store)
    first = add_text(store, conversation.id, "first", at=5_000)
    assert (first.status, first.outgoing, first.kind) == (
        MessageStatus.RECEIVED,
        False,
        MessageKind.TEXT,
    )
    mine = add_text(store, conversation.id, "mine", sender=ME, at=6_000)
    assert mine.status is MessageStatus.PENDING and mine.outgoing
    reply = add_text(
        store, conversation.id, "re: first", kind=MessageKind.REPLY, reply_to_uid=first.uid
    )
    assert store.messages.by_uid(conversation.id, reply.reply_to_uid or b"") == first
    with pytest.raises(ValueError):
        add_text(store, conversation.id, "no target", kind=MessageKind.REPLY)
    updated = store.conversations.get(conversation.id)
    assert updated is not None and updated.last_activity_at == 6_000

    with pytest.raises(DuplicateMessageError):
        store.messages.add(
            conversation.id,
            uid=first.uid,
            sender_account_id=PEER,
            sender_client_id="c",
            outgoing=False,
            body="again",
            sent_at=1,
            received_at=1,
        )
    assert store.messages.count(conversation.id) == 3
    assert store.messages.get(first.id) == first

    assert store.messages.set_status(mine.id, MessageStatus.SENT)
    got = store.messages.get(mine.id)
    assert got is not None and got.status is MessageStatus.SENT

    # Only the sender edits; a deleted message stays deleted.
    assert (
        store.messages.edit(conversation.id, first.uid, editor_account_id=ME, body="x", at=1)
        is None
    )
    edited = store.messages.edit(
        conversation.id, first.uid, editor_account_id=PEER, body="first (edited)", at=7_000
    )
    assert edited is not None and (edited.body, edited.edited_at) == ("first (edited)", 7_000)

    store.reactions.add(first.id, ME, "👍", at=1)
    assert (
        store.messages.delete_for_everyone(conversation.id, first.uid, by_account_id=ME, at=1)
        is None
    )
    tombstone = store.messages.delete_for_everyone(
        conversation.id, first.uid, by_account_id=PEER, at=8_000
    )
    assert tombstone is not None and tombstone.deleted and tombstone.body is None
    assert store.reactions.for_message(first.id) == []
    assert (
        store.messages.edit(conversation.id, first.uid, editor_account_id=PEER, body="y", at=9)
        is None
    )

    assert store.messages.remove(mine.id) and store.messages.get(mine.id) is None
    assert not store.messages.remove(mine.id)


def test_latest_pages_backwards_in_order(store: Store) -> None:
    conversation = direct_conversation(store)
    other = direct_conversation(store, "someone-else")
    ids = []
    for i in range(120):
        ids.append(add_text(store, conversation.id, f"m{i}").id)
        add_text(store, other.id, f"other {i}")
    page = store.messages.latest(conversation.id, 50)
    assert [m.id for m in page] == ids[-50:]
    older = store.messages.latest(conversation.id, 50, before_id=page[0].id)
    assert [m.id for m in older] == ids[-100:-50]
    oldest = store.messages.latest(conversation.id, 50, before_id=older[0].id)
    assert [m.id for m in oldest] == ids[:20]
    assert [m.id for m in store.messages.after(conversation.id, ids[9], 5)] == ids[10:15]


def test_latest_is_an_index_range_scan(store: Store) -> None:
    plan = store.db.query(
        "EXPLAIN QUERY PLAN SELECT * FROM messages WHERE conversation_id = ? AND id < ? "
        "ORDER BY id DESC LIMIT ?",
        (1, 2**63 - 1, 50),
    )
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX messages_by_conversation" in details or "USING COVERING INDEX" in details
    assert "TEMP B-TREE" not in details


def test_reactions(store: Store) -> None:
    conversation = direct_conversation(store)
    a = add_text(store, conversation.id, "a")
    b = add_text(store, conversation.id, "b")
    assert store.reactions.add(a.id, ME, "👍", at=1)
    assert not store.reactions.add(a.id, ME, "👍", at=2)
    assert store.reactions.add(a.id, PEER, "👍", at=3)
    assert store.reactions.add(a.id, ME, "❤️", at=4)
    assert store.reactions.add(b.id, PEER, "😂", at=5)
    assert [(r.account_id, r.emoji) for r in store.reactions.for_message(a.id)] == [
        (ME, "👍"),
        (PEER, "👍"),
        (ME, "❤️"),
    ]
    grouped = store.reactions.for_messages([a.id, b.id, 999])
    assert sorted(grouped) == [a.id, b.id]
    assert store.reactions.remove(a.id, ME, "👍") and not store.reactions.remove(a.id, ME, "👍")
    with pytest.raises(ValueError):
        store.reactions.add(a.id, ME, "", at=1)
    store.messages.remove(b.id)
    assert store.reactions.for_message(b.id) == []


def test_read_markers_and_unread_count(store: Store) -> None:
    conversation = direct_conversation(store)
    messages = [add_text(store, conversation.id, f"m{i}") for i in range(5)]
    add_text(store, conversation.id, "mine", sender=ME)
    assert store.read_markers.unread_count(conversation.id, ME) == 5
    assert store.read_markers.mark_read(conversation.id, ME, messages[2].id, at=10)
    assert store.read_markers.unread_count(conversation.id, ME) == 2
    assert not store.read_markers.mark_read(
        conversation.id, ME, messages[1].id, at=11
    )  # never back
    marker = store.read_markers.get(conversation.id, ME)
    assert marker is not None and (marker.message_id, marker.read_at) == (messages[2].id, 10)
    store.read_markers.mark_read(conversation.id, PEER, messages[4].id, at=12)
    assert [m.account_id for m in store.read_markers.for_conversation(conversation.id)] == [
        ME,
        PEER,
    ]
    store.messages.delete_for_everyone(conversation.id, messages[4].uid, by_account_id=PEER, at=13)
    assert store.read_markers.unread_count(conversation.id, ME) == 1


def test_unread_counts_scan_only_the_countable_rows(store: Store) -> None:
    """The count runs for every arriving message: it must be an index-only scan
    of the partial index, not a table lookup per unread message."""
    conversation = direct_conversation(store)
    add_text(store, conversation.id, "m")
    sql = (
        "SELECT count(*) FROM messages WHERE conversation_id = ? AND id > coalesce("
        "(SELECT message_id FROM read_markers WHERE conversation_id = ? "
        "AND account_id = ?), 0) AND outgoing = 0 AND deleted_at IS NULL "
        "AND kind != 'system'"
    )
    plan = " ".join(
        str(row[-1])
        for row in store.db.query(
            "EXPLAIN QUERY PLAN " + sql, (conversation.id, conversation.id, ME)
        )
    )
    assert "COVERING INDEX messages_unread" in plan, plan


def test_mls_groups(store: Store) -> None:
    assert store.groups.get(b"g1") is None and store.groups.epoch(b"g1") is None
    store.groups.save(b"g1", 0, b"s0", now=1)
    store.groups.save(b"g2", 5, b"t5", now=1)
    store.groups.save(b"g1", 1, b"s1", now=2)
    group = store.groups.get(b"g1")
    assert group is not None and (group.epoch, group.state, group.updated_at) == (1, b"s1", 2)
    assert "s1" not in repr(group)
    assert store.groups.group_ids() == [b"g1", b"g2"]
    with pytest.raises(ValueError):
        store.groups.save(b"g3", -1, b"", now=1)
    assert store.groups.delete(b"g2") and not store.groups.delete(b"g2")


def test_stuck_groups_and_their_branches(store: Store) -> None:
    store.groups.save(b"g1", 3, b"s3", now=1)
    store.groups.save(b"g2", 0, b"t0", now=1)
    assert store.groups.stuck_at(b"g1") is None and store.groups.stuck_at(b"nope") is None
    assert store.groups.mark_stuck(b"g1", 50) and not store.groups.mark_stuck(b"g1", 60)
    assert store.groups.stuck_at(b"g1") == 50  # the first time it was found
    assert store.groups.stuck_groups() == {b"g1"}
    assert store.groups.leaf_rotations_due(10**15) == [b"g2"]  # no self-update to a stuck one
    store.groups.save(b"g1", 3, b"s3'", now=2)  # the same epoch: still stuck
    assert store.groups.stuck_at(b"g1") == 50
    store.groups.set_branch_of(b"g2", b"g1")
    assert store.groups.branches_of(b"g1") == [b"g2"] and store.groups.branches_of(b"g2") == []
    store.groups.save(b"g1", 4, b"s4", now=3)  # moved on (rejoined): not stuck any more
    assert store.groups.stuck_at(b"g1") is None


def test_key_packages(store: Store) -> None:
    store.key_packages.add(b"ref1", b"bundle1", created_at=1, expires_at=100)
    store.key_packages.add(b"ref2", b"bundle2", created_at=1, expires_at=50)
    store.key_packages.add(b"lr", b"last", created_at=1, expires_at=100, last_resort=True)
    with pytest.raises(ConstraintError):
        store.key_packages.add(b"ref1", b"again", created_at=1, expires_at=100)
    secret = store.key_packages.get(b"ref1")
    assert secret is not None and secret.bundle == b"bundle1" and not secret.last_resort
    assert "bundle1" not in repr(secret)
    assert store.key_packages.count(now=10) == 2
    assert store.key_packages.count(now=60) == 1
    assert store.key_packages.count(now=10, last_resort=True) == 1
    assert [k.ref for k in store.key_packages.not_uploaded()] == [b"ref1", b"ref2", b"lr"]
    store.key_packages.mark_uploaded([b"ref1", b"lr"], at=5)
    assert [k.ref for k in store.key_packages.not_uploaded()] == [b"ref2"]
    assert store.key_packages.delete_expired(now=60) == 1
    assert store.key_packages.delete(b"ref1") and store.key_packages.get(b"ref1") is None


def test_outbox(store: Store) -> None:
    conversation = direct_conversation(store)
    message = add_text(store, conversation.id, "to send", sender=ME)
    first = store.outbox.enqueue(
        OutboxKind.MESSAGE, b"payload-1", group_id=b"g", message_id=message.id, now=100
    )
    second = store.outbox.enqueue(OutboxKind.COMMIT, b"payload-2", group_id=b"g", now=100)
    assert len(first.idempotency_key) == 16 and first.idempotency_key != second.idempotency_key
    assert "payload-1" not in repr(first)
    with pytest.raises(ConstraintError):
        store.outbox.enqueue(OutboxKind.MESSAGE, b"x", idempotency_key=first.idempotency_key, now=1)
    assert [i.id for i in store.outbox.due(now=100)] == [first.id, second.id]
    assert store.outbox.due(now=99) == []

    failed = store.outbox.record_failure(first.id, error="timeout", next_attempt_at=200)
    assert failed is not None and (failed.attempts, failed.last_error) == (1, "timeout")
    assert [i.id for i in store.outbox.due(now=150)] == [second.id]
    assert store.outbox.next_attempt_at() == 100
    assert store.outbox.remove(second.id)
    assert store.outbox.next_attempt_at() == 200
    assert [i.kind for i in store.outbox.for_group(b"g")] == [OutboxKind.MESSAGE]
    assert store.outbox.record_failure(999, error="x", next_attempt_at=1) is None

    # Deleting the message keeps the send (it may already be on its way).
    store.messages.remove(message.id)
    item = store.outbox.get(first.id)
    assert item is not None and item.message_id is None
    assert store.outbox.count() == 1
    assert store.outbox.remove(first.id) and store.outbox.next_attempt_at() is None


def test_outbox_lane_moves_to_the_group_a_conversation_continues_in(store: Store) -> None:
    """A ReInit (RFC 9420 §11.2): the old group's items go to the new lane, unbuilt."""
    create = store.outbox.enqueue(OutboxKind.CREATE_GROUP, b"register", group_id=b"old", now=1)
    message = store.outbox.enqueue(
        OutboxKind.MESSAGE, b"", group_id=b"old", content=b"hello", intent='{"op":"send"}', now=1
    )
    commit = store.outbox.enqueue(
        OutboxKind.COMMIT, b"", group_id=b"old", intent='{"op":"rename"}', now=1
    )
    store.outbox.set_built(
        commit.id, payload=b"req", epoch=4, message_hash=b"h", pending_state=b"s"
    )
    store.outbox.record_failure(commit.id, error="moving", next_attempt_at=900)
    other = store.outbox.enqueue(OutboxKind.MESSAGE, b"", group_id=b"other", now=1)

    assert store.outbox.move_lane(b"old", b"new", now=50) == 2
    assert store.outbox.for_group(b"old") == [] and store.outbox.get(create.id) is None
    moved = store.outbox.for_group(b"new")
    assert [i.id for i in moved] == [message.id, commit.id]  # in their order
    built = moved[1]
    assert (built.payload, built.epoch, built.message_hash, built.pending_state) == (
        b"",
        None,
        None,
        None,
    )
    assert (built.intent, built.next_attempt_at, built.attempts) == ('{"op":"rename"}', 50, 1)
    assert moved[0].content == b"hello" and moved[0].next_attempt_at == 1
    assert [i.id for i in store.outbox.for_group(b"other")] == [other.id]
