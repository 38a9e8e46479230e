"""Rejoin boxes (docs/metadata.md §2): the account's secret, handles, boxes and the due policy.

The derivations are checked against an independent HKDF (RFC 5869, written
out here with :mod:`hmac`) and AES-GCM, so a change of a label, of the
layout or of what the tag covers fails here; every way a box can be wrong
(another account, another group, a flipped bit, a cut or grown box) opens
to None without raising; and the due policy is checked on each branch,
also through the store's marks.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from messenger.client.errors import ConstraintError
from messenger.client.rejoin_boxes import (
    BOX_BYTES,
    REFRESH_AGE_MS,
    REFRESH_EPOCHS,
    UploadPolicy,
    box_due,
    handle,
    open_box,
    rejoin_secret,
    seal_box,
)
from messenger.client.store import Database, DatabaseKey, Store
from messenger.client.store.groups import GroupStateRepository, RejoinMarks
from messenger.client.store.migrations import migrate

GROUP = b"\x01" * 16
OTHER_GROUP = b"\x02" * 16
TOKEN = bytes(range(32))


def _account_key() -> bytes:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def _hkdf_sha256(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 with no salt (a string of HashLen zeros), independent of the code under test."""
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


# -- derivations ------------------------------------------------------------------------


def test_the_secret_handle_and_box_follow_the_spec() -> None:
    private = _account_key()
    secret = rejoin_secret(private)
    assert secret == _hkdf_sha256(private, b"messenger rejoin secret v1")
    expected_handle = hmac.new(
        secret, b"messenger rejoin handle v1\x00" + GROUP, hashlib.sha256
    ).digest()
    assert handle(secret, GROUP) == expected_handle
    box = seal_box(secret, GROUP, 7, TOKEN)
    assert len(box) == BOX_BYTES == 68
    key = _hkdf_sha256(secret, b"messenger rejoin box v1\x00" + GROUP)
    plain = AESGCM(key).decrypt(box[:12], box[12:], expected_handle)
    assert plain == (7).to_bytes(8, "big") + TOKEN


def test_a_box_round_trips_with_a_fresh_nonce_each_time() -> None:
    secret = rejoin_secret(_account_key())
    first = seal_box(secret, GROUP, 2**40 + 3, TOKEN)
    second = seal_box(secret, GROUP, 2**40 + 3, TOKEN)
    assert first != second, "each box has a nonce of its own"
    assert open_box(secret, GROUP, first) == (2**40 + 3, TOKEN)
    assert open_box(secret, GROUP, second) == (2**40 + 3, TOKEN)
    assert open_box(secret, GROUP, seal_box(secret, GROUP, 0, TOKEN)) == (0, TOKEN)


def test_a_box_of_another_account_or_group_does_not_open() -> None:
    mine, theirs = rejoin_secret(_account_key()), rejoin_secret(_account_key())
    box = seal_box(mine, GROUP, 5, TOKEN)
    assert open_box(theirs, GROUP, box) is None
    assert open_box(mine, OTHER_GROUP, box) is None
    assert open_box(mine, GROUP, box) == (5, TOKEN)


def test_a_changed_cut_or_grown_box_does_not_open() -> None:
    secret = rejoin_secret(_account_key())
    box = seal_box(secret, GROUP, 5, TOKEN)
    for index in range(len(box)):  # every byte: nonce, ciphertext and tag
        tampered = bytearray(box)
        tampered[index] ^= 0x01
        assert open_box(secret, GROUP, bytes(tampered)) is None, f"byte {index}"
    for length in (0, 1, 12, 28, 40, BOX_BYTES - 1):
        assert open_box(secret, GROUP, box[:length]) is None, f"cut to {length}"
    assert open_box(secret, GROUP, box + b"\x00") is None
    assert open_box(secret, GROUP, os.urandom(BOX_BYTES)) is None
    assert open_box(secret, GROUP, os.urandom(256)) is None


def test_handles_differ_per_group_and_per_account() -> None:
    mine, theirs = rejoin_secret(_account_key()), rejoin_secret(_account_key())
    assert mine != theirs and len(mine) == 32
    handles = {handle(s, g) for s in (mine, theirs) for g in (GROUP, OTHER_GROUP)}
    assert len(handles) == 4
    assert all(len(h) == 32 for h in handles)
    assert handle(mine, GROUP) == handle(mine, GROUP), "a device finds its account's box again"
    assert rejoin_secret(b"\x07" * 32) == rejoin_secret(b"\x07" * 32)


def test_a_box_takes_only_a_send_token_and_a_64_bit_epoch() -> None:
    secret = rejoin_secret(_account_key())
    with pytest.raises(ValueError):
        seal_box(secret, GROUP, 1, TOKEN[:31])
    with pytest.raises(ValueError):
        seal_box(secret, GROUP, -1, TOKEN)
    with pytest.raises(ValueError):
        seal_box(secret, GROUP, 2**64, TOKEN)


# -- the due policy ------------------------------------------------------------------------


def _marks(epoch: int, box: int | None, removal: int | None) -> RejoinMarks:
    return RejoinMarks(GROUP, epoch, box, removal)


def test_a_box_never_uploaded_is_due() -> None:
    assert box_due(_marks(0, None, None))
    assert box_due(_marks(9, None, 4))


def test_a_box_from_before_the_last_removal_is_due() -> None:
    assert box_due(_marks(10, 8, 9))
    assert box_due(_marks(9, 8, 9))
    assert not box_due(_marks(10, 9, 9)), "uploaded in the removal's epoch"
    assert not box_due(_marks(10, 9, 3)), "uploaded after the removal"
    assert not box_due(_marks(10, 9, None))


def test_a_group_from_before_is_due_again_after_its_next_commit() -> None:
    # Migration 12 marks the next epoch as a removal: the commit that makes it
    # moves the group's state under its members' keys on the server.
    assert not box_due(_marks(7, 7, 8)), "not before the commit"
    assert box_due(_marks(8, 7, 8))


def test_a_box_refresh_epochs_old_is_due() -> None:
    assert REFRESH_EPOCHS == 64
    assert not box_due(_marks(5 + 63, 5, None))
    assert box_due(_marks(5 + 64, 5, None))
    assert box_due(_marks(5 + 200, 5, 2))


def test_a_box_written_60_days_ago_or_at_an_unknown_time_is_due() -> None:
    assert REFRESH_AGE_MS == 60 * 24 * 3600 * 1000
    now = 10**13
    fresh = RejoinMarks(GROUP, 5, 5, None, now - REFRESH_AGE_MS + 1)
    assert not box_due(fresh, now)
    assert box_due(RejoinMarks(GROUP, 5, 5, None, now - REFRESH_AGE_MS), now)
    assert box_due(RejoinMarks(GROUP, 5, 5, None, None), now), "uploaded by a version before"
    assert not box_due(RejoinMarks(GROUP, 5, 5, None, None)), "age is looked at only with a time"


def test_the_upload_delay_is_drawn_in_its_range() -> None:
    policy = UploadPolicy()
    assert (policy.min_delay, policy.max_delay) == (60.0, 600.0)
    delays = {policy.delay() for _ in range(200)}
    assert all(60.0 <= d <= 600.0 for d in delays)
    assert len(delays) > 100, "random, not fixed"
    with pytest.raises(ValueError):
        UploadPolicy(min_delay=5, max_delay=1)


# -- the marks in the store ------------------------------------------------------------------


def test_the_store_keeps_the_marks_and_they_only_move_forward(store: Store) -> None:
    store.groups.save(GROUP, 3, b"state", now=1)
    store.groups.save(OTHER_GROUP, 0, b"state", now=1)
    assert [box_due(x) for x in store.groups.rejoin_marks()] == [True, True]
    store.groups.record_rejoin_box(GROUP, 3)
    (marks,) = store.groups.rejoin_marks(GROUP)
    assert marks == RejoinMarks(GROUP, 3, 3, None) and not box_due(marks)
    store.groups.save(GROUP, 4, b"state", now=2)  # a commit keeps the marks
    store.groups.record_removal(GROUP, 4)
    (marks,) = store.groups.rejoin_marks(GROUP)
    assert marks == RejoinMarks(GROUP, 4, 3, 4) and box_due(marks)
    store.groups.record_removal(GROUP, 2)  # never back
    store.groups.record_rejoin_box(GROUP, 4)
    store.groups.record_rejoin_box(GROUP, 1)  # an older upload finishing late: never back
    (marks,) = store.groups.rejoin_marks(GROUP)
    assert marks == RejoinMarks(GROUP, 4, 4, 4) and not box_due(marks)
    store.groups.record_rejoin_box(GROUP, 2, at=1_000)  # written back: the time moves
    (marks,) = store.groups.rejoin_marks(GROUP)
    assert marks == RejoinMarks(GROUP, 4, 4, 4, 1_000)
    assert box_due(marks, 1_000 + REFRESH_AGE_MS) and not box_due(marks, 2_000)
    store.groups.reset_rejoin_box(GROUP)  # a rejoin
    assert store.groups.rejoin_marks(GROUP)[0] == RejoinMarks(GROUP, 4, None, 4, None)
    assert box_due(store.groups.rejoin_marks(GROUP)[0])


def test_a_group_left_is_to_have_its_box_deleted(store: Store) -> None:
    store.groups.save(GROUP, 1, b"state", now=1)
    store.groups.save(OTHER_GROUP, 1, b"state", now=1)
    store.groups.delete(OTHER_GROUP)  # e.g. a restore that could not rejoin: kept
    store.groups.delete(GROUP, forget_box=True)
    store.groups.delete(GROUP, forget_box=True)
    assert store.groups.rejoin_box_deletions() == [GROUP]
    assert store.groups.rejoin_marks() == []
    store.groups.rejoin_box_deleted(GROUP)
    assert store.groups.rejoin_box_deletions() == []


def test_migration_12_adds_the_marks_to_existing_groups(tmp_path: Path) -> None:
    with Database.open(tmp_path / "m.db", DatabaseKey.generate(), create=True) as db:
        migrate(db, target=11)
        db.execute(
            "INSERT INTO mls_groups (group_id, epoch, state, updated_at) VALUES (?, 7, x'01', 1)",
            (GROUP,),
        )
        assert migrate(db) >= 12
        row = db.query_one(
            "SELECT epoch, state, rejoin_box_epoch, rejoin_removal_epoch FROM mls_groups"
        )
        assert row is not None and tuple(row) == (7, b"\x01", None, 8)
        assert db.query("SELECT group_id FROM rejoin_box_deletions") == []
        with pytest.raises(ConstraintError):
            db.execute("UPDATE mls_groups SET rejoin_box_epoch = -1")
        with pytest.raises(ConstraintError):
            db.execute("UPDATE mls_groups SET rejoin_removal_epoch = -1")


def test_migration_13_leaves_the_time_of_existing_boxes_unknown(tmp_path: Path) -> None:
    """So every box uploaded before is written again once, and the server's expiry
    of it starts then."""
    with Database.open(tmp_path / "m.db", DatabaseKey.generate(), create=True) as db:
        migrate(db, target=12)
        db.execute(
            "INSERT INTO mls_groups (group_id, epoch, state, updated_at, rejoin_box_epoch) "
            "VALUES (?, 7, x'01', 1, 7)",
            (GROUP,),
        )
        assert migrate(db) >= 13
        (marks,) = GroupStateRepository(db).rejoin_marks()
        assert marks == RejoinMarks(GROUP, 7, 7, None, None)
        assert not box_due(marks) and box_due(marks, 1)


# -- what counts as a removal (the one owner of transitions) ----------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_removal_is_read_from_the_staged_commit_and_from_a_loaded_state(
    tmp_path: Path,
) -> None:
    """``Membership.removal``: from the staged commit (its Removes), and after a
    restart from the state once accepted (a leaf that no longer holds its client)."""
    import time

    from messenger.client import sync  # noqa: F401 (loaded before epochs, which it imports)
    from messenger.client.epochs import _loaded_change, _staged_change
    from messenger.client.groups import (
        GROUP_CONFIG,
        ConversationInfo,
        group_extensions,
        new_key_package,
    )
    from messenger.client.session import Session
    from messenger.client.store import ConversationKind
    from messenger.mls.group import Group

    from .sync_helpers import Authority, close_session, make_session

    authority = Authority()
    names = ("alice", "bob", "carol", "dave")
    alice, bob, carol, dave = [await make_session(tmp_path / n, n, authority) for n in names]
    try:

        def key_package(session: Session) -> bytes:
            return new_key_package(session.account, os.urandom, now=int(time.time())).message()

        group = Group.create(
            new_key_package(alice.account, os.urandom, now=int(time.time())),
            os.urandom,
            extensions=group_extensions(ConversationInfo(ConversationKind.GROUP, "Team")),
            config=GROUP_CONFIG,
            identity=alice.account.verifier,
        )

        def removal_both_ways(**changes: object) -> tuple[bool, bool]:
            result = group.commit(os.urandom, **changes)  # type: ignore[arg-type]
            staged, _ = _staged_change(group, result.staged)
            loaded, _, _ = _loaded_change(alice.groups, group, group.to_bytes(result.staged))
            group.merge(result.staged)
            assert staged.epoch == loaded.epoch == group.epoch
            return staged.removal, loaded.removal

        assert removal_both_ways(add=[key_package(bob), key_package(carol)]) == (False, False)
        assert removal_both_ways() == (False, False), "a path update removes no one"
        # Dave takes Bob's blanked leaf in the same commit (RFC 9420 §12.3).
        assert removal_both_ways(add=[key_package(dave)], remove=[1]) == (True, True)
        assert removal_both_ways(remove=[2]) == (True, True)
    finally:
        for session in (alice, bob, carol, dave):
            await close_session(session)
