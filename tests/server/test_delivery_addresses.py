"""Delivery addresses: leaves name their queue sealed by the server, never its ID.

Another user who claims a KeyPackage, a member reading the ratchet tree and
an external joiner reading the GroupInfo see only addresses the server
sealed (messenger.api.delivery_address); the server opens them when a
commit names the new epoch's members, and refuses a KeyPackage or an
external commit whose leaf names another client's queue.
"""

from __future__ import annotations

import os

import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.delivery_address import SEALED_ADDRESS_LENGTH
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import b64decode, b64encode
from messenger.api.padding import pad
from messenger.server.queue_addresses import QueueAddresses

from . import mls_data
from .client import ApiClient
from .conftest import TestServer
from .devices_tools import remove

pytestmark = pytest.mark.anyio

GID = b"G" * 32


def test_an_address_opens_to_its_queue_and_only_under_its_key() -> None:
    key, other = os.urandom(32), os.urandom(32)
    addresses = QueueAddresses(key)
    queue = b64encode(os.urandom(16))
    first, second = addresses.issue(queue), addresses.issue(queue)
    assert len(first) == len(second) == SEALED_ADDRESS_LENGTH
    assert first != second  # two addresses of one queue share no value
    assert queue not in first
    assert addresses.resolve(first) == addresses.resolve(second) == queue
    assert QueueAddresses(other).resolve(first) is None
    raw = bytearray(b64decode(first))
    raw[20] ^= 1
    assert addresses.resolve(b64encode(bytes(raw))) is None
    assert addresses.resolve(queue) == queue  # a plain ID from before addresses
    assert addresses.resolve(b64encode(os.urandom(45))) is None
    assert addresses.resolve("!" * SEALED_ADDRESS_LENGTH) is None
    assert addresses.resolve(b64encode(os.urandom(20))) is None
    with pytest.raises(ValueError, match="queue ID"):
        addresses.issue(b64encode(os.urandom(15)))


async def test_the_route_hands_out_fresh_addresses_to_signed_clients(server: TestServer) -> None:
    alice = await server.registered()
    first, second = await alice.queue_address(), await alice.queue_address()
    assert first != second and alice.me.queue_id not in (first, second)
    state = server.state
    assert state.addresses.resolve(first) == state.addresses.resolve(second) == alice.me.queue_id
    response = await server.http.get(r.QUEUE_ADDRESS)
    assert response.status_code == 401
    # A device removed from its account gets no address any more.
    laptop = await alice.add_client()
    assert (await remove(alice, laptop.me.client_id)).status_code == 200
    with pytest.raises(ApiError) as refused:
        await laptop.queue_address()
    assert refused.value.code is ErrorCode.DEVICE_REMOVED


async def test_a_claim_hands_out_the_leaf_address_not_the_queue(server: TestServer) -> None:
    alice, bob = await server.registered(), await server.registered()
    address = await bob.queue_address()
    await bob.upload_key_packages([bob.key_package(delivery=address)])
    raw = await alice.raw(
        "POST", r.CLAIM_KEY_PACKAGES, m.ClaimKeyPackagesRequest(bob.me.account_id, None)
    )
    assert raw.status_code == 200
    # The claimer's whole answer holds no queue ID of Bob's.
    assert bob.me.queue_id not in raw.text
    (claimed,) = m.ClaimKeyPackagesResponse.from_json(raw.json()).key_packages
    assert claimed.queue_id == address
    # A KeyPackage without the extension (none of this app's) keeps the old answer.
    await bob.upload_key_packages([bob.key_package()])
    (plain,) = (await alice.claim(bob.me.account_id)).key_packages
    assert plain.queue_id == bob.me.queue_id


async def test_a_key_package_must_name_its_uploaders_own_queue(server: TestServer) -> None:
    alice, mallory = await server.registered(), await server.registered()
    alices = await alice.queue_address()
    for delivery in (alices, alice.me.queue_id, "not an address at all", "é"):
        with pytest.raises(ApiError) as refused:
            await mallory.upload_key_packages(
                [mallory.key_package(), mallory.key_package(delivery=delivery)]
            )
        assert refused.value.code is ErrorCode.INVALID_MESSAGE
        assert "delivery address" in refused.value.message
        assert refused.value.details == {"index": 1}
    with pytest.raises(ApiError) as refused:
        await mallory.upload_key_packages([], mallory.key_package(delivery=alices))
    assert refused.value.code is ErrorCode.INVALID_MESSAGE
    count = await mallory.key_package_count()
    assert (count.available, count.last_resort) == (0, False)  # nothing was stored
    # Its own address, or its own plain queue ID (a KeyPackage made before), pass.
    own = await mallory.queue_address()
    uploaded = await mallory.upload_key_packages(
        [mallory.key_package(delivery=own), mallory.key_package(delivery=mallory.me.queue_id)]
    )
    assert uploaded.available == 2


async def _claimed_address(adder: ApiClient, member: ApiClient) -> tuple[str, bytes]:
    """``member`` uploads a KeyPackage with an address; ``adder`` claims it."""
    await member.upload_key_packages([member.key_package(delivery=await member.queue_address())])
    (claimed,) = (await adder.claim(member.me.account_id)).key_packages
    return claimed.queue_id, claimed.key_package


async def test_a_commit_names_members_by_address(server: TestServer) -> None:
    alice, bob, carol = [await server.registered() for _ in range(3)]
    await alice.create_group(GID)
    bobs, bob_kp = await _claimed_address(alice, bob)
    mine = await alice.queue_address()
    welcome = mls_data.welcome([mls_data.key_package_ref(bob_kp)])
    # Two addresses of one queue count once; the plain ID of an old leaf is taken.
    members = [mine, await alice.queue_address(), bobs]
    await alice.commit(GID, 0, mls_data.commit(GID, 0), members, welcome=welcome, welcome_to=[bobs])
    hello = mls_data.application(GID, 1, b"hello")
    await alice.send(GID, hello)
    assert [e.data for e in (await bob.fetch()).messages][-1] == hello
    assert [e.data for e in (await alice.fetch()).messages].count(hello) == 1
    # Carol, never claimed, cannot be slipped in by address: the error names
    # the address the committer gave, not her queue ID.
    carols = await carol.queue_address()
    with pytest.raises(ApiError) as refused:
        await alice.commit(
            GID,
            1,
            mls_data.commit(GID, 1),
            [alice.me.queue_id, bobs, carols],
            welcome=mls_data.welcome(),
            welcome_to=[carols],
        )
    assert refused.value.code is ErrorCode.MEMBER_NOT_CLAIMED
    assert refused.value.details == {"queue": carols}
    # The same group goes on with members named by their plain IDs (old leaves).
    answer = await alice.commit(
        GID, 1, mls_data.commit(GID, 1), [alice.me.queue_id, bob.me.queue_id]
    )
    assert answer.epoch == 2


async def test_an_address_the_server_did_not_seal_is_refused(server: TestServer) -> None:
    alice, bob = await server.group(GID, 2)
    forged = b64encode(b"\x01" + os.urandom(44))
    foreign = QueueAddresses(os.urandom(32)).issue(bob.me.queue_id)
    for bad in (forged, foreign):
        for field in ("members", "welcome_to"):
            members = [alice.me.queue_id, bob.me.queue_id]
            welcome_to = None
            if field == "members":
                members = [alice.me.queue_id, bad]
            else:
                members, welcome_to = [alice.me.queue_id, bob.me.queue_id, bad], [bad]
            with pytest.raises(ApiError) as refused:
                await alice.commit(
                    GID,
                    1,
                    mls_data.commit(GID, 1),
                    members,
                    welcome=None if welcome_to is None else mls_data.welcome(),
                    welcome_to=welcome_to,
                )
            assert refused.value.code is ErrorCode.INVALID_FIELD
            assert "not a delivery address" in refused.value.message
            assert bob.me.queue_id not in str(refused.value.details)
    # Nothing changed: the group is still at epoch 1 with both members.
    answer = await alice.commit(
        GID, 1, mls_data.commit(GID, 1), [alice.me.queue_id, bob.me.queue_id]
    )
    assert answer.epoch == 2


async def test_an_address_of_the_wrong_length_is_refused_as_a_field(server: TestServer) -> None:
    alice, _ = await server.group(GID, 2)
    body = {
        "epoch": 1,
        "commit": b64encode(pad(mls_data.commit(GID, 1))),
        "members": [alice.me.queue_id, b64encode(os.urandom(30))],
    }
    response = await alice.raw("POST", r.group_path(r.GROUP_COMMITS, GID), body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_field"


async def test_an_external_commit_must_name_the_joiners_own_queue(server: TestServer) -> None:
    alice, bob = await server.registered(), await server.registered()
    await alice.start_mls_group(GID, bob)
    queues = [alice.me.queue_id, bob.me.queue_id]
    stored = (await bob.group_info(GID)).group_info
    # Bob rejoins, his new leaf naming Alice's queue: refused, nothing changes;
    # with his own address it goes through.
    for owner, accepted in ((alice, False), (bob, True)):
        _, commit = mls_data.mls_external_commit(
            stored,
            bob.me.credential,  # type: ignore[arg-type]
            bob.me.key,
            resync=1,
            delivery=await owner.queue_address(),
        )
        if accepted:
            assert (await bob.commit(GID, 1, commit, queues)).epoch == 2
            continue
        with pytest.raises(ApiError) as refused:
            await bob.commit(GID, 1, commit, queues)
        assert refused.value.code is ErrorCode.INVALID_MESSAGE
        assert "delivery address" in refused.value.message


def test_the_openapi_description_names_both_forms() -> None:
    from messenger.api.fields import DeliveryAddress

    schema = DeliveryAddress("x").schema()
    assert str(SEALED_ADDRESS_LENGTH) in str(schema) and "22" in str(schema)
