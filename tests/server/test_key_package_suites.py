"""KeyPackages per cipher suite (RFC 9420 §10, §17.1; docs/pq-suites.md).

A client keeps one-time and last-resort KeyPackages in suite 1 and in the
hybrid suite 0xF001; a claim lists acceptable suites, most wanted first,
and gets one suite for the whole account: the first every client can
provide. A client from before suites uploads suite 1 only and claims
without a list.
"""

from __future__ import annotations

import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.mls.messages import MLSMessage

from . import mls_data
from .conftest import ServerFactory, TestServer
from .dbtools import count, rows

pytestmark = pytest.mark.anyio

HYBRID = 0xF001


def _suite(data: bytes) -> int:
    return int(MLSMessage.from_bytes(data).key_package.cipher_suite)


async def test_counts_and_last_resort_are_per_suite(server: TestServer) -> None:
    alice = await server.registered()
    await alice.upload_key_packages([alice.key_package(), alice.key_package()], alice.key_package())
    uploaded = await alice.upload_key_packages(
        [alice.key_package(suite_id=HYBRID)], alice.key_package(suite_id=HYBRID)
    )
    assert (uploaded.available, uploaded.last_resort) == (2, True)  # suite 1, as before
    counted = await alice.key_package_count()
    assert counted.for_suite(1) == m.SuiteKeyPackageCount(1, 2, True)
    assert counted.for_suite(HYBRID) == m.SuiteKeyPackageCount(HYBRID, 1, True)
    # A new last-resort KeyPackage replaces only its own suite's.
    await alice.upload_key_packages([], alice.key_package(suite_id=HYBRID))
    kept = await rows(server, "key_packages")
    # Columns: kp_id, client_id, last_resort, data, cipher_suite (migration 9).
    assert sorted(row[4] for row in kept if row[2] == 1) == [1, HYBRID]
    counted = await alice.key_package_count()
    assert counted.for_suite(1) == m.SuiteKeyPackageCount(1, 2, True)
    assert counted.for_suite(HYBRID) == m.SuiteKeyPackageCount(HYBRID, 1, True)
    assert await count(server, "key_packages") == 2 + 1 + 1 + 1


async def test_claim_prefers_the_first_suite_every_client_has(server: TestServer) -> None:
    alice = await server.registered()
    laptop = await alice.add_client()
    bob = await server.registered()
    for device in (alice, laptop):
        await device.upload_key_packages(
            [device.key_package(), device.key_package(suite_id=HYBRID)],
            device.key_package(suite_id=HYBRID),
        )
    claimed = await bob.claim(alice.me.account_id, (HYBRID, 1))
    assert claimed.cipher_suite == HYBRID
    assert [_suite(c.key_package) for c in claimed.key_packages] == [HYBRID, HYBRID]
    assert not any(c.last_resort for c in claimed.key_packages)
    # Without a list: suite 1, as for a client from before suites.
    plain = await bob.claim(alice.me.account_id)
    assert plain.cipher_suite == 1
    assert [_suite(c.key_package) for c in plain.key_packages] == [1, 1]
    # The hybrid one-time KeyPackages are gone: the last-resort one serves.
    again = await bob.claim(alice.me.account_id, (HYBRID, 1))
    assert again.cipher_suite == HYBRID
    assert all(c.last_resort for c in again.key_packages)


async def test_one_old_client_makes_the_whole_account_answer_in_suite_1(
    server: TestServer,
) -> None:
    alice = await server.registered()
    old_laptop = await alice.add_client()
    bob = await server.registered()
    await alice.upload_key_packages(
        [alice.key_package(suite_id=HYBRID)], alice.key_package(suite_id=HYBRID)
    )
    await alice.upload_key_packages([alice.key_package()], alice.key_package())
    await old_laptop.upload_key_packages([old_laptop.key_package()], old_laptop.key_package())
    claimed = await bob.claim(alice.me.account_id, (HYBRID, 1))
    assert claimed.cipher_suite == 1
    assert {c.client_id for c in claimed.key_packages} == {
        alice.me.client_id,
        old_laptop.me.client_id,
    }
    assert [_suite(c.key_package) for c in claimed.key_packages] == [1, 1]
    # Asking for the hybrid suite only: the old client has none, so it is left out.
    (only,) = (await bob.claim(alice.me.account_id, (HYBRID,))).key_packages
    assert (only.client_id, _suite(only.key_package)) == (alice.me.client_id, HYBRID)


async def test_no_key_package_only_when_no_client_has_a_listed_suite(
    server: TestServer,
) -> None:
    old = await server.registered()
    bob = await server.registered()
    await old.upload_key_packages([old.key_package()], old.key_package())
    with pytest.raises(ApiError) as caught:
        await bob.claim(old.me.account_id, (HYBRID,))
    assert caught.value.code is ErrorCode.NO_KEY_PACKAGE
    # Nothing was taken.
    assert (await old.key_package_count()).for_suite(1) == m.SuiteKeyPackageCount(1, 1, True)
    assert (await bob.claim(old.me.account_id, (HYBRID, 1))).cipher_suite == 1


async def test_one_time_limits_count_across_suites(server_factory: ServerFactory) -> None:
    async with server_factory(
        one_time_key_packages_per_target_per_hour=2,
        one_time_key_packages_per_claimer_per_target_per_hour=2,
    ) as server:
        alice = await server.registered()
        bob = await server.registered()
        await alice.upload_key_packages(
            [alice.key_package() for _ in range(3)], alice.key_package()
        )
        await alice.upload_key_packages(
            [alice.key_package(suite_id=HYBRID) for _ in range(3)],
            alice.key_package(suite_id=HYBRID),
        )
        first = await bob.claim(alice.me.account_id, (HYBRID,))
        second = await bob.claim(alice.me.account_id, (1,))
        third = await bob.claim(alice.me.account_id, (HYBRID, 1))
        assert not first.key_packages[0].last_resort
        assert not second.key_packages[0].last_resort
        assert third.key_packages[0].last_resort  # the hourly share is used up, in any suite


# -- attacks -----------------------------------------------------------------------------


async def test_a_key_package_in_a_suite_the_server_does_not_keep_is_refused(
    server: TestServer,
) -> None:
    mallory = await server.registered()
    good = mallory.key_package()
    chacha = mallory.key_package(suite_id=3)  # X25519/ChaCha20/Ed25519: valid, not kept
    with pytest.raises(ApiError) as caught:
        await mallory.upload_key_packages([good, chacha])
    assert caught.value.code is ErrorCode.INVALID_MESSAGE
    assert "key_packages[1]" in caught.value.message
    with pytest.raises(ApiError) as caught:
        await mallory.upload_key_packages([], chacha)
    assert caught.value.code is ErrorCode.INVALID_MESSAGE
    assert await count(server, "key_packages") == 0


def _mismatched(identity: bytes, key: object, *, capabilities: tuple[int, ...]) -> bytes:
    """A KeyPackage naming the hybrid suite but carrying X25519 keys."""
    import os

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    from messenger.mls.ciphersuite import get_cipher_suite
    from messenger.mls.credentials import Credential
    from messenger.mls.key_package import KeyPackageTBS
    from messenger.mls.leaf_node import Capabilities, LeafNodeSource, LeafNodeTBS, Lifetime

    assert isinstance(key, Ed25519PrivateKey)
    hybrid, classic = get_cipher_suite(HYBRID), get_cipher_suite(1)
    sig_priv = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    sig_pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    _, init_pub = classic.generate_hpke_key_pair(os.urandom)
    _, enc_pub = (hybrid if capabilities == (HYBRID,) else classic).generate_hpke_key_pair(
        os.urandom
    )
    if capabilities != (HYBRID,):
        _, init_pub = hybrid.generate_hpke_key_pair(os.urandom)
        _, enc_pub = hybrid.generate_hpke_key_pair(os.urandom)
    leaf = LeafNodeTBS(
        encryption_key=enc_pub,
        signature_key=sig_pub,
        credential=Credential.basic(identity),
        capabilities=Capabilities(versions=(1,), cipher_suites=capabilities, credentials=(1,)),
        leaf_node_source=LeafNodeSource.KEY_PACKAGE,
        lifetime=Lifetime(0, 2**63),
    ).sign(hybrid, sig_priv)
    kp = KeyPackageTBS(cipher_suite=HYBRID, init_key=init_pub, leaf_node=leaf).sign(
        hybrid, sig_priv
    )
    return MLSMessage(kp).to_bytes()


async def test_a_key_package_whose_keys_or_capabilities_mismatch_its_suite_is_refused(
    server: TestServer,
) -> None:
    mallory = await server.registered()
    assert mallory.me.credential is not None
    identity = mls_data.credential_identity(mallory.me.credential)
    x25519_init = _mismatched(identity, mallory.me.key, capabilities=(HYBRID,))
    not_listed = _mismatched(identity, mallory.me.key, capabilities=(1,))
    for bad in (x25519_init, not_listed):
        with pytest.raises(ApiError) as caught:
            await mallory.upload_key_packages([bad])
        assert caught.value.code is ErrorCode.INVALID_MESSAGE
        assert "cipher suite 0xF001" in caught.value.message
    assert await count(server, "key_packages") == 0


async def test_a_claim_for_suites_the_server_does_not_keep_is_refused(server: TestServer) -> None:
    alice = await server.registered()
    bob = await server.registered()
    await alice.upload_key_packages([alice.key_package(), alice.key_package()], alice.key_package())
    with pytest.raises(ApiError) as caught:
        await bob.claim(alice.me.account_id, (2, 0xF00A))
    assert caught.value.code is ErrorCode.INVALID_FIELD
    # Unknown suites in a list with a kept one are passed over.
    assert (await bob.claim(alice.me.account_id, (0x7777, 1))).cipher_suite == 1
    # Bad lists never reach the directory.
    for body in (
        {"account_id": alice.me.account_id, "suites": []},
        {"account_id": alice.me.account_id, "suites": [1, 1]},
        {"account_id": alice.me.account_id, "suites": [0]},
        {"account_id": alice.me.account_id, "suites": [65536]},
        {"account_id": alice.me.account_id, "suites": ["1"]},
        {"account_id": alice.me.account_id, "suites": list(range(1, 10))},
    ):
        response = await bob.raw("POST", r.CLAIM_KEY_PACKAGES, body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "invalid_field", body
    assert (await alice.key_package_count()).for_suite(1).available == 1


async def test_migration_9_makes_existing_key_packages_suite_1(database_url: str) -> None:
    from messenger.server.storage import open_database
    from messenger.server.storage.base import Tx
    from messenger.server.storage.migrations import MIGRATIONS, migrate

    db = open_database(database_url)
    await db.connect()
    try:

        async def before_9(tx: Tx) -> None:
            await tx.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
            for migration in MIGRATIONS:
                if migration.version >= 9:
                    break
                for statement in migration.sql(tx.dialect):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)",
                    migration.version,
                    migration.name,
                )
            await tx.execute("INSERT INTO queues (queue_id) VALUES ('q')")
            await tx.execute("INSERT INTO accounts (account_id) VALUES ('a')")
            await tx.execute(
                "INSERT INTO clients (client_id, account_id, signature_key, queue_id) "
                "VALUES ('c', 'a', ?, 'q')",
                b"k" * 32,
            )
            await tx.executemany(
                "INSERT INTO key_packages (client_id, last_resort, data) VALUES ('c', ?, ?)",
                [(0, b"one-time"), (1, b"last resort")],
            )

        await db.transaction(before_9)
        assert await migrate(db, 1) >= 9

        async def suites(tx: Tx) -> list[tuple[int, int]]:
            rows = await tx.fetchall(
                "SELECT last_resort, cipher_suite FROM key_packages ORDER BY last_resort"
            )
            return [(int(r[0]), int(r[1])) for r in rows]

        assert await db.read(suites) == [(0, 1), (1, 1)]
    finally:
        await db.close()


async def test_past_the_one_time_share_only_last_resort_suites_count(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(
        one_time_key_packages_per_target_per_hour=1,
        one_time_key_packages_per_claimer_per_target_per_hour=1,
    ) as server:
        alice = await server.registered()
        bob = await server.registered()
        # Hybrid one-time KeyPackages but no hybrid last-resort one; suite 1's last resort.
        await alice.upload_key_packages([alice.key_package(suite_id=HYBRID) for _ in range(3)])
        await alice.upload_key_packages([], alice.key_package())
        first = await bob.claim(alice.me.account_id, (HYBRID, 1))
        assert first.cipher_suite == HYBRID and not first.key_packages[0].last_resort
        # The share is used up: what Alice can hand out now is suite 1's last resort.
        second = await bob.claim(alice.me.account_id, (HYBRID, 1))
        assert second.cipher_suite == 1 and second.key_packages[0].last_resort
