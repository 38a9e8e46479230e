"""A group made with the queue key alone (docs/metadata.md §1).

``POST /v1/groups`` registers a group whose only member is the creator's
queue; the server needs the queue, not the client, so the route takes a
**queue request** (signed by the queue's own key, naming no client), and
the app makes its groups so once the server has its queue key. The live
server then does not see which client made which group. Each attack below
is another user presenting a queue request it should not be able to make;
the refusal creates no group and changes nothing.
"""

from __future__ import annotations

import os

import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.signing import HEADER_CLIENT, HEADER_SIGNATURE

from . import mls_data
from .client import send_token_hash
from .conftest import ServerFactory, TestServer
from .dbtools import rows, snapshot

pytestmark = pytest.mark.anyio


async def _groups(server: TestServer) -> set[bytes]:
    """The IDs of the groups the server holds."""
    return {bytes(row[0]) for row in await rows(server, "mls_groups")}


def _request(group_id: bytes) -> m.CreateGroupRequest:
    return m.CreateGroupRequest(group_id, send_token_hash=send_token_hash(group_id, 0))


async def test_a_group_made_by_queue_request_has_the_queue_as_its_member(
    server: TestServer,
) -> None:
    """Alice makes a group naming no client; her queue is its member, so she
    can add Bob, who gets the Welcome and the group's messages."""
    alice, bob = await server.registered(), await server.registered()
    await alice.give_queue_key()
    group_id = os.urandom(32)
    body = _request(group_id).dumps()
    headers = alice.queue_headers("POST", r.GROUPS, body)
    assert HEADER_CLIENT not in headers and HEADER_SIGNATURE not in headers
    answer = await alice.create_group(group_id, by_queue=True)
    assert answer.epoch == 0
    assert group_id in await _groups(server)
    await alice.commit(
        group_id,
        0,
        mls_data.commit(group_id, 0),
        [alice.me.queue_id, bob.me.queue_id],
        welcome=await alice.welcome_for(bob),
        welcome_to=[bob.me.queue_id],
    )
    await alice.send(group_id, mls_data.application(group_id, 1, b"hello"))
    messages = (await bob.fetch()).messages
    assert len(messages) == 2, "the Welcome and the message"


async def test_making_groups_by_queue_request_spends_the_queues_budget(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(account_requests_per_minute=3) as server:
        alice = await server.registered()
        await alice.give_queue_key()
        codes = []
        for _ in range(5):
            response = await alice.queue_raw("POST", r.GROUPS, _request(os.urandom(32)))
            codes.append(response.status_code)
        assert codes[:3] == [200] * 3 and codes[-1] == 429, codes
        # The account's budget is another one.
        assert (await alice.raw("GET", r.KEY_PACKAGE_COUNT)).status_code == 200
        assert len(await _groups(server)) == 3


async def test_queue_requests_that_may_not_make_a_group_change_nothing(
    server: TestServer,
) -> None:
    """Mallory signs with her queue key for Alice's queue; Alice's captured
    request is replayed (another ID in the body cannot reuse its signature);
    a queue without a key; a taken ID: each refused, no group made."""
    alice, carol, mallory = [await server.registered() for _ in range(3)]
    await alice.give_queue_key()
    await mallory.give_queue_key()
    assert mallory.queue_key is not None
    taken = os.urandom(32)
    await alice.create_group(taken, by_queue=True)
    before = await snapshot(server)

    wanted = os.urandom(32)
    body = _request(wanted).dumps()
    forged = alice.queue_headers("POST", r.GROUPS, body, key=mallory.queue_key)
    response = await alice.queue_raw("POST", r.GROUPS, _request(wanted), headers=forged)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "auth_invalid")
    used = alice.queue_headers("POST", r.GROUPS, _request(taken).dumps())
    other = await alice.queue_raw("POST", r.GROUPS, _request(wanted), headers=used)
    assert (other.status_code, other.json()["error"]["code"]) == (401, "auth_invalid")
    with pytest.raises(ApiError) as keyless:
        carol.queue_key = mallory.queue_key  # no key of Carol's queue at the server
        await carol.create_group(wanted, by_queue=True)
    assert keyless.value.code is ErrorCode.AUTH_INVALID
    assert await snapshot(server) == before
    with pytest.raises(ApiError) as exists:
        await alice.create_group(taken, by_queue=True)
    assert exists.value.code is ErrorCode.GROUP_EXISTS
    groups = await _groups(server)
    assert wanted not in groups and taken in groups
