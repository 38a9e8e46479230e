"""In-memory stand-ins for the sync tests: a fake Authentication Service and sessions.

A session here has a real encrypted store and real MLS state, but a
transport that refuses every request: the tests feed the inbound pipeline
queue messages directly, in the order they want.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.fields import b64encode
from messenger.api.signing import credential_tbs, device_certificate_tbs
from messenger.client.events import EventBus
from messenger.client.groups import GroupCache, new_key_package
from messenger.client.identity import CIPHER_SUITE, Account, encode_credential
from messenger.client.net import Signer, Transport
from messenger.client.profiles import Profiles
from messenger.client.session import Session
from messenger.client.store import AsyncStore, Identity, Keychain
from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.key_package_bundle import KeyPackageBundle

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring

UNREACHABLE = "http://127.0.0.1:9"

#: The delivery address mock servers hand out (the form a real server's has).
ADDRESS = b64encode(b"\x01" + bytes(range(44)))


def address_answer(request: httpx.Request, *, supported: bool = True) -> httpx.Response | None:
    """A mock server's answer to ``GET /v1/queue/address`` (:data:`ADDRESS`, or
    ``not_found`` from a server from before addresses); None for other routes."""
    if request.url.path != r.QUEUE_ADDRESS:
        return None
    if not supported:
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no route"}})
    return httpx.Response(200, content=m.QueueAddressResponse(ADDRESS).dumps())


class Authority:
    """Signs credentials like the server's Authentication Service.

    Each account gets an account key (docs/devices.md §1), which certifies
    its devices; credentials are version 2, as members require by default.
    """

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        self.public = self._key.public_key().public_bytes_raw()
        self.account_keys: dict[str, Ed25519PrivateKey] = {}

    def account_key(self, account_id: str) -> Ed25519PrivateKey:
        return self.account_keys.setdefault(account_id, Ed25519PrivateKey.generate())

    def issue(self, account_id: str, client_id: str, signature_key: bytes) -> m.Credential:
        account_key = self.account_key(account_id)
        public = account_key.public_key().public_bytes_raw()
        certificate = account_key.sign(device_certificate_tbs(public, signature_key, 1))
        tbs = credential_tbs(account_id, client_id, signature_key, 1, public)
        return m.Credential(
            account_id, client_id, signature_key, 1, self._key.sign(tbs), public, 1, certificate
        )


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("no network in this test")


async def make_session(
    root: Path,
    name: str,
    authority: Authority,
    *,
    account_id: str | None = None,
    client_id: str | None = None,
) -> Session:
    """A session of a certified client (by default ``client-<name>`` of ``acct-<name>``;
    another client of one account is another device of it)."""
    profile = Profiles(root).create(name)
    keychain = Keychain(backend=MemoryKeyring())
    store = await AsyncStore.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF)
    suite = get_cipher_suite(CIPHER_SUITE)
    private, public = suite.generate_signature_key_pair(os.urandom)
    account_id = account_id or f"acct-{name}"
    client_id = client_id or f"client-{name}"
    credential = authority.issue(account_id, client_id, public)
    identity = Identity(
        server_url=UNREACHABLE,
        account_id=account_id,
        client_id=client_id,
        queue_id=f"queue-{name}",
        cipher_suite=CIPHER_SUITE,
        signature_private_key=private,
        signature_public_key=public,
        credential=encode_credential(credential),
        created_at=0,
        handle=name,
        server_key=authority.public,
        account_private_key=authority.account_key(account_id).private_bytes_raw(),
        account_public_key=authority.account_key(account_id).public_key().public_bytes_raw(),
        certified_at=1,
        device_certificate=credential.device_certificate,
    )
    await store.run(lambda s: s.identity.save(identity))
    signer = Signer(client_id, private)
    account = Account.load(identity, signer)
    transport = Transport(UNREACHABLE, signer=signer, transport=httpx.MockTransport(_refuse))
    return Session(
        store=store,
        transport=transport,
        account=account,
        groups=GroupCache(store, account),
        events=EventBus(),
        clock=time.time,
        random=os.urandom,
    )


async def publish_key_package(session: Session) -> KeyPackageBundle:
    """A KeyPackage whose private keys are in the session's store."""
    bundle = new_key_package(session.account, os.urandom, now=int(time.time()))
    data = bundle.to_bytes()
    await session.store.run(
        lambda s: s.key_packages.add(bundle.ref(), data, created_at=0, expires_at=2**62)
    )
    return bundle


async def close_session(session: Session) -> None:
    await session.transport.aclose()
    await session.store.close()
