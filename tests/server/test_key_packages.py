"""KeyPackages: upload, count, claim once each, last resort (RFC 9750 §5.1)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import b64encode

from . import mls_data
from .conftest import ServerFactory, TestServer
from .dbtools import count

pytestmark = pytest.mark.anyio


async def test_claim_hands_each_key_package_out_once_then_the_last_resort(
    server: TestServer,
) -> None:
    alice = await server.registered()
    bob = await server.registered()
    kps = [alice.key_package() for i in range(3)]
    last = alice.key_package()
    uploaded = await alice.upload_key_packages(kps, last)
    assert (uploaded.available, uploaded.last_resort) == (3, True)
    claimed = []
    for _ in range(3):
        (kp,) = (await bob.claim(alice.me.account_id)).key_packages
        assert not kp.last_resort
        assert (kp.client_id, kp.queue_id) == (alice.me.client_id, alice.me.queue_id)
        claimed.append(kp.key_package)
    assert sorted(claimed) == sorted(kps)
    count_now = await alice.key_package_count()
    assert (count_now.available, count_now.last_resort) == (0, True)
    for _ in range(2):
        (kp,) = (await bob.claim(alice.me.account_id)).key_packages
        assert kp.last_resort and kp.key_package == last
    # Replenishing replaces the last resort and adds one-time ones again.
    new_last = alice.key_package()
    await alice.upload_key_packages([alice.key_package()], new_last)
    assert not (await bob.claim(alice.me.account_id)).key_packages[0].last_resort
    (kp,) = (await bob.claim(alice.me.account_id)).key_packages
    assert kp.last_resort and kp.key_package == new_last


async def test_concurrent_claims_never_share_a_key_package(server: TestServer) -> None:
    alice = await server.registered()
    claimers = [await server.registered() for _ in range(4)]
    kps = [alice.key_package() for i in range(6)]
    await alice.upload_key_packages(kps, alice.key_package())
    results = await asyncio.gather(*(claimers[i % 4].claim(alice.me.account_id) for i in range(10)))
    one_time = [
        res.key_packages[0].key_package for res in results if not res.key_packages[0].last_resort
    ]
    assert sorted(one_time) == sorted(kps)
    assert sum(res.key_packages[0].last_resort for res in results) == 4


async def test_one_key_package_per_client_of_the_account(server: TestServer) -> None:
    alice = await server.registered()
    phone = await alice.add_client()
    laptop = await alice.add_client()
    await alice.upload_key_packages([alice.key_package()])
    await phone.upload_key_packages([phone.key_package()], phone.key_package())
    bob = await server.registered()
    claimed = (await bob.claim(alice.me.account_id)).key_packages
    by_client = {kp.client_id: kp for kp in claimed}
    assert set(by_client) == {alice.me.client_id, phone.me.client_id}  # laptop has none
    assert by_client[phone.me.client_id].queue_id == phone.me.queue_id
    assert laptop.me.client_id not in by_client


async def test_no_key_package_and_unknown_account(server: TestServer) -> None:
    alice = await server.registered()
    bob = await server.registered()
    with pytest.raises(ApiError) as info:
        await bob.claim(alice.me.account_id)
    assert info.value.code is ErrorCode.NO_KEY_PACKAGE and info.value.status == 404
    with pytest.raises(ApiError) as info:
        await bob.claim(b64encode(b"\x07" * 16))
    assert info.value.code is ErrorCode.UNKNOWN_ACCOUNT


async def test_invalid_key_packages_are_refused_whole(server: TestServer) -> None:
    alice = await server.registered()
    good = alice.key_package()
    for bad, code in (
        (alice.key_package(corrupt=True), ErrorCode.INVALID_MESSAGE),
        (b"\x00\x01garbage", ErrorCode.INVALID_MESSAGE),
        (mls_data.welcome(), ErrorCode.WRONG_MESSAGE_TYPE),
    ):
        with pytest.raises(ApiError) as info:
            await alice.upload_key_packages([good, bad])
        assert info.value.code is code
        assert info.value.details.get("index") == 1
    with pytest.raises(ApiError) as info:
        await alice.upload_key_packages([], alice.key_package(corrupt=True))
    assert info.value.code is ErrorCode.INVALID_MESSAGE
    assert await count(server, "key_packages") == 0


async def test_key_packages_must_carry_the_uploaders_key_and_credential(
    server: TestServer,
) -> None:
    alice = await server.registered()
    phone = await alice.add_client()
    bob = await server.registered()
    assert alice.me.credential is not None and phone.me.credential is not None
    forged = dataclasses.replace(alice.me.credential, issued_at=alice.me.credential.issued_at + 1)
    good = alice.key_package()
    for bad in (
        # A fresh key and a made-up identity: not the uploader at all.
        mls_data.key_package(b"alice"),
        # Someone else's KeyPackage (another account, or another device of the account).
        bob.key_package(),
        phone.key_package(),
        # The uploader's key with another client's credential.
        mls_data.key_package(
            mls_data.credential_identity(phone.me.credential), signature_key=alice.me.key
        ),
        # The uploader's key and IDs, but a credential the server did not sign.
        mls_data.key_package(mls_data.credential_identity(forged), signature_key=alice.me.key),
        # The uploader's key with a plain identity instead of the credential.
        mls_data.key_package(alice.me.client_id.encode(), signature_key=alice.me.key),
    ):
        with pytest.raises(ApiError) as info:
            await alice.upload_key_packages([good, bad], alice.key_package())
        assert info.value.code is ErrorCode.INVALID_MESSAGE and info.value.status == 400
        assert info.value.details.get("index") == 1
        with pytest.raises(ApiError) as info:
            await alice.upload_key_packages([good], bad)
        assert info.value.code is ErrorCode.INVALID_MESSAGE
    # Nothing of a refused request was stored, not even its good KeyPackages.
    assert await count(server, "key_packages") == 0
    count_now = await alice.key_package_count()
    assert (count_now.available, count_now.last_resort) == (0, False)
    # The uploader's own KeyPackages are accepted.
    uploaded = await alice.upload_key_packages([good], alice.key_package())
    assert (uploaded.available, uploaded.last_resort) == (1, True)


async def test_key_package_limit(server_factory: ServerFactory) -> None:
    async with server_factory(max_key_packages_per_client=3) as server:
        alice = await server.registered()
        await alice.upload_key_packages([alice.key_package() for _ in range(2)])
        with pytest.raises(ApiError) as info:
            await alice.upload_key_packages([alice.key_package() for _ in range(2)])
        assert info.value.code is ErrorCode.LIMIT_EXCEEDED
        assert (await alice.key_package_count()).available == 2


async def test_count_needs_a_signature(server: TestServer) -> None:
    response = await server.client().raw("GET", r.KEY_PACKAGE_COUNT, signed=False)
    assert response.status_code == 401
