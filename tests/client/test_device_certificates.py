"""Device certificates checked by every member (docs/devices.md §1; RFC 9420 §5.3.1).

The :class:`~messenger.client.identity.CredentialVerifier` accepts a
credential only if the server's signature (version 2: over the account key
too) verifies, it certifies the leaf's own key, and the account key's
certificate of that key verifies; an *unverified device* (a version-1
credential, or a certificate by another key) is refused unless the policy
says otherwise. The attacks: a malicious member adds a device the server
minted (a valid server signature, no valid certificate) to a group Bob is
in, or invites Bob into a group whose tree holds one. Bob's real inbound
pipeline refuses both and changes nothing.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import models as m
from messenger.api.models import QueueMessage
from messenger.api.signing import credential_tbs, device_certificate_tbs
from messenger.client.groups import (
    GROUP_CONFIG,
    ConversationInfo,
    group_extensions,
    group_members,
    new_key_package,
)
from messenger.client.identity import (
    ACCEPT_UNCERTIFIED_DEVICES,
    CIPHER_SUITE,
    Account,
    CredentialVerifier,
    PinnedKeys,
    certify_device,
    encode_credential,
    member_identity,
)
from messenger.client.net import Signer
from messenger.client.session import Session
from messenger.client.store import ConversationKind, Identity
from messenger.client.sync import InboundPipeline
from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.credentials import Credential
from messenger.mls.group import Group, accept_basic_credentials
from messenger.mls.key_package_bundle import KeyPackageBundle

from .sync_helpers import Authority, close_session, make_session, publish_key_package

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def _device_key() -> tuple[bytes, bytes]:
    return get_cipher_suite(CIPHER_SUITE).generate_signature_key_pair(os.urandom)


def v1_credential(authority: Authority, account_id: str, signature_key: bytes) -> m.Credential:
    """A credential the server signed without any account key (version 1)."""
    tbs = credential_tbs(account_id, "client-v1", signature_key, 1)
    return m.Credential(account_id, "client-v1", signature_key, 1, authority._key.sign(tbs))


def forged_credential(
    authority: Authority, account_id: str, signature_key: bytes, certifier: Ed25519PrivateKey
) -> m.Credential:
    """Server-signed, naming the account's real key; the certificate by ``certifier``."""
    account_key = _raw(authority.account_key(account_id))
    certificate = certifier.sign(device_certificate_tbs(account_key, signature_key, 5))
    tbs = credential_tbs(account_id, "client-forged", signature_key, 1, account_key)
    return m.Credential(
        account_id,
        "client-forged",
        signature_key,
        1,
        authority._key.sign(tbs),
        account_key,
        5,
        certificate,
    )


def basic(credential: m.Credential) -> Credential:
    return Credential.basic(encode_credential(credential))


# -- the verifier alone ---------------------------------------------------------------------


def test_the_default_policy_refuses_unverified_devices() -> None:
    assert ACCEPT_UNCERTIFIED_DEVICES is False


def test_a_certified_device_is_accepted_and_shows_as_certified() -> None:
    authority = Authority()
    _, public = _device_key()
    credential = authority.issue("acct-alice", "client-1", public)
    verifier = CredentialVerifier(authority.public)
    assert verifier(basic(credential), public)
    who = member_identity(basic(credential))
    assert who is not None and who.certified
    assert who.account_key == _raw(authority.account_key("acct-alice"))


def test_a_version_1_credential_is_refused_unless_the_policy_accepts_it() -> None:
    authority = Authority()
    _, public = _device_key()
    credential = basic(v1_credential(authority, "acct-old", public))
    assert not CredentialVerifier(authority.public)(credential, public)
    lenient = CredentialVerifier(authority.public, accept_uncertified=True)
    assert lenient(credential, public)
    who = member_identity(credential)
    assert who is not None and not who.certified and who.account_key is None


def test_a_certificate_by_another_key_is_refused() -> None:
    authority = Authority()
    _, public = _device_key()
    forged = basic(forged_credential(authority, "acct-alice", public, Ed25519PrivateKey.generate()))
    assert not CredentialVerifier(authority.public)(forged, public)
    who = member_identity(forged)
    assert who is not None and not who.certified


def test_the_server_signature_covers_the_account_key() -> None:
    """Swapping the account key (and certifying with the new one) breaks the server's signature."""
    authority = Authority()
    _, public = _device_key()
    real = authority.issue("acct-alice", "client-1", public)
    ghost = Ed25519PrivateKey.generate()
    swapped = m.Credential(
        real.account_id,
        real.client_id,
        real.signature_key,
        real.issued_at,
        real.signature,
        _raw(ghost),
        7,
        certify_device(ghost.private_bytes_raw(), public, 7),
    )
    assert not CredentialVerifier(authority.public)(basic(swapped), public)


def test_another_servers_signature_or_another_leaf_key_is_refused() -> None:
    authority, other = Authority(), Authority()
    _, public = _device_key()
    _, elsewhere = _device_key()
    credential = basic(authority.issue("acct-alice", "client-1", public))
    assert not CredentialVerifier(other.public)(credential, public)
    assert not CredentialVerifier(authority.public)(credential, elsewhere)


def test_a_second_account_key_for_a_pinned_account_is_refused_and_reported() -> None:
    authority = Authority()
    _, public = _device_key()
    changed: list[str] = []
    pins = PinnedKeys({"acct-alice": _raw(authority.account_key("acct-alice"))})
    pins.on_changed = lambda account_id, offered: changed.append(account_id)
    verifier = CredentialVerifier(authority.public, pins=pins)
    assert verifier(basic(authority.issue("acct-alice", "client-1", public)), public)
    # The server mints a "ghost" account key for Alice and certifies a device with it.
    ghost_authority = Authority()
    ghost_authority._key = authority._key  # the same (malicious) server
    ghost = basic(ghost_authority.issue("acct-alice", "client-ghost", public))
    assert not verifier(ghost, public)
    assert changed == ["acct-alice"]
    # ... and cannot fall back to a version-1 credential for her either, even if lenient.
    verifier.accept_uncertified = True
    assert not verifier(basic(v1_credential(authority, "acct-alice", public)), public)


def test_an_account_first_seen_is_pinned_for_the_rest_of_a_welcome() -> None:
    """Two account keys for one account in one tree: the second is refused."""
    first, second = Authority(), Authority()
    second._key = first._key
    _, one = _device_key()
    _, two = _device_key()
    verifier = CredentialVerifier(first.public)
    assert verifier(basic(first.issue("acct-carol", "client-1", one)), one)
    assert not verifier(basic(second.issue("acct-carol", "client-2", two)), two)


# -- attacks through Bob's real pipeline -------------------------------------------------


def ghost_key_package(credential: m.Credential, private: bytes) -> KeyPackageBundle:
    """A KeyPackage of a device with ``credential`` (signed by its own ``private`` key)."""
    identity = Identity(
        server_url="http://127.0.0.1:9",
        account_id=credential.account_id,
        client_id=credential.client_id,
        queue_id=f"queue-{credential.client_id}",
        cipher_suite=CIPHER_SUITE,
        signature_private_key=private,
        signature_public_key=bytes(credential.signature_key),
        credential=encode_credential(credential),
        created_at=0,
        server_key=b"\x00" * 32,
    )
    account = Account(
        identity,
        credential,
        CredentialVerifier(Ed25519PrivateKey.generate().public_key().public_bytes_raw()),
        Signer(credential.client_id, private),
    )
    return new_key_package(account, os.urandom, now=int(time.time()))


def lenient_group(session: Session, name: str) -> Group:
    """A group of Mallory's whose validator lets anything in (her client is hers to change)."""
    return Group.create(
        new_key_package(session.account, os.urandom, now=int(time.time())),
        os.urandom,
        group_id=os.urandom(32),
        extensions=group_extensions(ConversationInfo(ConversationKind.GROUP, name)),
        config=GROUP_CONFIG,
        identity=accept_basic_credentials,
    )


@dataclass
class World:
    authority: Authority
    bob: Session
    mallory: Session
    pipeline: InboundPipeline
    seqs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def feed(self, *messages: bytes) -> None:
        await self.pipeline.process([QueueMessage(next(self.seqs), d) for d in messages])

    async def state(self, group_id: bytes) -> tuple[int, bytes] | None:
        saved = await self.bob.store.run(lambda s: s.groups.get(group_id))
        return None if saved is None else (saved.epoch, saved.state)

    def uncertified(self, kind: str) -> KeyPackageBundle:
        private, public = _device_key()
        if kind == "v1":
            credential = v1_credential(self.authority, "acct-ghost", public)
        else:  # a certificate by another key than the account's
            credential = forged_credential(
                self.authority, "acct-bob", public, Ed25519PrivateKey.generate()
            )
        return ghost_key_package(credential, private)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    authority = Authority()
    bob = await make_session(tmp_path / "b", "bob", authority)
    mallory = await make_session(tmp_path / "m", "mallory", authority)
    made = World(authority, bob, mallory, InboundPipeline(bob))
    try:
        yield made
    finally:
        await close_session(bob)
        await close_session(mallory)


@pytest.mark.parametrize("kind", ["v1", "forged"])
async def test_an_add_of_an_unverified_device_by_a_member_changes_nothing(
    world: World, kind: str
) -> None:
    club = lenient_group(world.mallory, "club")
    result = club.commit(os.urandom, add=[(await publish_key_package(world.bob)).message()])
    club.merge(result.staged)
    assert result.welcome is not None
    await world.feed(result.welcome)
    before = await world.state(club.group_id)
    assert before is not None and before[0] == 1

    ghost = club.commit(os.urandom, add=[world.uncertified(kind).message()])
    club.merge(ghost.staged)
    await world.feed(ghost.message)
    assert await world.state(club.group_id) == before  # refused: the epoch did not move
    conversation = await world.bob.store.run(lambda s: s.conversations.by_group(club.group_id))
    assert conversation is not None
    members = await world.bob.store.run(lambda s: s.conversations.members(conversation.id))
    assert sorted(x.account_id for x in members) == ["acct-bob", "acct-mallory"]


@pytest.mark.parametrize("kind", ["v1", "forged"])
async def test_a_welcome_whose_tree_holds_an_unverified_device_is_refused(
    world: World, kind: str
) -> None:
    trap = lenient_group(world.mallory, "trap")
    trap.merge(trap.commit(os.urandom, add=[world.uncertified(kind).message()]).staged)
    bob_key_package = await publish_key_package(world.bob)
    result = trap.commit(os.urandom, add=[bob_key_package.message()])
    trap.merge(result.staged)
    assert result.welcome is not None
    await world.feed(result.welcome)
    assert await world.state(trap.group_id) is None
    assert await world.bob.store.run(lambda s: s.conversations.all()) == []


async def test_the_lenient_policy_lets_an_unverified_device_in_and_shows_it(
    tmp_path: Path,
) -> None:
    """The one option: ``accept_uncertified`` (ClientOptions.accept_uncertified_devices)."""
    authority = Authority()
    bob = await make_session(tmp_path / "b", "bob", authority)
    mallory = await make_session(tmp_path / "m", "mallory", authority)
    try:
        bob.account.verifier.accept_uncertified = True
        private, public = _device_key()
        old = ghost_key_package(v1_credential(authority, "acct-old", public), private)
        club = lenient_group(mallory, "club")
        club.merge(club.commit(os.urandom, add=[old.message()]).staged)
        result = club.commit(os.urandom, add=[(await publish_key_package(bob)).message()])
        club.merge(result.staged)
        assert result.welcome is not None
        await InboundPipeline(bob).process([QueueMessage(1, result.welcome)])
        group = await bob.groups.get(club.group_id)
        assert group is not None
        by_account = {x.account_id: x for x in group_members(group)}
        assert not by_account["acct-old"].certified
        assert by_account["acct-mallory"].certified
    finally:
        await close_session(bob)
        await close_session(mallory)


@pytest.mark.parametrize("kind", ["v1", "forged"])
async def test_an_external_commit_by_an_unverified_device_changes_nothing(
    world: World, kind: str
) -> None:
    """RFC 9420 §12.4.3.2: the joiner's leaf is validated like any new leaf."""
    from messenger.client.groups import DELIVERY_QUEUE_EXTENSION
    from messenger.mls.extensions import Extension
    from messenger.mls.key_package_bundle import default_capabilities

    club = lenient_group(world.mallory, "club")
    result = club.commit(os.urandom, add=[(await publish_key_package(world.bob)).message()])
    club.merge(result.staged)
    assert result.welcome is not None
    await world.feed(result.welcome)
    before = await world.state(club.group_id)

    private, public = _device_key()
    if kind == "v1":
        credential = v1_credential(world.authority, "acct-ghost", public)
    else:
        credential = forged_credential(
            world.authority, "acct-mallory", public, Ed25519PrivateKey.generate()
        )
    suite = get_cipher_suite(CIPHER_SUITE)
    _, joined = Group.join_external(
        club.group_info(),
        credential=basic(credential),
        signature_private_key=private,
        random=os.urandom,
        capabilities=default_capabilities(suite, (0xF001, DELIVERY_QUEUE_EXTENSION)),
        leaf_extensions=[Extension(DELIVERY_QUEUE_EXTENSION, b"queue-ghost")],
        config=GROUP_CONFIG,
        identity=accept_basic_credentials,
    )
    await world.feed(joined.message)
    assert await world.state(club.group_id) == before
