"""Link mailboxes (``/v1/links``, docs/devices.md §2 "The mailbox").

The creator (an existing device, signed) opens a mailbox; messages to the
new device are posted signed and read unsigned, messages to the creator are
posted unsigned and read signed. The attacks: a stranger's signed request
gets the same 404 as an unknown link; an unsigned reader never sees the
creator's direction; a replayed signed post is refused; unsigned posts are
few and small; the mailbox is bounded and expires.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.fields import b64encode
from messenger.api.signing import HEADER_CLIENT
from messenger.server import create_app, links
from messenger.server.links import TO_CREATOR, TO_NEW_DEVICE, wake_key

from .client import ApiClient
from .conftest import FakeClock, ServerFactory, TestServer, make_config, postgres_schema, serve
from .dbtools import rows, snapshot
from .devices_tools import code
from .hub_watch import DEADLINE, until, watch_waits

pytestmark = pytest.mark.anyio


def _messages(link_id: bytes) -> str:
    return r.link_path(r.LINK_MESSAGES, link_id)


async def _open(creator: ApiClient, link_id: bytes | None = None) -> bytes:
    link_id = link_id or os.urandom(m.LINK_ID_BYTES)
    await creator.call("POST", r.LINKS, m.CreateLinkRequest(link_id), m.CreateLinkResponse)
    return link_id


async def _post(
    client: ApiClient, link_id: bytes, sealed: bytes, *, signed: bool
) -> httpx.Response:
    return await client.raw("POST", _messages(link_id), m.LinkPostRequest(sealed), signed=signed)


async def _fetch(
    client: ApiClient, link_id: bytes, *, signed: bool, after: int = 0, wait: int | None = None
) -> httpx.Response:
    query = f"?after={after}" + (f"&wait={wait}" if wait is not None else "")
    return await client.raw("GET", _messages(link_id) + query, signed=signed)


def _sealed(response: httpx.Response) -> list[tuple[int, bytes]]:
    assert response.status_code == 200, response.json()
    return [(x.seq, x.sealed) for x in m.LinkMessages.from_json(response.json()).messages]


async def test_messages_go_both_ways(server: TestServer) -> None:
    alice = await server.registered()
    new = server.client()  # the new device: no identity yet, unsigned requests only
    link_id = await _open(alice)
    response = await _post(alice, link_id, b"invitation", signed=True)
    assert m.LinkPostResponse.from_json(response.json()).seq == 1
    assert _sealed(await _fetch(new, link_id, signed=False)) == [(1, b"invitation")]
    response = await _post(new, link_id, b"offer", signed=False)
    assert m.LinkPostResponse.from_json(response.json()).seq == 1
    assert _sealed(await _fetch(alice, link_id, signed=True)) == [(1, b"offer")]
    await _post(alice, link_id, b"answer", signed=True)
    await _post(new, link_id, b"ready", signed=False)
    assert _sealed(await _fetch(new, link_id, signed=False, after=1)) == [(2, b"answer")]
    assert _sealed(await _fetch(alice, link_id, signed=True)) == [(1, b"offer"), (2, b"ready")]
    # The unsigned reader never sees the creator's direction, nor the creator the other.
    assert _sealed(await _fetch(new, link_id, signed=False)) == [
        (1, b"invitation"),
        (2, b"answer"),
    ]
    # Closed by anyone holding the ID (unsigned); then it is gone for everyone.
    response = await new.raw("DELETE", r.link_path(r.LINK, link_id), signed=False)
    assert response.status_code == 200
    for response in (
        await _fetch(new, link_id, signed=False),
        await _fetch(alice, link_id, signed=True),
        await _post(alice, link_id, b"late", signed=True),
    ):
        assert (response.status_code, code(response)) == (404, "not_found")
    assert await rows(server, "links") == [] and await rows(server, "link_messages") == []


async def test_only_the_link_id_sealed_bytes_and_counters_are_stored(server: TestServer) -> None:
    alice = await server.registered()
    link_id = await _open(alice)
    await _post(alice, link_id, b"sealed-1", signed=True)
    (link,) = await rows(server, "links")
    assert link[0] == link_id and alice.me.client_id in link
    assert sorted(await rows(server, "link_messages")) == [(link_id, TO_NEW_DEVICE, 1, b"sealed-1")]


async def test_the_creator_closes_the_link(server: TestServer) -> None:
    alice = await server.registered()
    link_id = await _open(alice)
    response = await alice.raw("DELETE", r.link_path(r.LINK, link_id))
    assert response.status_code == 200
    response = await alice.raw("DELETE", r.link_path(r.LINK, link_id))
    assert (response.status_code, code(response)) == (404, "not_found")


async def test_a_strangers_signed_requests_get_the_answer_to_an_unknown_link(
    server: TestServer,
) -> None:
    alice = await server.registered()
    mallory = await server.registered()
    link_id = await _open(alice)
    await _post(alice, link_id, b"invitation", signed=True)
    await _post(server.client(), link_id, b"offer", signed=False)
    unknown = await _fetch(mallory, os.urandom(16), signed=True)
    assert unknown.status_code == 404
    before = await snapshot(server)
    for response in (
        await _fetch(mallory, link_id, signed=True),
        await _fetch(mallory, link_id, signed=True, wait=1),
        await _post(mallory, link_id, b"forged", signed=True),
        await mallory.raw("DELETE", r.link_path(r.LINK, link_id)),
    ):
        assert (response.status_code, response.json()) == (404, unknown.json())
    after = await snapshot(server)
    assert {k: v for k, v in after.items() if k != "request_nonces"} == {
        k: v for k, v in before.items() if k != "request_nonces"
    }
    # A device of the creator's own account is a stranger to the link too.
    laptop = await alice.add_client()
    response = await _fetch(laptop, link_id, signed=True)
    assert (response.status_code, response.json()) == (404, unknown.json())


async def test_a_bad_or_partial_signature_is_refused_not_anonymous(server: TestServer) -> None:
    alice = await server.registered()
    link_id = await _open(alice)
    target = _messages(link_id)
    body = m.LinkPostRequest(b"x").dumps()
    headers = alice.sign("POST", target, body)
    headers["X-Messenger-Signature"] = b64encode(bytes(64))
    response = await alice.http.post(
        target, content=body, headers={**headers, "content-type": "application/json"}
    )
    assert (response.status_code, code(response)) == (401, "auth_invalid")
    response = await alice.http.get(target, headers={HEADER_CLIENT: alice.me.client_id})
    assert (response.status_code, code(response)) == (401, "auth_missing")
    assert await rows(server, "link_messages") == []


async def test_a_replayed_signed_post_is_refused(server: TestServer) -> None:
    alice = await server.registered()
    link_id = await _open(alice)
    target = _messages(link_id)
    body = m.LinkPostRequest(b"invitation").dumps()
    headers = {**alice.sign("POST", target, body), "content-type": "application/json"}
    first = await alice.http.post(target, content=body, headers=headers)
    assert first.status_code == 200
    replay = await alice.http.post(target, content=body, headers=headers)
    assert (replay.status_code, code(replay)) == (401, "auth_replayed")
    assert len(await rows(server, "link_messages")) == 1


async def test_unsigned_posts_are_few_and_small(server: TestServer) -> None:
    alice = await server.registered()
    new = server.client()
    link_id = await _open(alice)
    response = await _post(new, link_id, bytes(m.MAX_LINK_OFFER_BYTES + 1), signed=False)
    assert (response.status_code, code(response)) == (400, "limit_exceeded")
    for _ in range(m.MAX_LINK_MESSAGES_TO_CREATOR):
        response = await _post(new, link_id, bytes(m.MAX_LINK_OFFER_BYTES), signed=False)
        assert response.status_code == 200
    response = await _post(new, link_id, b"one more", signed=False)
    assert (response.status_code, code(response)) == (400, "limit_exceeded")
    # The creator may post a big chunk (a history snapshot).
    response = await _post(alice, link_id, bytes(m.MAX_LINK_MESSAGE_BYTES), signed=True)
    assert response.status_code == 200


async def test_a_link_holds_a_bounded_number_of_bytes(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(links, "MAX_LINK_BYTES", 1000)
    alice = await server.registered()
    new = server.client()
    link_id = await _open(alice)
    assert (await _post(alice, link_id, bytes(600), signed=True)).status_code == 200
    assert (await _post(new, link_id, bytes(300), signed=False)).status_code == 200
    for response in (
        await _post(alice, link_id, bytes(101), signed=True),
        await _post(new, link_id, bytes(101), signed=False),
    ):
        assert (response.status_code, code(response)) == (400, "limit_exceeded")
    assert (await _post(alice, link_id, bytes(100), signed=True)).status_code == 200


async def test_a_fetch_is_bounded_in_count_and_bytes(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(links, "MAX_LINK_FETCH_BYTES", 2500)
    alice = await server.registered()
    new = server.client()
    link_id = await _open(alice)
    for i in range(5):
        await _post(alice, link_id, bytes([i]) * 1000, signed=True)
    got = _sealed(await _fetch(new, link_id, signed=False))
    assert [seq for seq, _ in got] == [1, 2]
    got = _sealed(await _fetch(new, link_id, signed=False, after=2))
    assert [seq for seq, _ in got] == [3, 4]
    # A message bigger than the bound still comes, alone.
    monkeypatch.setattr(links, "MAX_LINK_FETCH_BYTES", 10)
    got = _sealed(await _fetch(new, link_id, signed=False, after=4))
    assert [seq for seq, _ in got] == [5]
    monkeypatch.setattr(links, "MAX_LINK_FETCH_BYTES", 8 << 20)
    for _ in range(m.MAX_LINK_FETCH):
        await _post(alice, link_id, b"x", signed=True)
    got = _sealed(await _fetch(new, link_id, signed=False, after=5))
    assert len(got) == m.MAX_LINK_FETCH


async def test_one_open_link_per_account_and_unique_ids(server: TestServer) -> None:
    alice = await server.registered()
    laptop = await alice.add_client()
    bob = await server.registered()
    link_id = await _open(alice)
    response = await laptop.raw("POST", r.LINKS, m.CreateLinkRequest(os.urandom(16)))
    assert (response.status_code, code(response)) == (400, "limit_exceeded")
    response = await bob.raw("POST", r.LINKS, m.CreateLinkRequest(link_id))
    assert (response.status_code, code(response)) == (409, "key_in_use")
    response = await alice.raw("POST", r.LINKS, m.CreateLinkRequest(b"short"))
    assert (response.status_code, code(response)) == (400, "invalid_field")
    await alice.raw("DELETE", r.link_path(r.LINK, link_id))
    await _open(laptop)


async def test_a_malformed_link_id_is_refused(server: TestServer) -> None:
    new = server.client()
    for bad in ("short", "!!!!", b64encode(bytes(17))):
        response = await new.raw("GET", r.LINK_MESSAGES.replace("{link_id}", bad), signed=False)
        assert (response.status_code, code(response)) == (400, "invalid_field")


async def test_long_polls_wake_on_a_post(server: TestServer) -> None:
    alice = await server.registered()
    new = server.client()
    link_id = await _open(alice)
    with watch_waits(server.state.hub, wake_key(link_id, TO_NEW_DEVICE)) as waits:
        poll = asyncio.create_task(_fetch(new, link_id, signed=False, wait=30))
        await until(lambda: waits.waits == 1, "the new device's long poll")
        await _post(alice, link_id, b"invitation", signed=True)
        assert _sealed(await asyncio.wait_for(poll, DEADLINE)) == [(1, b"invitation")]
    with watch_waits(server.state.hub, wake_key(link_id, TO_CREATOR)) as waits:
        poll = asyncio.create_task(_fetch(alice, link_id, signed=True, wait=30))
        await until(lambda: waits.waits == 1, "the creator's long poll")
        await _post(new, link_id, b"offer", signed=False)
        assert _sealed(await asyncio.wait_for(poll, DEADLINE)) == [(1, b"offer")]
    # A close ends a long poll with not_found.
    with watch_waits(server.state.hub, wake_key(link_id, TO_NEW_DEVICE)) as waits:
        poll = asyncio.create_task(_fetch(new, link_id, signed=False, after=1, wait=30))
        await until(lambda: waits.waits == 1, "the long poll")
        await alice.raw("DELETE", r.link_path(r.LINK, link_id))
        response = await asyncio.wait_for(poll, DEADLINE)
        assert (response.status_code, code(response)) == (404, "not_found")


async def test_a_long_poll_wakes_across_instances(tmp_path: Path) -> None:
    """Two server instances on one PostgreSQL: the new device polls one, the
    creator posts through the other."""
    async with postgres_schema() as dsn:
        config = make_config(tmp_path / "shared", dsn)
        app_a = create_app(config, run_sweeper=False)
        app_b = create_app(config, run_sweeper=False)
        async with serve(app_a, "uvicorn", time.time) as a, serve(app_b, "uvicorn", time.time) as b:
            alice = await a.registered()
            link_id = await _open(alice)
            with watch_waits(b.state.hub, wake_key(link_id, TO_NEW_DEVICE)) as waits:
                poll = asyncio.create_task(_fetch(b.client(), link_id, signed=False, wait=30))
                await until(lambda: waits.waits == 1, "the long poll on b")
                await _post(alice, link_id, b"invitation", signed=True)
                assert _sealed(await asyncio.wait_for(poll, DEADLINE)) == [(1, b"invitation")]


async def test_links_expire_when_idle_and_at_most_after_an_hour(
    server_factory: ServerFactory,
) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock) as server:
        alice = await server.registered()
        new = server.client()
        link_id = await _open(alice)
        # The creator's requests keep it open; the new device's do not.
        for _ in range(6):
            clock.advance(m.LINK_IDLE_SECONDS - 60)
            _sealed(await _fetch(new, link_id, signed=False))
            response = await _fetch(alice, link_id, signed=True)
            expires_at = m.LinkMessages.from_json(response.json()).expires_at
        created = clock.now - 6 * (m.LINK_IDLE_SECONDS - 60)
        assert expires_at == int(created * 1000) + m.LINK_MAX_SECONDS * 1000
        clock.advance(expires_at / 1000 - clock.now)
        response = await _fetch(new, link_id, signed=False)
        assert (response.status_code, code(response)) == (404, "not_found")
        assert len(await rows(server, "links")) == 1
        assert await server.state.links.sweep() == 1
        assert await rows(server, "links") == []
        # An idle link closes after LINK_IDLE_SECONDS, whoever else uses it.
        link_id = await _open(alice)
        await _post(new, link_id, b"offer", signed=False)
        clock.advance(m.LINK_IDLE_SECONDS - 1)
        _sealed(await _fetch(new, link_id, signed=False))
        clock.advance(1)
        for response in (
            await _fetch(new, link_id, signed=False),
            await _fetch(alice, link_id, signed=True),
        ):
            assert (response.status_code, code(response)) == (404, "not_found")
        # An expired link does not block a new one of the account, nor its ID.
        await _open(alice, link_id)
        assert await server.state.links.sweep() == 0
        assert len(await rows(server, "link_messages")) == 0


async def test_unsigned_link_requests_are_rate_limited_per_address(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(link_requests_per_ip_per_minute=3) as server:
        alice = await server.registered()
        new = server.client()
        link_id = await _open(alice)
        for _ in range(3):
            assert (await _fetch(new, link_id, signed=False)).status_code == 200
        response = await _fetch(new, link_id, signed=False)
        assert (response.status_code, code(response)) == (429, "rate_limited")
        # The creator's signed requests are not held to it.
        assert (await _fetch(alice, link_id, signed=True)).status_code == 200


async def test_no_log_line_names_a_link_a_client_or_an_address(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await server.registered()
    laptop = await alice.add_client()
    new = server.client()
    link_id = await _open(alice)
    await _post(alice, link_id, b"invitation", signed=True)
    await _post(new, link_id, b"offer", signed=False)
    await _fetch(new, link_id, signed=False)
    await _fetch(alice, link_id, signed=True)
    await new.raw("DELETE", r.link_path(r.LINK, link_id), signed=False)
    await alice.raw("DELETE", r.client_path(laptop.me.client_id))
    await laptop.raw("GET", r.KEY_PACKAGE_COUNT)  # device_removed
    text = "\n".join(
        f"{record.getMessage()} {getattr(record, 'fields', {})}"
        for record in caplog.records
        if record.name.startswith("messenger.server")
    )
    assert "link opened" in text and "client removed" in text
    for secret in (
        b64encode(link_id),
        link_id.hex(),
        alice.me.client_id,
        laptop.me.client_id,
        laptop.me.queue_id,
        alice.me.account_id,
        "127.0.0.1",
    ):
        assert secret not in text, secret
