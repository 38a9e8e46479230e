"""A second device for an account without the linking exchange (tests only).

:func:`add_device` does what linking does on both sides, directly: the
first device registers a new client of its account (``POST /v1/clients``,
with the account key's certificate of the new key), the new profile stores
that identity and the devices group's ID, starts (uploading KeyPackages),
and the first device queues an Add of it in every group of the account.
"""

from __future__ import annotations

import dataclasses
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import models as m
from messenger.api.signing import possession_message
from messenger.client import MessengerClient, NoKeyPackageError
from messenger.client.contact_tokens import own_token
from messenger.client.identity import GROUP_SUITES, certify_device, encode_credential
from messenger.client.store import Store
from messenger.client.store.outbox import OutboxKind
from messenger.client.sync.intents import one_add_each

from .conftest import FAST_KDF, PASSPHRASE, Clients, eventually, keychain


async def _groups(first: MessengerClient) -> list[bytes]:
    def read(s: Store) -> list[bytes]:
        found = [c.group_id for c in [*s.conversations.all(), *s.conversations.all(archived=True)]]
        devices = s.devices.group_id()
        if devices is not None:
            found.append(devices)
        return [g for g in found if s.groups.epoch(g) is not None]

    return await first._store.run(read)


async def add_device(clients: Clients, first: MessengerClient, name: str) -> MessengerClient:
    """A new started device of ``first``'s account, added to all of its groups."""
    session = first._require()
    identity = session.account.identity
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    proof = key.sign(possession_message(identity.account_id.encode("ascii"), public))
    certified_at = int(time.time() * 1000)
    certificate = None
    if identity.account_private_key is not None:
        certificate = certify_device(identity.account_private_key, public, certified_at)
    response = await session.transport.add_client(
        m.AddClientRequest(
            signature_key=public,
            proof=proof,
            certified_at=certified_at if certificate is not None else None,
            device_certificate=certificate,
        )
    )
    new_identity = dataclasses.replace(
        identity,
        client_id=response.client_id,
        queue_id=response.queue_id,
        signature_private_key=key.private_bytes_raw(),
        signature_public_key=public,
        credential=encode_credential(response.credential),
        created_at=certified_at,
        certified_at=certified_at if certificate is not None else None,
        device_certificate=certificate,
        device_token=None,
    )
    devices_group = await first.devices_group_id()
    assert devices_group is not None
    made = await MessengerClient.create(
        name, PASSPHRASE, data_dir=clients.data_dir(name), keychain=keychain(), kdf=FAST_KDF
    )

    def save(s: Store) -> None:
        s.identity.save(new_identity)
        s.devices.set_group_id(devices_group)

    await made._store.run(save)
    await made.close()
    device = await clients.open(name)

    async def key_packages_uploaded() -> bool:
        # In every suite the client keeps: each is uploaded in a request of its own.
        for suite in GROUP_SUITES:
            try:
                claimed = await session.transport.claim_key_packages(
                    identity.account_id, (suite,), contact_token=own_token(session.account)
                )
            except NoKeyPackageError:  # none uploaded yet
                return False
            if not any(c.client_id == response.client_id for c in claimed):
                return False
        return True

    # (Each probe may claim one of the new device's KeyPackages; the pool tops up,
    # and past the server's hourly share the last-resort one is handed out.)
    await eventually(key_packages_uploaded, "the new device's KeyPackages")
    groups = await _groups(first)
    key_packages = []
    for group_id in groups:
        async with session.group_lock(group_id):  # in the group's cipher suite
            group = await session.groups.get(group_id)
        suite = 1 if group is None else group.suite.suite_id
        claimed = await session.transport.claim_key_packages(
            identity.account_id, (suite,), contact_token=own_token(session.account)
        )
        (entry,) = [c for c in claimed if c.client_id == response.client_id]
        key_packages.append(entry.key_package)
    now = int(time.time() * 1000)

    intents = one_add_each(key_packages, session.transport.claim_tokens)

    def queue(s: Store) -> None:
        for group_id, intent in zip(groups, intents, strict=True):
            s.outbox.enqueue(OutboxKind.COMMIT, b"", now=now, group_id=group_id, intent=intent)

    await first._store.transaction(queue)
    session.outbox_queued()

    async def joined() -> bool:
        return len(await device.devices()) >= 2 and len(await first.devices()) >= 2

    await eventually(joined, "the new device to join the devices group")
    return device
