"""Attachments end to end: two users over the real server, in process (docs/attachments.md §4, §5).

The clients are started (push listener, outbox, transfer queue), so the
background tasks do the work; every wait is on a condition with a
deadline (:func:`until`). The attacks: a file over the limit, a server
out of space or quota, a removed member, a blob changed on the server, a
cancel at any point, a restart in the middle -- each ends with a typed
error and a sentence, and loses nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from messenger.api import routes as r
from messenger.client import (
    AttachmentNotDownloadedError,
    AttachmentTooLargeError,
    AttachmentUnavailableError,
    MessageKind,
    MessageNotFoundError,
    MessagesExpired,
    MessageStatus,
    MessageView,
    MessengerClient,
    NotAllowedError,
    TransferProgress,
)
from messenger.client.attachments.crypto import CHUNK_SIZE
from messenger.client.attachments.files import ATTACHMENTS_DIR
from messenger.client.store.attachments import TransferState

from .helpers import PASSPHRASE, account_id
from .in_process import InProcessServer

pytestmark = pytest.mark.anyio

#: Bounds every wait: a bug shows as a failure, not as a hang.
WAIT = 30.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT) -> None:
    """Wait until ``check()`` holds (polling), failing with ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


async def pair(server: InProcessServer) -> tuple[MessengerClient, MessengerClient, int, int]:
    """Alice and Bob in a group, both started; the two conversations."""
    alice = await server.client("alice")
    bob = await server.client("bob")
    group = await alice.create_group("Files", [await account_id(bob)])
    await alice.flush(WAIT)
    await bob.sync()
    (bob_view,) = await bob.conversations()
    await bob.flush(WAIT)
    await alice.sync()
    await alice.start()
    await bob.start()
    return alice, bob, group.id, bob_view.id


async def file_messages(client: MessengerClient, conversation_id: int) -> list[MessageView]:
    return [
        v
        for v in await client.messages(conversation_id, limit=100)
        if v.message.kind is MessageKind.FILE
    ]


async def the_file(client: MessengerClient, conversation_id: int) -> MessageView | None:
    found = await file_messages(client, conversation_id)
    return found[-1] if found else None


def state_is(
    client: MessengerClient, conversation_id: int, *states: TransferState
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        view = await the_file(client, conversation_id)
        return view is not None and view.attachment is not None and view.attachment.state in states

    return check


def sent(client: MessengerClient, message_id: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await client.message(message_id)).message.status is MessageStatus.SENT

    return check


async def collect(client: MessengerClient, into: list[TransferProgress]) -> None:
    async for event in client.events():
        if isinstance(event, TransferProgress):
            into.append(event)


def png(width: int = 800, height: int = 600) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 40)).save(out, "PNG")
    return out.getvalue()


def blob_files(server: InProcessServer) -> list[Path]:
    return [p for p in server.state.blobs.directory.iterdir() if p.is_file()]


async def test_send_auto_download_save_and_open(server: InProcessServer, tmp_path: Path) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    data = os.urandom(3 * CHUNK_SIZE + 123)
    progress: list[TransferProgress] = []
    collecting = asyncio.create_task(collect(alice, progress))

    message = await alice.send_file(chat, data, name="../../etc/notes.bin", caption="the notes")
    view = await alice.message(message.id)
    assert view.message.kind is MessageKind.FILE and view.message.body == "the notes"
    assert view.message.status is MessageStatus.PENDING
    assert view.attachment is not None and view.attachment.size == len(data)
    await until(sent(alice, message.id), "Alice's file message is sent")
    mine = await alice.message(message.id)
    assert mine.attachment is not None and mine.attachment.state is TransferState.SENT

    await until(state_is(bob, bob_chat, TransferState.DOWNLOADED), "Bob has the file")
    got = await the_file(bob, bob_chat)
    assert got is not None and got.attachment is not None
    assert got.message.body == "the notes" and not got.message.outgoing
    assert got.attachment.name == "../../etc/notes.bin"  # shown as given, never a path
    assert got.attachment.readable and got.attachment.done == len(data)

    saved = await bob.save_attachment(got.id, tmp_path / "saved.bin")
    assert saved.read_bytes() == data
    opened = await bob.open_attachment(got.id)
    assert opened.read_bytes() == data
    assert opened.name == "notes.bin"  # sanitised: one path component
    assert opened.is_relative_to(bob.profile.path / ATTACHMENTS_DIR / "open")
    assert stat.S_IMODE(opened.parent.stat().st_mode) == 0o700
    assert await bob.attachment_bytes(got.id) == data
    with pytest.raises(AttachmentTooLargeError):
        await bob.attachment_bytes(got.id, max_bytes=10)
    # The sender reads its own copy, the encrypted blob it uploaded.
    assert await alice.attachment_bytes(message.id) == data

    # Only ciphertext on disk, 0600 in a 0700 directory.
    folder = bob.profile.path / ATTACHMENTS_DIR
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    blobs = list(folder.glob("*.blob"))
    assert len(blobs) == 1 and stat.S_IMODE(blobs[0].stat().st_mode) == 0o600
    assert data[:4096] not in blobs[0].read_bytes()

    # Progress was published for the upload; the server deleted the blob once
    # its only recipient (Bob) said he had it.
    collecting.cancel()
    assert progress and progress[-1].done == progress[-1].total and progress[-1].upload
    assert all(p.message_id == message.id and p.conversation_id == chat for p in progress)
    await until(lambda: _false_if(blob_files(server)), "the server deleted the fetched blob")

    # Closing empties the viewer's directory.
    await bob.close()
    assert not opened.exists()


async def _false_if(items: list[Path]) -> bool:
    return not items


async def test_image_carries_a_thumbnail(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    image = png(1600, 900)
    message = await alice.send_file(chat, image)  # pasted: bytes, no name
    await until(state_is(bob, bob_chat, TransferState.DOWNLOADED), "Bob has the image")
    got = await the_file(bob, bob_chat)
    assert got is not None and got.attachment is not None
    assert got.attachment.media_type == "image/png" and got.attachment.is_image
    assert got.attachment.name == "image.png"  # pasted: named after its type
    assert (got.attachment.width, got.attachment.height) == (1600, 900)
    thumbnail = got.attachment.thumbnail
    assert 0 < len(thumbnail) <= 48 * 1024
    with Image.open(io.BytesIO(thumbnail)) as shown:
        assert shown.format == "JPEG" and max(shown.size) <= 320
    assert await bob.attachment_bytes(got.id) == image
    mine = await alice.message(message.id)
    assert mine.attachment is not None and mine.attachment.thumbnail == thumbnail


async def test_malformed_image_is_sent_as_a_plain_file(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    broken = png()[:40] + bytes(100)  # a PNG header, then nothing decodable
    await alice.send_file(chat, broken, name="photo.png")
    await until(state_is(bob, bob_chat, TransferState.DOWNLOADED), "Bob has the file")
    got = await the_file(bob, bob_chat)
    assert got is not None and got.attachment is not None
    assert got.attachment.media_type == "application/octet-stream"
    assert not got.attachment.is_image and got.attachment.thumbnail == b""
    assert await bob.attachment_bytes(got.id) == broken


async def test_large_file_waits_for_download_on_demand(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    prefs = await bob.set_auto_download_bytes(1000)
    assert prefs.auto_download_bytes == 1000
    data = os.urandom(5000)
    message = await alice.send_file(chat, data, name="big.dat")
    await until(sent(alice, message.id), "Alice's message is sent")
    await until(state_is(bob, bob_chat, TransferState.AVAILABLE), "Bob got the message")
    got = await the_file(bob, bob_chat)
    assert got is not None and got.attachment is not None and not got.attachment.readable
    with pytest.raises(AttachmentNotDownloadedError) as caught:
        await bob.attachment_bytes(got.id)
    assert caught.value.user_message == "Download the file first."
    await bob.download(got.id)
    await until(state_is(bob, bob_chat, TransferState.DOWNLOADED), "Bob downloaded it")
    assert await bob.attachment_bytes(got.id) == data
    await bob.download(got.id)  # nothing to do
    assert (await bob.preferences()).auto_download_bytes == 1000
    with pytest.raises(NotAllowedError):
        await bob.set_auto_download_bytes(-1)


async def test_file_over_the_limit_is_refused_before_upload(
    server: InProcessServer,
) -> None:
    server.state.config = dataclasses.replace(server.state.config, max_blob_bytes=2_000_000)
    alice, _, chat, _ = await pair(server)
    before = len(server.wire.exchanges)
    with pytest.raises(AttachmentTooLargeError) as caught:
        await alice.send_file(chat, bytes(2_000_001), name="huge.bin")
    assert "2 MB" in caught.value.user_message
    assert not [x for x in server.wire.exchanges[before:] if x.path.startswith(r.BLOBS)]
    assert await file_messages(alice, chat) == []
    assert not list((alice.profile.path / ATTACHMENTS_DIR).glob("*.blob"))


@pytest.mark.parametrize("limit", ["reserve", "quota"])
async def test_no_space_or_quota_then_retry(server: InProcessServer, limit: str) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    blobs = server.state.blobs
    saved = (blobs._reserve, blobs._quota)
    if limit == "reserve":
        blobs._reserve = 1 << 60  # the disk is "full"
    else:
        blobs._quota = 1  # the account is over its quota
    await alice.send_text(chat, "before")
    message = await alice.send_file(chat, os.urandom(10_000), name="a.bin")
    await until(state_is(alice, chat, TransferState.UPLOAD_FAILED), "the upload gave up")
    view = await alice.message(message.id)
    assert view.attachment is not None
    assert view.attachment.error is not None and "no room" in view.attachment.error
    assert view.message.status is MessageStatus.PENDING  # nothing was sent about it
    assert [v.message.body for v in await alice.messages(chat)][-2:] == ["before", None]

    blobs._reserve, blobs._quota = saved
    await alice.retry_transfer(message.id)
    await until(sent(alice, message.id), "the retried upload is sent")
    await until(state_is(bob, bob_chat, TransferState.DOWNLOADED), "Bob has the file")


async def test_network_failure_is_retried_and_resumes(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    data = os.urandom(9 * CHUNK_SIZE)  # three parts of 4 MiB

    def second_part(request: httpx.Request) -> bool:
        return request.method == "PUT" and request.url.params.get("offset", "0") != "0"

    server.wire.lose_answer_once(second_part)
    message = await alice.send_file(chat, data, name="resume.bin")
    await until(sent(alice, message.id), "the upload is retried and sent")
    puts = [
        x for x in server.wire.exchanges if x.method == "PUT" and x.path.startswith("/v1/blobs")
    ]
    # The lost answer's part had reached the server: the retry asks how much
    # the server holds and goes on from there (the part is not sent twice).
    assert [(x.status, x.error) for x in puts] == [(200, None), (None, None), (200, None)]
    statuses = [x for x in server.wire.exchanges if x.path.endswith("/status")]
    assert len(statuses) == 2 and all(x.status == 200 for x in statuses)
    await until(state_is(bob, bob_chat, TransferState.DOWNLOADED), "Bob has the file")
    got = await the_file(bob, bob_chat)
    assert got is not None
    assert await bob.attachment_bytes(got.id) == data


class Gate:
    """Holds the server's blob operation ``name`` from its ``after``-th call until opened."""

    def __init__(self, server: InProcessServer, name: str, after: int) -> None:
        self.open = asyncio.Event()
        self.calls = 0
        original = getattr(server.state.blobs, name)

        async def held(*args: object, **kwargs: object) -> object:
            self.calls += 1
            if self.calls >= after:
                await self.open.wait()
            return await original(*args, **kwargs)

        setattr(server.state.blobs, name, held)


async def test_cancel_upload_deletes_the_message_and_the_blob(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    gate = Gate(server, "upload", after=2)
    expired: list[MessagesExpired] = []

    async def watch() -> None:
        async for event in alice.events():
            if isinstance(event, MessagesExpired):
                expired.append(event)

    watching = asyncio.create_task(watch())
    message = await alice.send_file(chat, os.urandom(9 * CHUNK_SIZE), name="stop.bin")

    async def first_part_in() -> bool:
        view = await alice.message(message.id)
        return view.attachment is not None and view.attachment.done > 0 and gate.calls >= 2

    await until(first_part_in, "the first part is uploaded and the second held")
    await alice.cancel_transfer(message.id)
    gate.open.set()
    assert await file_messages(alice, chat) == []
    assert not list((alice.profile.path / ATTACHMENTS_DIR).glob("*.blob"))
    deletes = [x for x in server.wire.exchanges if x.method == "DELETE"]
    assert [(x.status, x.path.startswith(r.BLOBS)) for x in deletes] == [(200, True)]
    await until(lambda: _false_if(blob_files(server)), "the server deleted the blob")
    await until(lambda: _true_if(bool(expired)), "the timeline was told")
    watching.cancel()
    assert expired[0].message_ids == (message.id,)
    with pytest.raises(MessageNotFoundError):  # nothing left to cancel
        await alice.cancel_transfer(message.id)
    await alice.send_text(chat, "still works")
    assert await the_file(bob, bob_chat) is None


async def _true_if(value: bool) -> bool:
    return value


async def test_cancel_download_returns_to_available(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    gate = Gate(server, "download", after=2)
    data = os.urandom(9 * CHUNK_SIZE)
    message = await alice.send_file(chat, data, name="big.bin")
    await until(sent(alice, message.id), "Alice's message is sent")

    async def first_part_in() -> bool:
        view = await the_file(bob, bob_chat)
        return view is not None and view.attachment is not None and view.attachment.done > 0

    await until(first_part_in, "Bob has the first part")
    got = await the_file(bob, bob_chat)
    assert got is not None
    await bob.cancel_transfer(got.id)
    gate.open.set()
    view = await bob.message(got.id)
    assert view.attachment is not None
    assert view.attachment.state is TransferState.AVAILABLE and view.attachment.done == 0
    assert not list((bob.profile.path / ATTACHMENTS_DIR).glob("*.blob"))
    await bob.download(got.id)
    await until(state_is(bob, bob_chat, TransferState.DOWNLOADED), "Bob downloaded it again")
    assert await bob.attachment_bytes(got.id) == data


async def reopen(server: InProcessServer, client: MessengerClient) -> MessengerClient:
    """Close ``client`` and open its profile again (a restart), started."""
    from messenger.client import ClientOptions
    from messenger.client.net import Backoff
    from messenger.client.store import Keychain

    from .helpers import MemoryKeyring
    from .in_process import WireTap, _InProcessTransport

    await client.close()
    inner = await server.transports.enter_async_context(_InProcessTransport(server.app))
    options = ClientOptions(
        http_transport=WireTap(server.wire, inner),
        backoff=Backoff(base=0.01, maximum=0.05),
        timeout=10.0,
    )
    again = await MessengerClient.open(
        client.profile,
        PASSPHRASE,
        keychain=Keychain(backend=MemoryKeyring()),
        options=options,
    )
    server.opened.append(again)
    await again.start()
    return again


async def test_restart_mid_upload_resumes(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    gate = Gate(server, "upload", after=2)
    data = os.urandom(9 * CHUNK_SIZE)
    message = await alice.send_file(chat, data, name="restart.bin")
    await until(lambda: _true_if(gate.calls >= 2), "the second part is held")
    first = [x for x in server.wire.exchanges if x.method == "PUT" and "/v1/blobs" in x.path]
    alice = await reopen(server, alice)
    gate.open.set()
    await until(sent(alice, message.id), "the upload resumed and was sent")
    offsets = [x.path for x in server.wire.exchanges if x.method == "PUT" and "/v1/blobs" in x.path]
    assert len(first) >= 1 and len(offsets) <= 4  # not sent again from the start
    await until(state_is(bob, bob_chat, TransferState.DOWNLOADED), "Bob has the file")
    got = await the_file(bob, bob_chat)
    assert got is not None
    assert await bob.attachment_bytes(got.id) == data


async def test_restart_mid_download_resumes(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    gate = Gate(server, "download", after=2)
    data = os.urandom(9 * CHUNK_SIZE)
    message = await alice.send_file(chat, data, name="restart.bin")
    await until(sent(alice, message.id), "Alice's message is sent")
    await until(lambda: _true_if(gate.calls >= 2), "Bob's second part is held")
    bob = await reopen(server, bob)
    gate.open.set()
    await until(state_is(bob, bob_chat, TransferState.DOWNLOADED), "Bob's download resumed")
    got = await the_file(bob, bob_chat)
    assert got is not None
    assert await bob.attachment_bytes(got.id) == data
    gets = [x for x in server.wire.exchanges if x.method == "GET" and x.path.startswith(r.BLOBS)]
    assert len(gets) <= 4  # the first part was not fetched again


async def test_removed_member_gets_gone(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    await bob.set_auto_download_bytes(0)
    message = await alice.send_file(chat, os.urandom(1000), name="secret.bin")
    await until(sent(alice, message.id), "Alice's message is sent")
    await until(state_is(bob, bob_chat, TransferState.AVAILABLE), "Bob got the message")
    await alice.remove_member(chat, await account_id(bob))

    async def removed() -> bool:
        return not (await bob.conversation(bob_chat)).active

    await until(removed, "Bob knows he was removed")
    got = await the_file(bob, bob_chat)
    assert got is not None
    await bob.download(got.id)
    await until(state_is(bob, bob_chat, TransferState.GONE), "the download is refused")
    view = await bob.message(got.id)
    assert (
        view.attachment is not None and view.attachment.error == "This file is no longer available."
    )
    with pytest.raises(AttachmentUnavailableError):
        await bob.download(got.id)


async def test_a_download_behind_a_removal_catches_up_and_asks_again(
    server: InProcessServer,
) -> None:
    """The group's state is sealed under its members' send tokens (docs/metadata.md
    §2): a blob request carries the current one, and after a removal the client
    has not processed, the server's ``unknown_group`` makes it catch up and ask
    again with the new epoch's token."""
    alice = await server.client("alice")
    bob = await server.client("bob")
    carol = await server.client("carol")
    group = await alice.create_group("Files", [await account_id(bob), await account_id(carol)])
    await alice.flush(WAIT)
    for member in (bob, carol):
        await member.sync()
        await member.flush(WAIT)
    await alice.sync()
    await bob.set_auto_download_bytes(0)
    await alice.start()
    data = os.urandom(3000)
    message = await alice.send_file(group.id, data, name="late.bin")
    await until(sent(alice, message.id), "Alice's file is sent")
    await bob.sync()  # Bob has the file's message
    (bob_chat,) = [v.id for v in await bob.conversations()]
    await alice.remove_member(group.id, await account_id(carol))
    await alice.flush(WAIT)
    # Bob has not processed the removal: his token is of the epoch before it.
    got = await the_file(bob, bob_chat)
    assert got is not None
    await bob.download(got.id)
    row = await bob._store.run(lambda s: s.attachments.get(got.id))
    assert row is not None and row.state is TransferState.DOWNLOADING
    mark = len(server.wire.exchanges)
    transfers = bob._transfers
    assert transfers is not None
    await transfers._download(row)
    view = await bob.message(got.id)
    assert view.attachment is not None and view.attachment.state is TransferState.DOWNLOADED
    blob_requests = [
        (x.method, x.status, x.error)
        for x in server.wire.exchanges[mark:]
        if x.path.startswith("/v1/blobs/")
    ]
    assert blob_requests[0] == ("GET", 404, "unknown_group")
    assert blob_requests[1:] == [("GET", 200, None), ("POST", 200, None)]
    assert (await bob.conversation(bob_chat)).active
    assert await bob.attachment_bytes(got.id) == data


async def test_corrupted_blob_fails_and_loses_nothing_else(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    await bob.set_auto_download_bytes(0)
    await alice.send_text(chat, "first")
    message = await alice.send_file(chat, os.urandom(2 * CHUNK_SIZE), name="bad.bin")
    await until(sent(alice, message.id), "Alice's message is sent")
    await until(state_is(bob, bob_chat, TransferState.AVAILABLE), "Bob got the message")
    (stored,) = blob_files(server)
    changed = bytearray(stored.read_bytes())
    changed[CHUNK_SIZE + 100] ^= 0x80
    stored.write_bytes(bytes(changed))

    got = await the_file(bob, bob_chat)
    assert got is not None
    await bob.download(got.id)
    await until(state_is(bob, bob_chat, TransferState.FAILED), "the download is refused")
    view = await bob.message(got.id)
    assert view.attachment is not None and view.attachment.error is not None
    assert "damaged" in view.attachment.error and view.attachment.done == 0
    assert not list((bob.profile.path / ATTACHMENTS_DIR).glob("*.blob"))
    with pytest.raises(AttachmentNotDownloadedError):
        await bob.save_attachment(got.id, Path(bob.profile.path.parent / "x.bin"))
    assert [v.message.body for v in await bob.messages(bob_chat)][-2:] == ["first", None]
    await alice.send_text(chat, "after")

    async def after() -> bool:
        return "after" in [v.message.body for v in await bob.messages(bob_chat)]

    await until(after, "Bob still receives messages")
    await bob.retry_transfer(got.id)  # fetched again, refused again
    await until(state_is(bob, bob_chat, TransferState.FAILED), "the retry is refused too")


async def test_delete_for_everyone_removes_the_attachment(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    message = await alice.send_file(chat, os.urandom(1000), name="gone.bin")
    await until(state_is(bob, bob_chat, TransferState.DOWNLOADED), "Bob has the file")
    await alice.delete(chat, message.id)

    async def deleted() -> bool:
        view = await the_file(bob, bob_chat)
        return view is not None and view.message.deleted

    await until(deleted, "Bob's copy is deleted")
    view = await the_file(bob, bob_chat)
    assert view is not None and view.attachment is None
    assert not list((bob.profile.path / ATTACHMENTS_DIR).glob("*.blob"))
    assert not list((alice.profile.path / ATTACHMENTS_DIR).glob("*.blob"))


async def test_forged_file_messages_from_a_member(server: InProcessServer) -> None:
    """A member sends file messages a client never makes: a bomb for a thumbnail,
    absurd image sizes, someone else's blob, a real blob with the wrong size."""
    from messenger.client.content import File

    from .test_thumbnails import bomb_png

    alice, bob, chat, bob_chat = await pair(server)
    await bob.set_auto_download_bytes(0)
    real = await alice.send_file(chat, os.urandom(5000), name="real.bin")
    await until(sent(alice, real.id), "the real file is sent")
    row = await alice._store.run(lambda s: s.attachments.get(real.id))
    assert row is not None

    forged = [
        # A decompression bomb as the thumbnail, an image "a billion pixels" wide.
        File(
            os.urandom(16),
            os.urandom(32),
            os.urandom(32),
            os.urandom(32),
            10,
            "image/png",
            "bomb.png",
            4_000_000_000,
            3,
            bomb_png(100_000, 100_000),
        ),
        # A blob that is not this message's: unknown ID and capability.
        File(
            os.urandom(16),
            os.urandom(32),
            os.urandom(32),
            os.urandom(32),
            10,
            "application/octet-stream",
            "stranger.bin",
        ),
        # Alice's real blob, described with another size.
        File(
            row.blob_id,
            row.access,
            row.key,
            row.digest,
            row.size + 1,
            "application/octet-stream",
            "resized.bin",
        ),
        # A name that spoofs its extension with a right-to-left override.
        File(
            os.urandom(16),
            os.urandom(32),
            os.urandom(32),
            os.urandom(32),
            10,
            "application/octet-stream",
            "invoice\u202egpj.exe\n",
        ),
    ]
    for body in forged:
        await alice._send(chat, body)

    async def all_arrived() -> bool:
        return len(await file_messages(bob, bob_chat)) == 5

    await until(all_arrived, "Bob got the forged messages")
    _, bomb, stranger, resized, spoof = await file_messages(bob, bob_chat)
    assert spoof.attachment is not None and spoof.attachment.name == "invoicegpj.exe"
    assert bomb.attachment is not None
    assert bomb.attachment.thumbnail == b"" and (bomb.attachment.width, bomb.attachment.height) == (
        0,
        0,
    )
    for view in (stranger, resized):
        await bob.download(view.id)

    async def settled() -> bool:
        states = [(await bob.message(v.id)).attachment for v in (stranger, resized)]
        return [a.state if a else None for a in states] == [
            TransferState.GONE,
            TransferState.FAILED,
        ]

    await until(settled, "both downloads are refused")
    assert (await bob.message(resized.id)).attachment.error is not None  # type: ignore[union-attr]
    # The real file is untouched and still downloads.
    first = (await file_messages(bob, bob_chat))[0]
    await bob.download(first.id)

    async def real_done() -> bool:
        view = await bob.message(first.id)
        return view.attachment is not None and view.attachment.state is TransferState.DOWNLOADED

    await until(real_done, "the real file downloads")


async def test_limit_remembered_when_the_server_cannot_be_asked(server: InProcessServer) -> None:
    alice, bob, chat, bob_chat = await pair(server)
    await alice.send_file(chat, b"first", name="one.txt")  # asks the server, remembers
    alice = await reopen(server, alice)
    server.wire.lose_answer_once(lambda request: request.url.path == r.SERVER_INFO)
    message = await alice.send_file(chat, b"second", name="two.txt")
    await until(sent(alice, message.id), "the second file is sent")
    assert [x.status for x in server.wire.sent("GET", r.SERVER_INFO)][-1] is None

    async def both() -> bool:
        views = await file_messages(bob, bob_chat)
        return [v.attachment.state if v.attachment else None for v in views] == [
            TransferState.DOWNLOADED
        ] * 2

    await until(both, "Bob has both files")


async def test_missing_local_file_is_downloaded_again(server: InProcessServer) -> None:
    """A restored backup holds no blob files: reading one says so, and it can be fetched."""
    alice, bob, chat, _ = await pair(server)
    await bob.set_auto_download_bytes(0)  # the server keeps the blob for Bob
    data = os.urandom(3000)
    message = await alice.send_file(chat, data, name="kept.bin")
    await until(sent(alice, message.id), "Alice's message is sent")
    for blob in (alice.profile.path / ATTACHMENTS_DIR).glob("*.blob"):
        blob.unlink()
    with pytest.raises(AttachmentNotDownloadedError):
        await alice.attachment_bytes(message.id)
    view = await alice.message(message.id)
    assert view.attachment is not None and view.attachment.state is TransferState.AVAILABLE
    await alice.download(message.id)

    async def back() -> bool:
        found = (await alice.message(message.id)).attachment
        return found is not None and found.state is TransferState.DOWNLOADED

    await until(back, "Alice fetched her own file again")
    assert await alice.attachment_bytes(message.id) == data
