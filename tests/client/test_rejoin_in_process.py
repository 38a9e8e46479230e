"""Group state sealed under the members' tokens, from the client's side (docs/metadata.md §2).

Against the real server app in process (:mod:`.in_process`), whose wire
records every request: group creation carries epoch 0's send token and
every commit the next epoch's (whose digest is the registered one); the
account's rejoin boxes are uploaded when due (never before), hold the
current epoch's token, are due again after a removal and deleted when the
group is left; and a restored backup rejoins with the token of its box,
or, if no token it has opens the group any more, reports the group as not
rejoinable instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from messenger.api import models as m
from messenger.api.fields import b64encode
from messenger.api.sealed import token_digest
from messenger.client import ClientOptions, MessengerClient, NoteKind
from messenger.client.errors import ServerUnavailableError
from messenger.client.net import Backoff
from messenger.client.rejoin_boxes import (
    RejoinBoxUploader,
    UploadPolicy,
    UploadResult,
    box_due,
    handle,
    open_box,
    rejoin_secret,
    seal_box,
)
from messenger.client.restore_device import RESTORE_STATE
from messenger.client.sealed_sending import send_token
from messenger.client.store import Keychain

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring, account_id, texts
from .in_process import InProcessServer, WireTap, _InProcessTransport, introduce
from .restoring import make_backup, open_restored

pytestmark = pytest.mark.anyio

FLUSH = 10.0
WAIT = 10.0
DAY = 24 * 3600


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until(check: object, what: str, timeout: float = WAIT) -> None:
    """Poll the coroutine function ``check`` until it is true; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def group_id(client: MessengerClient, conversation_id: int) -> bytes:
    view = await client.conversation(conversation_id)
    assert view.conversation.group_id is not None
    return view.conversation.group_id


def secret_of(client: MessengerClient) -> bytes:
    private = client._require().account.identity.account_private_key
    assert private is not None
    return rejoin_secret(private)


async def current_token(client: MessengerClient, gid: bytes) -> tuple[int, bytes]:
    session = client._require()
    async with session.group_lock(gid):
        group = await session.groups.get(gid)
        assert group is not None
        return group.epoch, send_token(group)


async def stored_box(client: MessengerClient, gid: bytes) -> tuple[int, bytes] | None:
    """What the server holds in the account's box of ``gid``, opened."""
    secret = secret_of(client)
    box = await client._require().transport.get_rejoin_box(handle(secret, gid))
    return None if box is None else open_box(secret, gid, box)


def uploader(client: MessengerClient) -> RejoinBoxUploader:
    client._require()
    boxes = client._rejoin_boxes
    assert boxes is not None
    return boxes


async def three_in_a_group(
    server: InProcessServer,
) -> tuple[MessengerClient, MessengerClient, MessengerClient, int, int, bytes]:
    """Alice's group with Bob (Carol has an account): alice, bob, carol, both
    conversation IDs and the group ID."""
    alice = await server.client("alice")
    bob = await server.client("bob")
    carol = await server.client("carol")
    chat = await alice.create_group("Trio", [await account_id(bob)])
    await alice.send_text(chat.id, "hello")
    await alice.flush(FLUSH)
    await bob.sync()
    (bob_view,) = await bob.conversations()
    return alice, bob, carol, chat.id, bob_view.id, await group_id(alice, chat.id)


async def add_and_remove_carol(
    alice: MessengerClient, bob: MessengerClient, carol: MessengerClient, chat: int
) -> None:
    """Carol is added, then removed: the server draws a fresh data key."""
    await alice.add_members(chat, [await account_id(carol)])
    await alice.flush(FLUSH)
    await carol.sync()
    await alice.remove_member(chat, await account_id(carol))
    await alice.flush(FLUSH)
    await bob.sync()


def bodies(server: InProcessServer, suffix: str, method: str = "POST") -> list[bytes]:
    return [
        x.body
        for x in server.wire.exchanges
        if x.method == method and x.path.endswith(suffix) and x.status == 200
    ]


# -- the tokens every request carries ---------------------------------------------------------


async def test_creation_and_every_commit_carry_the_token_of_their_epoch(
    server: InProcessServer,
) -> None:
    alice, bob, carol, chat, bob_chat, gid = await three_in_a_group(server)
    await add_and_remove_carol(alice, bob, carol, chat)
    await alice.rename(chat, "Duo")
    await alice.flush(FLUSH)
    await bob.leave(bob_chat)  # Bob proposes; Alice's app commits his removal
    await bob.flush(FLUSH)
    await alice.sync()
    await alice.flush(FLUSH)

    creations = [m.CreateGroupRequest.loads(b) for b in bodies(server, "/v1/groups")]
    assert creations, "no group was created"
    for created in creations:
        assert created.send_token is not None and created.send_token_hash is not None
        assert token_digest(created.send_token) == created.send_token_hash
    (made,) = [c for c in creations if c.group_id == gid]

    commits = [m.CommitRequest.loads(b) for b in bodies(server, "/commits")]
    # Bob's add, Carol's add and removal, the rename, Bob's removal (his leave).
    assert len([c for c in commits if c.epoch >= 0]) >= 5
    for commit in commits:
        assert commit.next_token is not None, "a commit without the new epoch's token"
        assert commit.send_token_hash is not None
        assert token_digest(commit.next_token) == commit.send_token_hash
    # The last commit's token is the one the group's members derive now.
    epoch, token = await current_token(alice, gid)
    last = commits[-1]
    assert last.epoch + 1 == epoch and last.next_token == token
    assert made.send_token != token


async def test_a_suite_upgrade_carries_the_tokens_too(server: InProcessServer) -> None:
    """The ReInit commit, the new group and its first commit (``suite_upgrade.py``)."""
    inner = await server.transports.enter_async_context(_InProcessTransport(server.app))
    classic = ClientOptions(
        http_transport=WireTap(server.wire, inner),
        backoff=Backoff(base=0.01, maximum=0.05),
        timeout=10.0,
        cipher_suites=(1,),
    )
    alice = await MessengerClient.create(
        "alice",
        PASSPHRASE,
        data_dir=server.root / "clients" / "alice-classic",
        keychain=Keychain(backend=MemoryKeyring()),
        kdf=FAST_KDF,
        options=classic,
    )
    server.opened.append(alice)
    await alice.create_account("http://testserver", handle="alice")
    await introduce(server, alice)  # as if they had exchanged invite links
    bob = await server.client("bob")
    chat = await alice.create_group("Upgrade", [await account_id(bob)])
    await alice.flush(FLUSH)
    await bob.sync()
    old_gid = await group_id(alice, chat.id)
    classic_suite = await alice.cipher_suite(chat.id)
    assert classic_suite is not None and "X25519" in classic_suite
    assert "MLKEM" not in classic_suite.upper()
    before = len(bodies(server, "/commits"))

    await alice.upgrade_encryption(chat.id)
    new_gid = await group_id(alice, chat.id)
    assert new_gid != old_gid and await alice.cipher_suite(chat.id) != classic_suite
    created = [
        c
        for c in (m.CreateGroupRequest.loads(b) for b in bodies(server, "/v1/groups"))
        if c.group_id == new_gid
    ]
    assert len(created) == 1 and created[0].send_token is not None
    assert token_digest(created[0].send_token) == created[0].send_token_hash
    commits = [m.CommitRequest.loads(b) for b in bodies(server, "/commits")][before:]
    assert len(commits) >= 2, "the ReInit commit and the new group's first commit"
    for commit in commits:
        assert commit.next_token is not None and commit.send_token_hash is not None
        assert token_digest(commit.next_token) == commit.send_token_hash
    assert commits[-1].next_token == (await current_token(alice, new_gid))[1]


# -- uploading the account's boxes ----------------------------------------------------------


async def test_boxes_are_uploaded_when_due_with_the_current_token(
    server: InProcessServer,
) -> None:
    alice, bob, carol, chat, _, gid = await three_in_a_group(server)
    assert not [x for x in server.wire.exchanges if "/v1/rejoin-boxes/" in x.path]
    assert await stored_box(alice, gid) is None, "nothing is uploaded until the uploader runs"

    first = await uploader(alice).upload_due()
    assert first.uploaded >= 1 and first.failed == 0
    epoch, token = await current_token(alice, gid)
    assert await stored_box(alice, gid) == (epoch, token)
    again = await uploader(alice).upload_due()
    assert again.uploaded == 0, "a box not due is not uploaded again"

    # Bob's box is his account's own: another handle, another secret.
    await uploader(bob).upload_due()
    assert await stored_box(bob, gid) == (epoch, token)
    assert handle(secret_of(bob), gid) != handle(secret_of(alice), gid)

    # A removal (Alice's own commit; Bob receives it) makes both boxes due.
    session = alice._require()
    session.rejoin_signal.clear()
    bob._require().rejoin_signal.clear()
    await add_and_remove_carol(alice, bob, carol, chat)
    assert session.rejoin_signal.is_set(), "the uploader was not told"
    assert bob._require().rejoin_signal.is_set()
    for client in (alice, bob):
        (marks,) = await client._store.run(lambda s: s.groups.rejoin_marks(gid))
        assert marks.removal_epoch == marks.epoch and box_due(marks)
    assert await stored_box(alice, gid) == (epoch, token), "uploaded right after the commit"
    assert (await uploader(alice).upload_due()).uploaded == 1
    assert (await uploader(bob).upload_due()).uploaded == 1
    after = await current_token(alice, gid)
    assert after[0] > epoch
    assert await stored_box(alice, gid) == after
    assert await stored_box(bob, gid) == after


async def test_a_newer_box_of_another_device_is_not_replaced(server: InProcessServer) -> None:
    """A device that is behind (catching up, or restoring) keeps the account's newer box."""
    alice, *_rest, gid = await three_in_a_group(server)
    epoch, token = await current_token(alice, gid)
    secret = secret_of(alice)
    transport = alice._require().transport
    # What another device of Alice's, further on, would have put.
    newer = (epoch + 10, bytes(32))
    newer_box = seal_box(secret, gid, *newer)
    await transport.put_rejoin_box(handle(secret, gid), newer_box)
    path = "/v1/rejoin-boxes/" + b64encode(handle(secret, gid))
    puts = len(bodies(server, path, "PUT"))
    result = await uploader(alice).upload_due()
    assert result.kept >= 1 and result.failed == 0
    assert await stored_box(alice, gid) == newer
    # Written back byte for byte, so that the server keeps it as long as a new one.
    assert bodies(server, path, "PUT")[puts:] == [m.RejoinBox(newer_box).dumps()]
    (marks,) = await alice._store.run(lambda s: s.groups.rejoin_marks(gid))
    assert marks.box_epoch == epoch + 10 and not box_due(marks)
    # An older box is replaced.
    await alice._store.run(lambda s: s.groups.reset_rejoin_box(gid))
    await transport.put_rejoin_box(handle(secret, gid), seal_box(secret, gid, 0, bytes(32)))
    assert (await uploader(alice).upload_due()).uploaded >= 1
    assert await stored_box(alice, gid) == (epoch, token)


async def test_a_failed_upload_stays_due_and_goes_later(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, *_rest, gid = await three_in_a_group(server)
    transport = alice._require().transport
    real = transport.put_rejoin_box

    async def offline(handle: bytes, box: bytes) -> None:
        raise ServerUnavailableError("offline (test)")

    monkeypatch.setattr(transport, "put_rejoin_box", offline)
    failed = await uploader(alice).upload_due()
    assert failed.uploaded == 0 and failed.failed >= 1
    (marks,) = await alice._store.run(lambda s: s.groups.rejoin_marks(gid))
    assert marks.box_epoch is None and box_due(marks)
    monkeypatch.setattr(transport, "put_rejoin_box", real)
    assert (await uploader(alice).upload_due()).uploaded >= 1
    assert await stored_box(alice, gid) == await current_token(alice, gid)


async def test_the_box_of_a_group_left_is_deleted(server: InProcessServer) -> None:
    alice, bob, _, chat, bob_chat, gid = await three_in_a_group(server)
    await uploader(bob).upload_due()
    assert await stored_box(bob, gid) is not None
    await bob.leave(bob_chat)
    await bob.flush(FLUSH)
    assert await bob._store.run(lambda s: s.groups.rejoin_box_deletions()) == [gid]
    assert await stored_box(bob, gid) is not None, "deleted at once, not in a later round"
    result = await uploader(bob).upload_due()
    assert result.deleted == 1 and result.uploaded == 0
    assert await stored_box(bob, gid) is None
    assert await bob._store.run(lambda s: s.groups.rejoin_box_deletions()) == []
    await alice.sync()  # Alice's app commits Bob's leave
    await alice.flush(FLUSH)
    assert len(await alice.members(chat)) == 1


async def test_the_running_uploader_waits_for_a_signal_then_uploads(
    server: InProcessServer,
) -> None:
    """The background loop: one round at start, then one after a removal signals it."""
    alice, bob, carol, chat, _, gid = await three_in_a_group(server)
    session = alice._require()
    quick = RejoinBoxUploader(session, UploadPolicy(min_delay=0.0, max_delay=0.0))
    task = asyncio.create_task(quick.run())
    try:

        async def uploaded() -> bool:
            return await stored_box(alice, gid) == await current_token(alice, gid)

        await until(uploaded, "the round at start")
        await add_and_remove_carol(alice, bob, carol, chat)
        await until(uploaded, "the round after the removal")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_started_client_uploads_its_boxes(server: InProcessServer) -> None:
    alice, *_rest, gid = await three_in_a_group(server)
    await alice.start()

    async def uploaded() -> bool:
        return await stored_box(alice, gid) == await current_token(alice, gid)

    await until(uploaded, "the started client's round at start")


# -- restoring a backup ---------------------------------------------------------------------


async def test_a_restore_after_a_removal_rejoins_with_the_boxs_token(
    server: InProcessServer, tmp_path: Path
) -> None:
    alice, bob, carol, chat, bob_chat, gid = await three_in_a_group(server)
    backup = await make_backup(alice, tmp_path, "alice")
    backed_up = await current_token(alice, gid)
    await add_and_remove_carol(alice, bob, carol, chat)
    assert (await uploader(alice).upload_due()).uploaded >= 1
    boxed = await current_token(alice, gid)
    assert boxed != backed_up

    copy = await open_restored(server, backup, tmp_path, "alice-restored")
    mark = len(server.wire.exchanges)
    await copy.sync()
    assert await copy._store.run(lambda s: s.settings.get(RESTORE_STATE)) is None
    view = await copy.conversation(chat)
    assert view.conversation.left_at is None, "the group was not rejoined"
    sent = server.wire.exchanges[mark:]
    info = f"/v1/groups/{b64encode(gid)}/rejoin-info"
    reads = [(m.RejoinInfoRequest.loads(x.body).token, x.status) for x in sent if x.path == info]
    assert reads == [(boxed[1], 200)], "the box's token is tried first, and opens the group"
    commits = f"/v1/groups/{b64encode(gid)}/commits"
    (external,) = [
        m.CommitRequest.loads(x.body) for x in sent if x.path == commits and x.status == 200
    ]
    assert external.rejoin_token == boxed[1]
    assert external.next_token is not None
    assert token_digest(external.next_token) == external.send_token_hash
    # Rejoined: its box is due again (the epoch the copy joined in).
    (marks,) = await copy._store.run(lambda s: s.groups.rejoin_marks(gid))
    assert marks.box_epoch is None and box_due(marks)

    # It reads what is sent after.
    await bob.sync()
    await bob.send_text(bob_chat, "after the restore")
    await bob.flush(FLUSH)
    await copy.sync()
    assert (await texts(copy, chat))[-1] == "after the restore"


async def test_a_restore_with_a_stale_box_reports_the_group_not_rejoinable(
    server: InProcessServer, tmp_path: Path
) -> None:
    alice, bob, carol, chat, _, gid = await three_in_a_group(server)
    await uploader(alice).upload_due()  # a box, but from before the removal
    backup = await make_backup(alice, tmp_path, "alice")
    await add_and_remove_carol(alice, bob, carol, chat)

    copy = await open_restored(server, backup, tmp_path, "alice-stale")
    mark = len(server.wire.exchanges)
    await copy.sync()  # no exception: the group is given up
    assert await copy._store.run(lambda s: s.settings.get(RESTORE_STATE)) is None
    view = await copy.conversation(chat)
    assert view.conversation.left_at is not None
    notes = [v.note.kind for v in await copy.messages(chat, limit=100) if v.note is not None]
    assert NoteKind.REJOIN_FAILED in notes
    assert await texts(copy, chat) == ["hello"], "the history stays readable"
    info = f"/v1/groups/{b64encode(gid)}/rejoin-info"
    answers = [x.error for x in server.wire.exchanges[mark:] if x.path == info]
    assert answers and set(answers) == {"unknown_group"}
    assert len(answers) == 1, "the box's token and the backup's are the same: tried once"
    # The account's box is not deleted: Alice's live device may keep it.
    assert await stored_box(alice, gid) is not None


async def test_a_restore_without_a_box_rejoins_with_the_backups_token(
    server: InProcessServer, tmp_path: Path
) -> None:
    alice, bob, _, chat, bob_chat, gid = await three_in_a_group(server)
    backup = await make_backup(alice, tmp_path, "alice")
    backed_up = await current_token(alice, gid)
    await alice.rename(chat, "Renamed")  # a commit, no removal: old tokens still open
    await alice.flush(FLUSH)
    assert await stored_box(alice, gid) is None

    copy = await open_restored(server, backup, tmp_path, "alice-nobox")
    mark = len(server.wire.exchanges)
    await copy.sync()
    assert (await copy.conversation(chat)).conversation.left_at is None
    info = f"/v1/groups/{b64encode(gid)}/rejoin-info"
    reads = [
        (m.RejoinInfoRequest.loads(x.body).token, x.status)
        for x in server.wire.exchanges[mark:]
        if x.path == info
    ]
    assert reads == [(backed_up[1], 200)]
    await bob.sync()
    await bob.send_text(bob_chat, "to the restored copy")
    await bob.flush(FLUSH)
    await copy.sync()
    assert (await texts(copy, chat))[-1] == "to the restored copy"


async def test_a_box_is_written_again_every_60_days(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server deletes a box not written for 180 days (so that an attacker's go):
    a running app looks every few hours, and writes each box again at 60 days,
    even one another device keeps (its bytes, as they are)."""
    alice, *_rest, gid = await three_in_a_group(server)
    boxes = uploader(alice)
    await boxes.upload_due()
    assert await boxes.upload_due() == UploadResult(), "nothing due right after"
    path = "/v1/rejoin-boxes/" + b64encode(handle(secret_of(alice), gid))
    puts = bodies(server, path, "PUT")
    session = alice._require()
    real = session.clock
    session.clock = lambda: real() + 59 * DAY
    assert await boxes.upload_due() == UploadResult(), "not yet"
    # Past 60 days, while the app runs: the uploader's periodic look finds it.
    monkeypatch.setattr("messenger.client.rejoin_boxes.CHECK_SECONDS", 0.01)
    fast = RejoinBoxUploader(session, UploadPolicy(min_delay=0.0, max_delay=0.0))
    task = asyncio.create_task(fast.run())
    try:
        session.clock = lambda: real() + 61 * DAY
        await until(lambda: _more(server, path, len(puts)), "the box written again")
        # And recorded as written (after the server's answer): cancelled only then.
        await until(lambda: _recorded(alice, gid, real() + 60 * DAY), "the write recorded")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # The same token (no commit since): the box the server held, written back.
    assert bodies(server, path, "PUT")[len(puts)] == puts[-1]
    (marks,) = await alice._store.run(lambda s: s.groups.rejoin_marks(gid))
    assert marks.box_at is not None and marks.box_at >= int((real() + 61 * DAY) * 1000) - 60_000
    assert not box_due(marks, session.now_ms())


async def _recorded(client: MessengerClient, gid: bytes, after: float) -> bool:
    (marks,) = await client._store.run(lambda s: s.groups.rejoin_marks(gid))
    return marks.box_at is not None and marks.box_at >= int(after * 1000)


async def _more(server: InProcessServer, path: str, count: int) -> bool:
    return len(bodies(server, path, "PUT")) > count
