"""The account key above the devices (docs/devices.md §1), against the real server app.

Registration makes the account key and certifies the first device; an
account from before account keys gets one on its next start; a contact's
account key is pinned, and a KeyPackage naming another one -- a "ghost"
account key minted by a malicious server, validly signed -- is refused with
a sentence and recorded; the safety number is over account keys (version
2) and "verified" follows a changed key.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.pow import solve_pow
from messenger.api.signing import credential_tbs, possession_message
from messenger.client import ClientOptions, MessengerClient, Profiles
from messenger.client.contact_tokens import claim_key_packages
from messenger.client.errors import NotAllowedError, UntrustedKeyError
from messenger.client.groups import new_key_package
from messenger.client.identity import (
    CIPHER_SUITE,
    Account,
    CredentialVerifier,
    certificate_verifies,
    certify_device,
    decode_credential,
    encode_credential,
)
from messenger.client.net import Backoff, Signer, Transport
from messenger.client.restore_device import RESTORE_STATE
from messenger.client.safety_number import (
    FINGERPRINT_VERSION,
    AccountSide,
    account_fingerprint,
    safety_number,
)
from messenger.client.store import Identity, Keychain
from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.key_package_bundle import KeyPackageBundle

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring, account_id
from .in_process import SERVER_URL, InProcessServer, WireTap, _InProcessTransport, introduce

pytestmark = pytest.mark.anyio

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def identity_of(client: MessengerClient) -> Identity:
    identity = await client._store.run(lambda s: s.identity.get())
    assert identity is not None
    return identity


# -- registration -----------------------------------------------------------------------


async def test_registration_makes_the_account_key_and_certifies_the_first_device(
    server: InProcessServer,
) -> None:
    alice = await server.client("alice")
    identity = await identity_of(alice)
    assert identity.account_private_key is not None and identity.account_public_key is not None
    public = (
        Ed25519PrivateKey.from_private_bytes(identity.account_private_key)
        .public_key()
        .public_bytes_raw()
    )
    assert public == identity.account_public_key
    assert identity.certified_at is not None and identity.device_certificate is not None
    assert certificate_verifies(
        identity.account_public_key,
        identity.signature_public_key,
        identity.certified_at,
        identity.device_certificate,
    )
    # The MLS credential is the server's version 2, naming the account key.
    credential = decode_credential(identity.credential)
    assert credential is not None and credential.version == 2
    assert credential.account_key == identity.account_public_key
    assert credential.device_certificate == identity.device_certificate
    # Never shown: neither private key appears in the identity's repr.
    shown = repr(identity)
    assert identity.account_private_key.hex() not in shown
    assert repr(identity.account_private_key) not in shown
    assert repr(identity.signature_private_key) not in shown
    # The server keeps the public key (and nothing more of it).
    session = alice._require()
    assert session.account.account_key == identity.account_public_key


# -- an account from before account keys ------------------------------------------------


async def _legacy_client(server: InProcessServer, name: str) -> MessengerClient:
    """An account registered without an account key (a version-1 credential)."""
    inner = await server.transports.enter_async_context(_InProcessTransport(server.app))
    options = ClientOptions(
        http_transport=WireTap(server.wire, inner),
        backoff=Backoff(base=0.01, maximum=0.05),
        timeout=10.0,
    )
    transport = Transport(SERVER_URL, transport=options.http_transport)
    info = await transport.server_info()
    challenge = await transport.challenge()
    private, public = get_cipher_suite(CIPHER_SUITE).generate_signature_key_pair(os.urandom)
    nonce = await asyncio.to_thread(solve_pow, challenge.challenge, public, challenge.difficulty)
    key = Ed25519PrivateKey.from_private_bytes(private)
    response = await transport.register(
        m.RegisterRequest(
            signature_key=public,
            challenge=challenge.challenge,
            pow_nonce=nonce,
            proof=key.sign(possession_message(challenge.challenge, public)),
            handle=name,
        )
    )
    assert response.credential.version == 1
    identity = Identity(
        server_url=SERVER_URL,
        account_id=response.account_id,
        client_id=response.client_id,
        queue_id=response.queue_id,
        cipher_suite=CIPHER_SUITE,
        signature_private_key=private,
        signature_public_key=public,
        credential=encode_credential(response.credential),
        created_at=1,
        handle=name,
        server_key=info.server_key,
    )
    keychain = Keychain(backend=MemoryKeyring())
    root = server.root / "legacy" / name
    made = await MessengerClient.create(
        name, PASSPHRASE, data_dir=root, keychain=keychain, kdf=FAST_KDF, options=options
    )
    await made._store.run(lambda s: s.identity.save(identity))
    await made.close()
    client = await MessengerClient.open(
        Profiles(root).get(name), keychain=keychain, options=options
    )
    server.opened.append(client)
    return client


async def test_an_account_from_before_account_keys_gets_one_on_start(
    server: InProcessServer,
) -> None:
    carol = await _legacy_client(server, "carol")
    before = await identity_of(carol)
    assert before.account_public_key is None
    await carol.sync()  # before its first KeyPackage upload: the key, then the credential
    await introduce(server, carol)  # her contact token, now that she has an account key
    after = await identity_of(carol)
    assert after.account_public_key is not None and after.client_id == before.client_id
    credential = decode_credential(after.credential)
    assert credential is not None and credential.version == 2
    assert credential.account_key == after.account_public_key
    assert await carol._store.run(lambda s: s.settings.get(RESTORE_STATE)) is None
    # Its KeyPackages carry the new credential: Bob, who refuses unverified devices, can
    # add Carol, and she joins.
    bob = await server.client("bob")
    chat = await bob.create_conversation(await account_id(carol))
    await bob.send_text(chat.id, "hi Carol")
    await bob.flush(FLUSH)
    await carol.sync()
    (view,) = await carol.conversations()
    texts = [v.message.body for v in await carol.messages(view.id) if v.note is None]
    assert texts == ["hi Carol"]


# -- pinning: a malicious server's ghost account key ------------------------------------


class _GhostServer(httpx.AsyncBaseTransport):
    """Passes requests on; while armed, answers claims of ``victim`` with ghost KeyPackages.

    Each ghost carries a credential the server's real key signed (the server is
    the attacker), naming a fresh account key that certifies a fresh device key.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, server: InProcessServer) -> None:
        self.inner = inner
        self.server = server
        self.victim: str | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if (
            self.victim is None
            or request.url.path != r.CLAIM_KEY_PACKAGES
            or json.loads(request.content)["account_id"] != self.victim
        ):
            return response
        content = await response.aread()
        claimed = m.ClaimKeyPackagesResponse.loads(content)
        ghosts = tuple(
            m.ClaimedKeyPackage(
                entry.client_id,
                entry.queue_id,
                self._ghost(entry.client_id, entry.queue_id).message(),
                entry.last_resort,
            )
            for entry in claimed.key_packages
        )
        body = m.ClaimKeyPackagesResponse(ghosts).dumps()
        return httpx.Response(200, headers={"content-type": "application/json"}, content=body)

    def _ghost(self, client_id: str, queue_id: str) -> KeyPackageBundle:
        assert self.victim is not None
        server_key = self.server.state.keys.credential_key
        ghost_account = Ed25519PrivateKey.generate()
        ghost_public = ghost_account.public_key().public_bytes_raw()
        private, public = get_cipher_suite(CIPHER_SUITE).generate_signature_key_pair(os.urandom)
        certificate = certify_device(ghost_account.private_bytes_raw(), public, 9)
        tbs = credential_tbs(self.victim, client_id, public, 9, ghost_public)
        credential = m.Credential(
            self.victim, client_id, public, 9, server_key.sign(tbs), ghost_public, 9, certificate
        )
        identity = Identity(
            server_url=SERVER_URL,
            account_id=self.victim,
            client_id=client_id,
            queue_id=queue_id,
            cipher_suite=CIPHER_SUITE,
            signature_private_key=private,
            signature_public_key=public,
            credential=encode_credential(credential),
            created_at=0,
            server_key=self.server.state.keys.credential_public_key,
        )
        account = Account.load(identity, Signer(client_id, private))
        # The server's signature and the certificate are valid: only the pin can tell.
        assert CredentialVerifier(identity.server_key or b"")(account.mls_credential, public)
        return new_key_package(account, os.urandom, now=int(time.time()))


async def _client_through(
    server: InProcessServer, name: str
) -> tuple[MessengerClient, _GhostServer]:
    inner = await server.transports.enter_async_context(_InProcessTransport(server.app))
    ghost = _GhostServer(WireTap(server.wire, inner), server)
    options = ClientOptions(
        http_transport=ghost, backoff=Backoff(base=0.01, maximum=0.05), timeout=10.0
    )
    client = await MessengerClient.create(
        name,
        PASSPHRASE,
        data_dir=server.root / "ghost" / name,
        keychain=Keychain(backend=MemoryKeyring()),
        kdf=FAST_KDF,
        options=options,
    )
    server.opened.append(client)
    await client.create_account(SERVER_URL, handle=name)
    await introduce(server, client)  # as if they had exchanged invite links
    return client, ghost


async def test_a_ghost_account_key_at_claim_time_is_refused(server: InProcessServer) -> None:
    alice, ghost_server = await _client_through(server, "alice")
    bob = await server.client("bob")
    bob_id = await account_id(bob)
    bob_key = (await identity_of(bob)).account_public_key
    await alice.create_conversation(bob_id)  # pins Bob's real account key
    await alice.flush(FLUSH)
    contact = await alice.contact(bob_id)
    assert contact.account_key == bob_key and contact.account_key_changed_at is None

    ghost_server.victim = bob_id
    with pytest.raises(UntrustedKeyError) as info:
        await alice.create_group("Trap", [bob_id])
    assert "safety number changed" in info.value.user_message
    contact = await alice.contact(bob_id)
    assert contact.account_key == bob_key  # still the real one
    assert contact.account_key_changed_at is not None
    assert len(await alice.conversations()) == 1  # nothing was made

    # Honest again: the real key is accepted as before.
    ghost_server.victim = None
    await alice.create_group("Real", [bob_id])
    assert len(await alice.conversations()) == 2


async def test_only_the_users_explicit_acceptance_pins_a_new_account_key(
    server: InProcessServer,
) -> None:
    alice, ghost_server = await _client_through(server, "alice")
    bob = await server.client("bob")
    bob_id = await account_id(bob)
    await alice.create_conversation(bob_id)
    await alice.flush(FLUSH)
    with pytest.raises(NotAllowedError):  # nothing else was seen: nothing to accept
        await alice.accept_account_key(bob_id)
    old_number = (await alice.mark_verified(bob_id)).number

    ghost_server.victim = bob_id
    with pytest.raises(UntrustedKeyError):
        await alice.create_group("Trap", [bob_id])
    offered = await alice._store.run(lambda s: s.contacts.offered_account_key(bob_id))
    assert offered is not None and offered != (await alice.contact(bob_id)).account_key
    view = await alice.accept_account_key(bob_id)
    assert not view.verified and view.number != old_number
    contact = await alice.contact(bob_id)
    assert contact.account_key == offered and contact.account_key_changed_at is None
    assert not contact.verified


async def test_the_first_claim_of_a_ghost_key_pins_it_and_the_real_one_is_then_refused(
    server: InProcessServer,
) -> None:
    """Trust on first use, said plainly: the safety number is what catches a first ghost."""
    alice, ghost_server = await _client_through(server, "alice")
    bob = await server.client("bob")
    bob_id = await account_id(bob)
    bob_key = (await identity_of(bob)).account_public_key
    assert bob_key is not None
    ghost_server.victim = bob_id
    await alice.create_conversation(bob_id)
    pinned = (await alice.contact(bob_id)).account_key
    assert pinned is not None and pinned != bob_key
    # The numbers the two users compare differ: the ghost shows.
    alice_number = await alice.safety_number(bob_id)
    await bob.sync()  # the Welcome names the ghost device of "Bob": Bob's client refuses
    assert await bob.conversations() == []
    ghost_server.victim = None
    with pytest.raises(UntrustedKeyError):
        await alice.create_group("Real", [bob_id])
    real = safety_number(
        AccountSide(await account_id(alice), (await identity_of(alice)).account_public_key or b""),
        AccountSide(bob_id, bob_key),
    )
    assert alice_number.number != real


# -- safety numbers over account keys --------------------------------------------------


async def test_the_safety_number_is_over_account_keys_and_verified_follows_them(
    server: InProcessServer,
) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    alice_id, bob_id = await account_id(alice), await account_id(bob)
    chat = await alice.create_conversation(bob_id)
    await alice.flush(FLUSH)
    await bob.sync()
    alice_key = (await identity_of(alice)).account_public_key
    bob_key = (await identity_of(bob)).account_public_key
    assert alice_key is not None and bob_key is not None
    expected = safety_number(AccountSide(alice_id, alice_key), AccountSide(bob_id, bob_key))
    assert FINGERPRINT_VERSION == 2
    assert (await alice.safety_number(bob_id)).number == expected
    assert (await bob.safety_number(alice_id)).number == expected
    assert expected.digits[:30] in (
        account_fingerprint(alice_id, alice_key),
        account_fingerprint(bob_id, bob_key),
    )

    view = await alice.mark_verified(bob_id)
    assert view.verified and not view.changed
    assert (await alice.safety_number(bob_id)).verified
    # The user accepts a new account key for Bob: "verified" is gone, the number is new.
    new_key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    now = int(time.time() * 1000)
    assert await alice._store.run(
        lambda s: s.contacts.replace_account_key(bob_id, new_key, now=now)
    )
    after = await alice.safety_number(bob_id)
    assert not after.verified and not after.changed and after.number != expected
    assert chat.id is not None


async def test_the_upgrade_replaces_the_version_1_leaf_in_every_group(
    server: InProcessServer,
) -> None:
    """RFC 9420 §12.4.3.2 resync: the same device key, a version-2 credential."""
    carol = await _legacy_client(server, "carol")
    session = carol._require()
    assert carol._pool is not None
    await carol._pool.replenish()  # version-1 KeyPackages, as an earlier version uploaded
    bob = await server.client("bob")
    bob._require().account.verifier.accept_uncertified = True  # lets Carol's v1 leaf in
    carol_id = await account_id(carol)
    chat = await bob.create_conversation(carol_id)
    await bob.flush(FLUSH)
    session.account.verifier.accept_uncertified = True
    assert carol._pipeline is not None
    await carol._pipeline.catch_up()  # joined with her version-1 leaf, not upgraded yet
    (view,) = await carol.conversations()
    members = await bob.members(chat.id)
    assert {x.account_id for x in members} == {carol_id, await account_id(bob)}

    await carol.sync()  # the account key, then the resync of every group
    identity = await identity_of(carol)
    assert identity.account_public_key is not None
    group_id = view.conversation.group_id
    assert group_id is not None
    group = await session.groups.get(group_id)
    assert group is not None
    from messenger.client.groups import group_members

    (own,) = [x for x in group_members(group) if x.account_id == carol_id]
    assert own.certified and own.signature_key == identity.signature_public_key

    # Bob takes the resync; from now on he needs no leniency for Carol.
    await bob.sync()
    bob._require().account.verifier.accept_uncertified = False
    await carol.send_text(view.id, "certified now")
    await carol.flush(FLUSH)
    await bob.sync()
    texts = [v.message.body for v in await bob.messages(chat.id) if v.note is None]
    assert texts[-1] == "certified now"
    bob_group = await bob._require().groups.get(group_id)
    assert bob_group is not None
    (seen,) = [x for x in group_members(bob_group) if x.account_id == carol_id]
    assert seen.certified


async def test_a_welcome_with_a_ghost_device_of_a_pinned_contact_is_refused_and_recorded(
    server: InProcessServer,
) -> None:
    """A "Bob" whose account key is not the pinned one, in a Welcome to Alice: refused,
    and recorded for the UI. (The malicious server delivers the Welcome itself.)"""
    from messenger.api.models import QueueMessage
    from messenger.client.groups import GROUP_CONFIG, ConversationInfo, group_extensions
    from messenger.client.store import ConversationKind
    from messenger.mls.group import Group, accept_basic_credentials

    alice = await server.client("alice")
    bob = await server.client("bob")
    carol, ghost_server = await _client_through(server, "carol")
    alice_id, bob_id = await account_id(alice), await account_id(bob)
    await alice.create_conversation(bob_id)  # Alice pins Bob's real account key
    await alice.flush(FLUSH)
    assert (await alice.contact(bob_id)).account_key_changed_at is None

    carol_session = carol._require()
    (alice_kp,) = await claim_key_packages(carol_session, alice_id)
    ghost_server.victim = bob_id
    bob_identity = await identity_of(bob)
    ghost = ghost_server._ghost(bob_identity.client_id, bob_identity.queue_id)
    trap = Group.create(
        new_key_package(carol_session.account, os.urandom, now=int(time.time())),
        os.urandom,
        group_id=os.urandom(32),
        extensions=group_extensions(ConversationInfo(ConversationKind.GROUP, "Trap")),
        config=GROUP_CONFIG,
        identity=accept_basic_credentials,
    )
    result = trap.commit(os.urandom, add=[alice_kp.key_package, ghost.message()])
    assert result.welcome is not None
    assert alice._pipeline is not None
    await alice._pipeline.process([QueueMessage(10_000, result.welcome)])
    assert all(c.conversation.title != "Trap" for c in await alice.conversations())
    # The refusal is recorded for the UI (by a task of the client's: wait for it).
    deadline = asyncio.get_running_loop().time() + 10.0
    while (await alice.contact(bob_id)).account_key_changed_at is None:
        assert asyncio.get_running_loop().time() < deadline, "the change was not recorded"
        await asyncio.sleep(0.01)
    assert (await alice.contact(bob_id)).account_key == bob_identity.account_public_key
