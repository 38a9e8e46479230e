"""The blob store (``/v1/blobs``, docs/attachments.md §3).

A member of a group reserves a padded blob, uploads it in parts that must
start where the blob ends (resumable across a crash that left the file
longer than recorded), and the other members of that moment download it
in ranges with the capability and say ``fetched``; the last one's deletes
it. The retention sweep deletes unfinished and expired blobs, recipients
that left the group, and files without a row. Limits: the Padmé size rule,
the largest file, the account's quota and the server's free-space reserve.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.blobs import MAX_BLOB_PART_BYTES, OCTET_STREAM, is_padme, padme
from messenger.server import create_app
from messenger.server.blobs import ORPHAN_GRACE_SECONDS, max_stored_size
from messenger.server.config import ConfigError, ServerConfig, load_config
from messenger.server.metrics import AVAILABLE
from messenger.server.openapi import openapi_document
from messenger.server.storage import Tx

from .blob_tools import (
    access_pair,
    blob_dir,
    blob_file,
    code,
    create,
    created,
    delete,
    download,
    fetched,
    get,
    group_of,
    padded,
    put,
    recipients,
    remove,
    status,
    upload,
)
from .conftest import FakeClock, ServerFactory, TestServer, make_config, serve
from .dbtools import rows
from .hub_watch import until

pytestmark = pytest.mark.anyio

HOUR = 3600


def _status(response: httpx.Response) -> m.BlobStatus:
    assert response.status_code == 200, response.json()
    return m.BlobStatus.from_json(response.json())


async def test_a_member_uploads_and_the_others_download_then_it_is_deleted(
    server: TestServer,
) -> None:
    alice = await server.registered()
    bob = await server.registered()
    carol = await server.registered()
    group = await group_of(alice, bob, carol)
    data = padded(3 << 20)
    access, access_hash = access_pair()
    response = await create(alice, group, len(data), access_hash)
    assert response.status_code == 200
    answer = m.CreateBlobResponse.from_json(response.json())
    assert answer.part_bytes == MAX_BLOB_PART_BYTES
    assert answer.expires_at % (HOUR * 1000) == 0
    assert answer.expires_at > time.time() * 1000
    blob_id = answer.blob_id
    assert _status(await status(alice, blob_id)) == m.BlobStatus(len(data), 0, False)
    part = 1 << 20
    for offset in range(0, len(data), part):
        response = await put(alice, blob_id, offset, data[offset : offset + part])
        end = min(offset + part, len(data))
        assert _status(response) == m.BlobStatus(len(data), end, end == len(data))
    # The recipients are the members of that moment, but the uploader, as keyed
    # hashes: without the server's key, the rows do not say who is missing.
    members = (alice, bob, carol)
    assert await recipients(server, *members) == {
        (blob_id, bob.me.queue_id),
        (blob_id, carol.me.queue_id),
    }
    queues = {c.me.queue_id.encode() for c in members}
    for _, recipient in await rows(server, "blob_fetchers"):
        assert len(recipient) == 32 and not any(q in recipient for q in queues)
    for member in (bob, carol):
        assert await download(member, blob_id, access, len(data), part=700_000) == data
    assert blob_file(server, blob_id).read_bytes() == data
    # Carol has it; Bob still may fetch; then Bob has it and it is gone.
    assert (await fetched(carol, blob_id, access)).status_code == 200
    assert (await fetched(carol, blob_id, access)).status_code == 200  # again: no harm
    assert await recipients(server, *members) == {(blob_id, bob.me.queue_id)}
    assert (await get(bob, blob_id, access)).content == data[:MAX_BLOB_PART_BYTES]
    assert (await fetched(bob, blob_id, access)).status_code == 200
    assert await rows(server, "blobs") == [] and await rows(server, "blob_fetchers") == []
    assert not blob_file(server, blob_id).exists()
    response = await get(bob, blob_id, access)
    assert (response.status_code, code(response)) == (404, "not_found")


async def test_what_a_blob_row_holds(server: TestServer) -> None:
    alice = await server.registered()
    bob = await server.registered()
    group = await group_of(alice, bob)
    data = padded(1000)
    access, access_hash = access_pair()
    blob_id = await created(alice, group, len(data), access_hash)
    await put(alice, blob_id, 0, data)
    ((row_id, row_group, owner, size, received, complete, stored_hash, *times),) = await rows(
        server, "blobs"
    )
    assert (row_id, row_group, size, complete) == (blob_id, group, len(data), 1)
    assert received == len(data)
    assert stored_hash == access_hash and access not in (owner, stored_hash)
    # The owner is a keyed hash, not the account; times are whole hours.
    assert alice.me.account_id.encode() not in owner and len(owner) == 32
    assert all(t % (HOUR * 1000) == 0 for t in times)
    # The file's name is a keyed hash of the ID; the file is the owner's alone.
    path = blob_file(server, blob_id)
    assert blob_id.hex() not in path.name and len(path.name) == 64
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


async def test_server_info_reports_the_largest_file(server_factory: ServerFactory) -> None:
    async with server_factory(max_blob_bytes=12_345) as server:
        info = await server.client().server_info()
        assert info.max_blob_bytes == 12_345


async def test_an_upload_resumes_after_a_crash_that_left_a_longer_file(
    server: TestServer,
) -> None:
    alice = await server.registered()
    bob = await server.registered()
    group = await group_of(alice, bob)
    data = padded(300_000)
    access, access_hash = access_pair()
    blob_id = await created(alice, group, len(data), access_hash)
    assert _status(await put(alice, blob_id, 0, data[:100_000])).received == 100_000
    # The crash: the next part reached the file, but not the database.
    with blob_file(server, blob_id).open("ab") as fh:
        fh.write(b"\xee" * 70_000)
    assert _status(await status(alice, blob_id)).received == 100_000
    # A retry of the first part is told where to resume.
    response = await put(alice, blob_id, 0, data[:100_000])
    assert (response.status_code, code(response)) == (409, "blob_offset")
    assert response.json()["error"]["details"]["received"] == 100_000
    # The next part truncates the file to what was recorded first.
    assert _status(await put(alice, blob_id, 100_000, data[100_000:150_000])).received == 150_000
    assert blob_file(server, blob_id).read_bytes() == data[:150_000]
    assert _status(await put(alice, blob_id, 150_000, data[150_000:])).complete
    assert await download(bob, blob_id, access, len(data), part=1 << 20) == data


async def test_a_file_shorter_than_recorded_resumes_from_what_is_there(
    server: TestServer,
) -> None:
    alice = await server.registered()
    group = await group_of(alice)
    data = padded(50_000)
    _, access_hash = access_pair()
    blob_id = await created(alice, group, len(data), access_hash)
    await put(alice, blob_id, 0, data[:30_000])
    os.truncate(blob_file(server, blob_id), 10_000)  # lost outside the server
    response = await put(alice, blob_id, 30_000, data[30_000:])
    assert (response.status_code, code(response)) == (409, "blob_offset")
    assert response.json()["error"]["details"]["received"] == 10_000
    assert _status(await status(alice, blob_id)).received == 10_000
    assert _status(await put(alice, blob_id, 10_000, data[10_000:])).complete
    assert blob_file(server, blob_id).read_bytes() == data


async def test_status_for_the_owner_and_for_members_with_the_capability(
    server: TestServer,
) -> None:
    alice = await server.registered()
    bob = await server.registered()
    laptop = await alice.add_client()  # another device of the creator's account
    group = await group_of(alice, bob)
    data = padded(5000)
    access, access_hash = access_pair()
    blob_id = await created(alice, group, len(data), access_hash)
    await put(alice, blob_id, 0, data[:1000])
    expected = m.BlobStatus(len(data), 1000, False)
    assert _status(await status(alice, blob_id)) == expected
    assert _status(await status(bob, blob_id, access)) == expected
    response = await status(bob, blob_id)
    assert (response.status_code, code(response)) == (404, "not_found")
    # The blob is the creating device's queue's: another device of the account
    # may not ask as its owner, go on with it, or cancel it.
    before = await rows(server, "blobs")
    for response in (
        await status(laptop, blob_id),
        await put(laptop, blob_id, 1000, data[1000:]),
        await delete(laptop, blob_id),
    ):
        assert (response.status_code, code(response)) == (404, "not_found")
    assert await rows(server, "blobs") == before
    assert _status(await put(alice, blob_id, 1000, data[1000:])).complete
    assert (await delete(alice, blob_id)).status_code == 200
    assert await rows(server, "blobs") == []


async def test_download_ranges(server: TestServer) -> None:
    alice = await server.registered()
    bob = await server.registered()
    group = await group_of(alice, bob)
    data = padded(MAX_BLOB_PART_BYTES + 5000)
    access, access_hash = access_pair()
    blob_id = await created(alice, group, len(data), access_hash)
    # Not downloadable until complete.
    await put(alice, blob_id, 0, data[:MAX_BLOB_PART_BYTES])
    response = await get(bob, blob_id, access)
    assert (response.status_code, code(response)) == (404, "not_found")
    await put(alice, blob_id, MAX_BLOB_PART_BYTES, data[MAX_BLOB_PART_BYTES:])
    # No range: the first part; a range; a length past the end is cut short.
    assert (await get(bob, blob_id, access)).content == data[:MAX_BLOB_PART_BYTES]
    assert (await get(bob, blob_id, access, offset=7, length=13)).content == data[7:20]
    tail = await get(bob, blob_id, access, offset=len(data) - 10, length=1000)
    assert tail.content == data[-10:]
    assert (await get(bob, blob_id, access, offset=MAX_BLOB_PART_BYTES)).content == data[
        MAX_BLOB_PART_BYTES:
    ]
    for offset, length in ((len(data), 1), (len(data) + 1, None)):
        response = await get(bob, blob_id, access, offset=offset, length=length)
        assert (response.status_code, code(response)) == (400, "invalid_field")
    for query in ("length=0", f"length={MAX_BLOB_PART_BYTES + 1}", "offset=-1", "offset=x"):
        target = r.blob_path(r.BLOB, blob_id) + "?" + query
        response = await bob.raw("GET", target, headers={"X-Messenger-Blob-Access": ""})
        assert (response.status_code, code(response)) == (400, "invalid_field"), query


async def test_the_sweep_deletes_unfinished_and_expired_blobs(
    server_factory: ServerFactory,
) -> None:
    clock = FakeClock()
    async with server_factory(
        clock=clock, blob_upload_ttl_seconds=2 * HOUR, blob_retention_seconds=10 * HOUR
    ) as server:
        alice = await server.registered()
        bob = await server.registered()
        group = await group_of(alice, bob)
        unfinished_data = padded(4000)
        _, unfinished_hash = access_pair()
        unfinished = await created(alice, group, len(unfinished_data), unfinished_hash)
        await put(alice, unfinished, 0, unfinished_data[:100])
        done, access = await upload(alice, group, padded(2000))
        clock.advance(3 * HOUR + 1)  # past the upload time, rounded up to the hour
        result = await server.state.blobs.sweep()
        assert (result.expired, result.done) == (1, 0)
        assert [row[0] for row in await rows(server, "blobs")] == [done]
        assert not blob_file(server, unfinished).exists()
        response = await put(alice, unfinished, 100, unfinished_data[100:])
        assert (response.status_code, code(response)) == (404, "not_found")
        assert (await get(bob, done, access)).status_code == 200
        clock.advance(8 * HOUR)  # past the retention of the complete one
        # Treated as gone at once, before the sweep.
        response = await get(bob, done, access)
        assert (response.status_code, code(response)) == (404, "not_found")
        assert (await server.state.blobs.sweep()).expired == 1
        assert await rows(server, "blobs") == [] and await rows(server, "blob_fetchers") == []
        assert blob_dir(server) == {}


async def test_a_removed_member_does_not_keep_a_blob_alive(server: TestServer) -> None:
    alice = await server.registered()
    bob = await server.registered()
    carol = await server.registered()
    group = await group_of(alice, bob, carol)
    blob_id, access = await upload(alice, group, padded(1000))
    other_id, other_access = await upload(alice, group, padded(2000))
    assert (await fetched(bob, blob_id, access)).status_code == 200
    await remove(alice, group, 1, keep=[bob])  # Carol is removed
    # The sweep drops Carol from both; the first is then fetched by all.
    result = await server.state.blobs.sweep()
    assert (result.expired, result.done) == (0, 1)
    assert await recipients(server, alice, bob, carol) == {(other_id, bob.me.queue_id)}
    # Bob's fetched of the second deletes it: Carol no longer counts.
    assert (await fetched(bob, other_id, other_access)).status_code == 200
    assert await rows(server, "blobs") == []
    assert blob_dir(server) == {}


async def test_fetched_ignores_recipients_that_left_before_the_sweep(server: TestServer) -> None:
    alice = await server.registered()
    bob = await server.registered()
    carol = await server.registered()
    group = await group_of(alice, bob, carol)
    blob_id, access = await upload(alice, group, padded(1000))
    await remove(alice, group, 1, keep=[bob])
    assert (await fetched(bob, blob_id, access)).status_code == 200
    assert await rows(server, "blobs") == []
    assert not blob_file(server, blob_id).exists()


async def test_recipients_stored_by_queue_before_migration_10_are_kept(server: TestServer) -> None:
    """A blob completed by a server from before keyed recipients has its recipients'
    queue IDs in ``blob_recipients``: the server moves them to keyed hashes, and a
    recipient's fetched does not delete the blob while another has yet to fetch."""
    alice = await server.registered()
    bob = await server.registered()
    carol = await server.registered()
    group = await group_of(alice, bob, carol)
    blob_id, access = await upload(alice, group, padded(1000))

    async def as_before(tx: Tx) -> None:
        await tx.execute("DELETE FROM blob_fetchers")
        for member in (bob, carol):
            await tx.execute(
                "INSERT INTO blob_recipients (blob_id, queue_id) VALUES (?, ?)",
                blob_id,
                member.me.queue_id,
            )

    await server.state.db.transaction(as_before)
    assert (await fetched(bob, blob_id, access)).status_code == 200
    assert await rows(server, "blob_recipients") == []
    assert await recipients(server, alice, bob, carol) == {(blob_id, carol.me.queue_id)}
    assert (await get(carol, blob_id, access)).status_code == 200
    assert (await fetched(carol, blob_id, access)).status_code == 200
    assert await rows(server, "blobs") == [] and not blob_file(server, blob_id).exists()


async def test_the_sweep_removes_files_without_a_row(server_factory: ServerFactory) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock) as server:
        alice = await server.registered()
        bob = await server.registered()
        group = await group_of(alice, bob)
        kept, _ = await upload(alice, group, padded(1000))
        directory = server.state.blobs.directory
        old = directory / ("ab" * 32)  # a crash between the file and its row
        fresh = directory / ("cd" * 32)  # a blob being created right now
        old.write_bytes(b"orphan")
        fresh.write_bytes(b"new")
        past = clock() - ORPHAN_GRACE_SECONDS - 10
        os.utime(old, (past, past))
        os.utime(blob_file(server, kept), (past, past))
        assert (await server.state.blobs.sweep()).orphans == 1
        assert not old.exists() and fresh.exists() and blob_file(server, kept).exists()


async def test_the_quota(server_factory: ServerFactory) -> None:
    size = padme(60_000)
    async with server_factory(blob_quota_bytes=2 * size + 10) as server:
        alice = await server.registered()
        bob = await server.registered()
        group = await group_of(alice, bob)
        _, access_hash = access_pair()
        first = await created(alice, group, size, access_hash)
        await created(alice, group, size, access_hash)
        before = await rows(server, "blobs")
        response = await create(alice, group, size, access_hash)
        assert (response.status_code, code(response)) == (507, "quota_exceeded")
        assert response.json()["error"]["details"]["used_bytes"] == 2 * size
        assert await rows(server, "blobs") == before
        # Another account does not share it (nor does another device: it is each
        # queue's, tests/server/test_blob_queue_requests.py); a device of the
        # account that is no member reserves nothing.
        laptop = await alice.add_client()  # not a member of the group
        response = await create(laptop, group, size, access_hash)
        assert (response.status_code, code(response)) == (404, "unknown_group")
        await created(bob, group, size, access_hash)
        # Deleting one frees its share.
        assert (await delete(alice, first)).status_code == 200
        await created(alice, group, size, access_hash)


async def test_no_space_below_the_reserve(server_factory: ServerFactory) -> None:
    async with server_factory(blob_reserve_bytes=1 << 60) as server:
        alice = await server.registered()
        group = await group_of(alice)
        _, access_hash = access_pair()
        response = await create(alice, group, padme(1000), access_hash)
        assert (response.status_code, code(response)) == (507, "no_space")
        assert await rows(server, "blobs") == []


async def test_no_space_counts_unfinished_uploads(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    free = shutil.disk_usage(tmp_path).free
    # A quarter of the free disk: nothing is written, the blobs are only reserved.
    size = padme(free // 4)
    # Room for one more blob of this size beside the reserve, not for two
    # (half a blob of slack either way for other writers of the disk).
    async with server_factory(
        blob_reserve_bytes=free - size - size // 2,
        blob_quota_bytes=1 << 50,
        max_blob_bytes=size,
    ) as server:
        alice = await server.registered()
        group = await group_of(alice)
        _, access_hash = access_pair()
        await created(alice, group, size, access_hash)
        response = await create(alice, group, size, access_hash)
        assert (response.status_code, code(response)) == (507, "no_space")


async def test_sizes_must_be_padme_and_within_the_limit(server_factory: ServerFactory) -> None:
    async with server_factory(max_blob_bytes=3 << 20) as server:
        alice = await server.registered()
        group = await group_of(alice)
        _, access_hash = access_pair()
        largest = max_stored_size(3 << 20)
        assert is_padme(largest) and largest >= (3 << 20) + 4 * 16
        await created(alice, group, largest, access_hash)
        response = await create(alice, group, padme(largest + 1), access_hash)
        assert (response.status_code, code(response)) == (413, "blob_too_large")
        assert response.json()["error"]["details"]["max_blob_bytes"] == 3 << 20
        for size in (1001, padme(5000) - 1, padme(70_000) + 1):
            assert not is_padme(size)
            response = await create(alice, group, size, access_hash)
            assert (response.status_code, code(response)) == (400, "invalid_field"), size
        assert len(await rows(server, "blobs")) == 1


async def test_the_creator_deletes_a_blob(server: TestServer) -> None:
    alice = await server.registered()
    bob = await server.registered()
    group = await group_of(alice, bob)
    blob_id, access = await upload(alice, group, padded(10_000))
    assert (await delete(alice, blob_id)).status_code == 200
    assert await rows(server, "blobs") == [] and await rows(server, "blob_fetchers") == []
    assert blob_dir(server) == {}
    response = await get(bob, blob_id, access)
    assert (response.status_code, code(response)) == (404, "not_found")
    response = await delete(alice, blob_id)
    assert (response.status_code, code(response)) == (404, "not_found")


async def test_metrics_count_blob_bytes(server: TestServer) -> None:
    alice = await server.registered()
    bob = await server.registered()
    group = await group_of(alice, bob)
    data = padded(5000)
    blob_id, access = await upload(alice, group, data)
    await get(bob, blob_id, access, offset=0, length=100)
    await server.state.blobs.sweep()
    assert AVAILABLE, "messenger[test] installs prometheus-client (the [server] extra)"
    sample = server.state.metrics.registry.get_sample_value
    assert sample("messenger_blob_bytes_total", {"direction": "uploaded"}) == len(data)
    assert sample("messenger_blob_bytes_total", {"direction": "downloaded"}) == 100
    assert sample("messenger_blobs_total", {"event": "completed"}) == 1
    assert sample("messenger_blobs_stored") == 1
    assert sample("messenger_blob_bytes_stored") == len(data)


async def test_a_few_mebibytes_over_a_real_socket(database_url: str, tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", database_url, blob_reserve_bytes=0)
    app = create_app(config, run_sweeper=False)
    async with serve(app, "uvicorn", time.time) as server:
        alice = await server.registered()
        bob = await server.registered()
        group = await group_of(alice, bob)
        data = padded(5 << 20)
        blob_id, access = await upload(alice, group, data, part=MAX_BLOB_PART_BYTES)
        got = await download(bob, blob_id, access, len(data), part=3 << 20)
        assert got == data


def test_blob_settings_from_toml_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        "[blobs]\nmax_blob_bytes = 5000000\nquota_bytes = 9000000\nreserve_bytes = 0\n"
        "upload_ttl_seconds = 600\nretention_seconds = 86400\n"
    )
    config = load_config(path, {"MESSENGER_BLOB_QUOTA_BYTES": "123456789"})
    assert (
        config.max_blob_bytes,
        config.blob_quota_bytes,
        config.blob_reserve_bytes,
        config.blob_upload_ttl_seconds,
        config.blob_retention_seconds,
    ) == (5_000_000, 123_456_789, 0, 600, 86_400)
    defaults = ServerConfig()
    assert (defaults.max_blob_bytes, defaults.blob_quota_bytes) == (100_000_000, 1 << 30)
    assert defaults.blob_reserve_bytes == 256 << 20
    for bad in ({"max_blob_bytes": 0}, {"blob_reserve_bytes": -1}, {"max_blob_bytes": 1 << 45}):
        with pytest.raises(ConfigError):
            ServerConfig(**bad)  # type: ignore[arg-type]
    path.write_text('[blobs]\nmax_blob_bytes = "big"\n')
    with pytest.raises(ConfigError):
        load_config(path, {})


async def test_the_servers_sweeper_runs_the_blob_sweep(database_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    config = make_config(
        tmp_path / "data", database_url, blob_reserve_bytes=0, sweep_interval_seconds=0.05
    )
    app = create_app(config, clock=clock, run_sweeper=True)
    async with serve(app, "asgi", clock) as server:
        alice = await server.registered()
        group = await group_of(alice)
        data = padded(5000)
        _, access_hash = access_pair()
        blob_id = await created(alice, group, len(data), access_hash)
        await put(alice, blob_id, 0, data[:100])
        path = blob_file(server, blob_id)
        assert path.exists()
        clock.advance(config.blob_upload_ttl_seconds + HOUR)
        await until(lambda: not path.exists(), "the sweeper to delete the unfinished blob")
        assert await rows(server, "blobs") == []


def test_openapi_describes_the_raw_routes() -> None:
    paths = openapi_document("test")["paths"]
    put_op = paths[r.BLOB]["put"]
    assert list(put_op["requestBody"]["content"]) == [OCTET_STREAM]
    assert list(put_op["responses"]["200"]["content"]) == ["application/json"]
    get_op = paths[r.BLOB]["get"]
    assert "requestBody" not in get_op
    assert list(get_op["responses"]["200"]["content"]) == [OCTET_STREAM]
    names = {p["name"] for p in get_op["parameters"]}
    assert names == {
        "blob_id",
        "offset",
        "length",
        "X-Messenger-Blob-Access",
        "X-Messenger-Group-Token",
        "X-Messenger-Queue",
        "X-Messenger-Queue-Signature",
    }
    # A recipient reads with a queue request, or signs and proves its queue.
    assert get_op["security"] == [{"requestSignature": []}, {"queueSignature": []}]
    # The last part of an upload needs the group's token; deleting needs no membership.
    assert "X-Messenger-Group-Token" in {p["name"] for p in put_op["parameters"]}
    delete_op = paths[r.BLOB]["delete"]
    assert {p["name"] for p in delete_op["parameters"]} == {
        "blob_id",
        "X-Messenger-Queue",
        "X-Messenger-Queue-Signature",
    }
    assert "409" in put_op["responses"] and "507" in paths[r.BLOBS]["post"]["responses"]
