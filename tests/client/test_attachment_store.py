"""The ``attachments`` table as the transfer queue, and its files (docs/attachments.md §4)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from messenger.client.attachments.files import (
    attachment_file,
    attachments_dir,
    clear_open_dir,
    new_local_file,
    open_dir,
    remove_attachment_files,
)
from messenger.client.store import MessageKind, Store
from messenger.client.store.attachments import Attachment, TransferState

from .helpers import add_text, direct_conversation


def file_message(store: Store, state: TransferState, *, at: int = 0) -> Attachment:
    conversation = direct_conversation(store)
    message = add_text(store, conversation.id, "caption", kind=MessageKind.FILE)
    return store.attachments.add(
        message.id,
        blob_id=b"b" * 16,
        access=b"a" * 32,
        key=b"k" * 32,
        digest=b"d" * 32,
        size=1234,
        media_type="image/png",
        name="holiday.png",
        thumbnail=b"jpeg",
        state=state,
        now=at,
    )


def test_round_trip_and_no_secret_in_repr(store: Store) -> None:
    added = file_message(store, TransferState.AVAILABLE)
    assert store.attachments.get(added.message_id) == added
    shown = repr(added)
    for secret in ("kkkk", "aaaa", "holiday", "jpeg"):
        assert secret not in shown
    assert added.thumbnail == b"jpeg" and not added.upload


def test_due_is_active_and_due_only(store: Store) -> None:
    waiting = file_message(store, TransferState.DOWNLOADING, at=5_000)
    now = file_message(store, TransferState.UPLOADING, at=1_000)
    file_message(store, TransferState.AVAILABLE, at=0)
    file_message(store, TransferState.SENT, at=0)
    assert [a.message_id for a in store.attachments.due(now=2_000)] == [now.message_id]
    assert store.attachments.next_attempt_at() == 1_000
    assert store.attachments.next_attempt_at(exclude=[now.message_id]) == 5_000
    assert [a.message_id for a in store.attachments.due(now=9_000)] == [
        now.message_id,
        waiting.message_id,
    ]


def test_update_only_from_expected_states(store: Store) -> None:
    row = file_message(store, TransferState.DOWNLOADING)
    store.attachments.update(row.message_id, now=1, local_file=new_local_file(), done=10)
    assert (
        store.attachments.update(
            row.message_id, now=2, state=TransferState.FAILED, expect=(TransferState.UPLOADING,)
        )
        is None
    )
    cleared = store.attachments.update(
        row.message_id,
        now=3,
        state=TransferState.AVAILABLE,
        clear_local_file=True,
        error="why",
        expect=(TransferState.DOWNLOADING,),
    )
    assert cleared is not None and cleared.local_file is None and cleared.error == "why"
    failed = store.attachments.record_failure(row.message_id, error="x", next_attempt_at=9, now=4)
    assert failed is not None and failed.attempts == 1 and failed.next_attempt_at == 9


def test_rows_go_with_their_message(store: Store) -> None:
    row = file_message(store, TransferState.SENT)
    assert store.messages.remove(row.message_id)
    assert store.attachments.get(row.message_id) is None


def test_only_our_file_names_become_paths(tmp_path: Path) -> None:
    name = new_local_file()
    assert attachment_file(tmp_path, name) == tmp_path / "attachments" / name
    for bad in ("../store.db", "x.blob", name.upper(), f"{name}/../../x", "", name + "\n"):
        with pytest.raises(ValueError):
            attachment_file(tmp_path, bad)
    folder = attachments_dir(tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (folder / name).write_bytes(b"x")
    outside = tmp_path / "store.db"
    outside.write_bytes(b"keep")
    remove_attachment_files(tmp_path, [name, "../store.db", "missing.blob"])
    assert not (folder / name).exists() and outside.read_bytes() == b"keep"


def test_open_dir_is_private_and_emptied(tmp_path: Path) -> None:
    folder = open_dir(tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (folder / "opened.txt").write_text("plain")
    clear_open_dir(tmp_path)
    assert not folder.exists()
    clear_open_dir(tmp_path)  # nothing to clear: fine
