"""Account keys and device certificates on the server (docs/devices.md §1).

Registration with an account key gets a version-2 credential; a bad
certificate is refused and stores nothing; a device added to an account with
a key needs a certificate by that key; ``POST /v1/clients/certificate`` sets
a missing key once and refuses another; a KeyPackage must carry the
uploader's current credential; a claim of one's own account never returns
one's own KeyPackage.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.signing import credential_tbs, device_certificate_tbs

from .client import ApiClient, public_bytes
from .conftest import TestServer
from .dbtools import columns, rows, snapshot
from .devices_tools import (
    add_client_request,
    add_device,
    certify,
    code,
    key_package_v2,
    register_request,
    register_with_key,
)

pytestmark = pytest.mark.anyio


def _verify_v2(server: TestServer, credential: m.Credential, account_key: bytes) -> None:
    """The credential is version 2, names ``account_key`` and both signatures verify."""
    assert credential.version == 2
    assert credential.account_key == account_key
    assert credential.certified_at is not None and credential.device_certificate is not None
    server_key = Ed25519PublicKey.from_public_bytes(server.state.keys.credential_public_key)
    server_key.verify(
        credential.signature,
        credential_tbs(
            credential.account_id,
            credential.client_id,
            credential.signature_key,
            credential.issued_at,
            account_key,
        ),
    )
    Ed25519PublicKey.from_public_bytes(account_key).verify(
        credential.device_certificate,
        device_certificate_tbs(account_key, credential.signature_key, credential.certified_at),
    )


async def _account_key(server: TestServer, account_id: str) -> bytes | None:
    index = (await columns(server, "accounts")).index("account_key")
    (row,) = [row for row in await rows(server, "accounts") if row[0] == account_id]
    value = row[index]
    return None if value is None else bytes(value)


async def _certificate(server: TestServer, client_id: str) -> tuple[object, object]:
    names = await columns(server, "clients")
    (row,) = [row for row in await rows(server, "clients") if row[0] == client_id]
    return row[names.index("certified_at")], row[names.index("device_certificate")]


async def test_registration_with_an_account_key_gets_a_version_2_credential(
    server: TestServer,
) -> None:
    alice, account_key = await register_with_key(server)
    assert alice.me.credential is not None
    _verify_v2(server, alice.me.credential, public_bytes(account_key))
    assert await _account_key(server, alice.me.account_id) == public_bytes(account_key)
    certified_at, cert = await _certificate(server, alice.me.client_id)
    assert (certified_at, cert) == (
        alice.me.credential.certified_at,
        alice.me.credential.device_certificate,
    )


async def test_registration_without_a_key_stays_version_1(server: TestServer) -> None:
    old = await server.registered()
    assert old.me.credential is not None and old.me.credential.version == 1
    assert await _account_key(server, old.me.account_id) is None
    assert await _certificate(server, old.me.client_id) == (None, None)


async def test_a_bad_certificate_at_registration_is_refused_and_stores_nothing(
    server: TestServer,
) -> None:
    client = server.client()
    before = await snapshot(server, exclude=("request_nonces", "used_challenges"))
    key, account_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    forged = await register_request(
        client, key, account_key, signed_by=Ed25519PrivateKey.generate()
    )
    response = await client.raw("POST", r.REGISTER, forged, signed=False)
    assert (response.status_code, code(response)) == (400, "proof_invalid")
    # A certificate of another key, and one for another time than it says.
    good = await register_request(client, key, account_key)
    assert good.certified_at is not None
    for request in (
        dataclasses.replace(good, signature_key=public_bytes(Ed25519PrivateKey.generate())),
        dataclasses.replace(good, certified_at=good.certified_at + 1),
    ):
        response = await client.raw("POST", r.REGISTER, request, signed=False)
        assert response.status_code == 400, response.json()
    # Only part of the certificate fields.
    response = await client.raw(
        "POST", r.REGISTER, dataclasses.replace(good, device_certificate=None), signed=False
    )
    assert (response.status_code, code(response)) == (400, "invalid_field")
    assert await snapshot(server, exclude=("request_nonces", "used_challenges")) == before


async def test_adding_a_device_to_an_account_with_a_key_needs_its_certificate(
    server: TestServer,
) -> None:
    alice, account_key = await register_with_key(server)
    mallory, mallory_key = await register_with_key(server)
    key = Ed25519PrivateKey.generate()
    before = await snapshot(server)
    cases = {
        "no certificate": add_client_request(alice, key, None),
        "a foreign account key": add_client_request(alice, key, mallory_key),
        "a random key": add_client_request(alice, key, Ed25519PrivateKey.generate()),
        "a certificate of another key": add_client_request(
            alice, key, account_key, certified_key=Ed25519PrivateKey.generate()
        ),
    }
    for what, request in cases.items():
        response = await alice.raw("POST", r.CLIENTS, request)
        assert (response.status_code, code(response)) == (400, "proof_invalid"), what
    # Mallory cannot add a device to her account with Alice's certificate either.
    response = await mallory.raw("POST", r.CLIENTS, add_client_request(mallory, key, account_key))
    assert (response.status_code, code(response)) == (400, "proof_invalid")
    assert await snapshot(server, exclude=("request_nonces",)) == {
        t: v for t, v in before.items() if t != "request_nonces"
    }
    laptop = await add_device(alice, account_key)
    assert laptop.me.credential is not None
    _verify_v2(server, laptop.me.credential, public_bytes(account_key))
    assert laptop.me.credential.account_id == alice.me.account_id


async def test_an_old_account_adds_devices_without_certificates(server: TestServer) -> None:
    old = await server.registered()
    laptop = await old.add_client()
    assert laptop.me.credential is not None and laptop.me.credential.version == 1
    # A certificate the server cannot check (the account has no key yet) is
    # refused rather than silently dropped into a version-1 credential.
    request = add_client_request(old, Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate())
    response = await old.raw("POST", r.CLIENTS, request)
    assert (response.status_code, code(response)) == (400, "proof_invalid")


async def test_certification_sets_the_account_key_once(server: TestServer) -> None:
    old = await server.registered()
    laptop = await old.add_client()
    account_key = Ed25519PrivateKey.generate()
    # A certificate that does not verify sets nothing.
    before = await snapshot(server, exclude=("request_nonces",))
    response = await certify(old, account_key, signed_by=Ed25519PrivateKey.generate())
    assert (response.status_code, code(response)) == (400, "proof_invalid")
    assert await snapshot(server, exclude=("request_nonces",)) == before
    response = await certify(old, account_key)
    assert response.status_code == 200, response.json()
    credential = m.ClientCredential.from_json(response.json()).credential
    _verify_v2(server, credential, public_bytes(account_key))
    assert credential.client_id == old.me.client_id
    assert await _account_key(server, old.me.account_id) == public_bytes(account_key)
    # Another device with another key is refused; with the same key it is certified.
    before = await snapshot(server, exclude=("request_nonces",))
    response = await certify(laptop, Ed25519PrivateKey.generate())
    assert (response.status_code, code(response)) == (409, "key_in_use")
    assert await snapshot(server, exclude=("request_nonces",)) == before
    response = await certify(laptop, account_key)
    assert response.status_code == 200
    _verify_v2(
        server,
        m.ClientCredential.from_json(response.json()).credential,
        public_bytes(account_key),
    )
    # From now on a new device needs a certificate.
    response = await old.raw(
        "POST", r.CLIENTS, add_client_request(old, Ed25519PrivateKey.generate(), None)
    )
    assert (response.status_code, code(response)) == (400, "proof_invalid")


async def test_a_key_package_must_carry_the_current_credential(server: TestServer) -> None:
    old = await server.registered()
    v1_key_package = old.key_package()
    account_key = Ed25519PrivateKey.generate()
    response = await certify(old, account_key)
    v2 = m.ClientCredential.from_json(response.json()).credential
    # The stale version-1 credential is refused once the client is certified.
    response = await old.raw("POST", r.KEY_PACKAGES, m.UploadKeyPackagesRequest((v1_key_package,)))
    assert (response.status_code, code(response)) == (400, "invalid_message")
    # A version-2 credential with another certificate (by the same account key) too.
    at, _ = v2.certified_at or 0, v2.device_certificate
    other_cert = account_key.sign(
        device_certificate_tbs(public_bytes(account_key), old.me.credential.signature_key, at + 1)  # type: ignore[union-attr]
    )
    tampered = dataclasses.replace(v2, certified_at=at + 1, device_certificate=other_cert)
    response = await old.raw(
        "POST", r.KEY_PACKAGES, m.UploadKeyPackagesRequest((key_package_v2(old, tampered),))
    )
    assert (response.status_code, code(response)) == (400, "invalid_message")
    uploaded = await old.upload_key_packages([key_package_v2(old, v2)])
    assert uploaded.available == 1


async def test_a_v2_credential_is_refused_from_an_uncertified_client(server: TestServer) -> None:
    alice, _ = await register_with_key(server)
    old = await server.registered()
    assert alice.me.credential is not None
    # Old's key under a v2 credential the server never issued to it.
    forged = dataclasses.replace(
        alice.me.credential,
        client_id=old.me.client_id,
        account_id=old.me.account_id,
        signature_key=public_bytes(old.me.key),
    )
    response = await old.raw(
        "POST", r.KEY_PACKAGES, m.UploadKeyPackagesRequest((key_package_v2(old, forged),))
    )
    assert (response.status_code, code(response)) == (400, "invalid_message")


async def test_a_claim_of_ones_own_account_returns_the_other_devices_only(
    server: TestServer,
) -> None:
    alice, account_key = await register_with_key(server)
    laptop = await add_device(alice, account_key)
    desktop = await add_device(alice, account_key)
    for device in (alice, laptop, desktop):
        await device.upload_key_packages([key_package_v2(device)])
    claimed = (await alice.claim(alice.me.account_id)).key_packages
    assert sorted(c.client_id for c in claimed) == sorted(
        [laptop.me.client_id, desktop.me.client_id]
    )
    assert all(not c.last_resort for c in claimed)
    assert (await alice.key_package_count()).available == 1
    # A device alone in its account has nothing to claim from it.
    single, _ = await register_with_key(server)
    await single.upload_key_packages([key_package_v2(single)])
    response = await single.raw(
        "POST", r.CLAIM_KEY_PACKAGES, m.ClaimKeyPackagesRequest(single.me.account_id)
    )
    assert (response.status_code, code(response)) == (404, "no_key_package")
    assert (await single.key_package_count()).available == 1
    # Another account still gets one KeyPackage of every device.
    for device in (laptop, desktop):
        await device.upload_key_packages([key_package_v2(device)])
    bob = await server.registered()
    claimed = (await bob.claim(alice.me.account_id)).key_packages
    assert sorted(c.client_id for c in claimed) == sorted(
        [alice.me.client_id, laptop.me.client_id, desktop.me.client_id]
    )


async def test_device_certificate_fields_are_validated(server: TestServer) -> None:
    alice: ApiClient
    alice, _ = await register_with_key(server)
    body = {"account_key": "AAAA", "certified_at": 1, "device_certificate": "AAAA"}
    response = await alice.raw("POST", r.CLIENT_CERTIFICATE, body)
    assert (response.status_code, code(response)) == (400, "invalid_field")
    response = await alice.raw("POST", r.CLIENT_CERTIFICATE, None, content_type=None)
    assert response.status_code in (400, 415)


async def test_two_devices_certifying_with_different_keys_set_one(server: TestServer) -> None:
    """First writer wins: exactly one key is set, the other request is refused."""
    old = await server.registered()
    laptop = await old.add_client()
    first_key, second_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    first, second = await asyncio.gather(certify(old, first_key), certify(laptop, second_key))
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    winner = first_key if first.status_code == 200 else second_key
    assert await _account_key(server, old.me.account_id) == public_bytes(winner)
    loser = laptop if first.status_code == 200 else old
    assert await _certificate(server, loser.me.client_id) == (None, None)
