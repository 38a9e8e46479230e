"""The history snapshot of a link: export, import by group, no duplicates, bad input."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger.client import LinkFailedError, Profiles
from messenger.client.linking.history import export_history, import_history
from messenger.client.store import Keychain, MessageKind, MessageStatus, Store

from .helpers import FAST_KDF, ME, PASSPHRASE, add_text, direct_conversation, new_uid


@pytest.fixture
def other(tmp_path: Path, keychain: Keychain) -> Iterator[Store]:
    """The new device's store."""
    profile = Profiles(tmp_path / "other").create("desktop")
    with Store.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF) as s:
        yield s


def _timeline(store: Store, conversation_id: int) -> list[tuple[bytes, str | None, str]]:
    rows = store.db.query(
        "SELECT uid, body, status FROM messages WHERE conversation_id = ? ORDER BY id",
        (conversation_id,),
    )
    return [(bytes(u), b, s) for u, b, s in rows]


def test_history_is_imported_into_the_conversation_of_its_group(store: Store, other: Store) -> None:
    group = new_uid()
    here = direct_conversation(store, group_id=group)
    first = add_text(store, here.id, "hello", at=1_000)
    add_text(store, here.id, "mine", sender=ME, at=2_000, status=MessageStatus.PENDING)
    add_text(
        store,
        here.id,
        "a reply",
        at=3_000,
        kind=MessageKind.REPLY,
        reply_to_uid=first.uid,
    )
    store.reactions.add(first.id, ME, "👍", at=3_500)
    store.read_markers.mark_read(here.id, ME, first.id, at=4_000)
    lost = direct_conversation(store, "acct-nobody")  # no conversation on the new device
    add_text(store, lost.id, "not for the new device", sender="acct-nobody")

    there = direct_conversation(other, group_id=group)
    joined = add_text(other, there.id, "arrived after the Welcome", at=9_000)
    counts = import_history(other, export_history(store), {group})

    assert (counts.conversations, counts.messages) == (1, 3)
    timeline = _timeline(other, there.id)
    # The history comes before what arrived since the join, in its own order.
    assert [body for _, body, _ in timeline] == [
        "hello",
        "mine",
        "a reply",
        "arrived after the Welcome",
    ]
    assert timeline[1][2] == MessageStatus.SENT.value  # the creator's outbox delivers it
    assert timeline[3][0] == joined.uid
    assert other.db.query_value("SELECT count(*) FROM messages") == 4  # nothing of `lost`
    marker = other.read_markers.get(there.id, ME)
    assert marker is not None
    reactions = other.reactions.for_message(timeline_ids(other, there.id)[0])
    assert [(r.account_id, r.emoji) for r in reactions] == [(ME, "👍")]
    assert other.messages.get(marker.message_id).uid == first.uid  # type: ignore[union-attr]
    assert len(other.messages.search("hello")) == 1  # indexed for search


def timeline_ids(store: Store, conversation_id: int) -> list[int]:
    rows = store.db.query(
        "SELECT id FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
    )
    return [int(row[0]) for row in rows]


def test_a_message_is_never_stored_twice(store: Store, other: Store) -> None:
    group = new_uid()
    here = direct_conversation(store, group_id=group)
    message = add_text(store, here.id, "once")
    there = direct_conversation(other, group_id=group)
    other.messages.add(
        there.id,
        uid=message.uid,
        sender_account_id=message.sender_account_id,
        sender_client_id=message.sender_client_id,
        outgoing=False,
        body="once",
        sent_at=message.sent_at,
        received_at=message.received_at,
    )
    snapshot = export_history(store)
    assert import_history(other, snapshot).messages == 0
    assert import_history(other, snapshot).messages == 0
    assert other.messages.count(there.id) == 1


def _snapshot(document: object) -> bytes:
    return zlib.compress(json.dumps(document).encode())


@pytest.mark.parametrize(
    "snapshot",
    [
        b"not zlib",
        zlib.compress(b"not json"),
        zlib.compress(b"\xff\xfe"),
        _snapshot({"version": 2, "conversations": []}),
        _snapshot({"version": 1, "conversations": [{"group_id": "AAAA"}]}),
        zlib.compress(b"{}")[:-3],  # truncated
    ],
)
def test_malformed_snapshots_are_refused(store: Store, snapshot: bytes) -> None:
    with pytest.raises(LinkFailedError):
        import_history(store, snapshot)


def test_a_bad_message_imports_nothing(store: Store, other: Store) -> None:
    group = new_uid()
    here = direct_conversation(store, group_id=group)
    add_text(store, here.id, "good")
    add_text(store, here.id, "also good")
    there = direct_conversation(other, group_id=group)
    document = json.loads(zlib.decompress(export_history(store)))
    document["conversations"][0]["messages"][1][7] = "exploded"  # an unknown status
    with pytest.raises(LinkFailedError):
        import_history(other, _snapshot(document))
    assert other.messages.count(there.id) == 0
