"""Bad input to a Group: every kind raises a typed error and changes nothing.

Malformed, forged, replayed, wrong-group, wrong-epoch, wrong-signature and
wrong-membership-tag messages, Commits with invalid proposal lists or
confirmation tags, bad Welcomes and GroupInfos, and corrupted saved states.
After each failure ``group.to_bytes()`` must be what it was before, and the
group must still work.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.mls.commit import Commit
from messenger.mls.content import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    PrivateMessage,
    PublicMessage,
    Sender,
    WireFormat,
)
from messenger.mls.errors import (
    AuthenticationError,
    DecodeError,
    DecryptionError,
    EpochError,
    InvalidMessageError,
    UsageError,
    ValidationError,
)
from messenger.mls.events import ApplicationMessage, StagedCommit
from messenger.mls.group import Group
from messenger.mls.group_state import GroupConfig
from messenger.mls.messages import MLSMessage
from messenger.mls.nodes import RatchetTree
from messenger.mls.proposals import (
    ExternalInit,
    GroupContextExtensions,
    Proposal,
    ProposalOrRef,
    Remove,
    Update,
)
from messenger.mls.secret_tree import GenerationConsumedError
from messenger.mls.welcome import Welcome
from tests.mls.harness import NOW, Network


def three(seed: int = 0, *, encrypt: bool = False, suite: int = 1) -> Network:
    net = Network(suite, seed=seed, config=GroupConfig(encrypt_handshake=encrypt))
    net.create("alice")
    net.commit("alice", add_names=["bob", "carol"])
    return net


@contextmanager
def unchanged(group: Group) -> Iterator[None]:
    before = group.to_bytes()
    yield
    assert group.to_bytes() == before, "a failed operation changed the group"


def refused(group: Group, message: bytes, error: type[Exception]) -> None:
    with unchanged(group), pytest.raises(error):
        group.process(message, now=NOW)


def forge(
    member: Group,
    content: Proposal | Commit | bytes,
    *,
    sender: int | None = None,
    tag: bytes | None = None,
    signing_key: bytes | None = None,
    wire_format: WireFormat = WireFormat.PUBLIC_MESSAGE,
) -> bytes:
    """A message an insider makes with its own keys: any content, any sender."""
    state = member._s.epoch
    framing = member._framing
    framed = FramedContent(
        member.group_id,
        member.epoch,
        Sender.member(member.leaf_index if sender is None else sender),
        b"",
        content,
    )
    if isinstance(content, Commit) and tag is None:
        tag = bytes(member.suite.hash_len)
    auth = framing.sign(signing_key or state.signature_private_key, wire_format, framed, tag)
    if wire_format == WireFormat.PRIVATE_MESSAGE:
        return MLSMessage(framing.protect_private(auth, random.Random(1).randbytes)).to_bytes()
    return MLSMessage(framing.protect_public(auth)).to_bytes()


# -- malformed -------------------------------------------------------------------------


def test_malformed_messages() -> None:
    net = three()
    bob = net.groups["bob"]
    good = net.groups["alice"].propose_remove(2, net.random)
    for data in (b"", b"\x00", b"\x00\x01\x00\x01", good[:-1], good + b"\x00", b"\xff" * 40):
        refused(bob, data, DecodeError)
    key_package = net.key_package("dave")
    refused(bob, key_package, ValidationError)  # not a group message
    refused(bob, net.groups["alice"].group_info(), ValidationError)
    assert bob.process(good) is not None  # still works


@settings(max_examples=60)
@given(data=st.data())
def test_mutated_messages(data: st.DataObject) -> None:
    net, messages = _FUZZ[data.draw(st.sampled_from(sorted(_FUZZ)))]
    bob = net.groups["bob"]
    message = data.draw(st.sampled_from(messages))
    mutated = bytearray(message)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] ^= 1 << data.draw(st.integers(0, 7))
    if bytes(mutated) == message:  # two flips of the same bit
        return
    before = bob.to_bytes()
    try:
        bob.process(bytes(mutated), now=NOW)
    except InvalidMessageError:
        assert bob.to_bytes() == before
    else:  # a flipped bit that changes nothing the protocol checks is rare
        pytest.fail("a mutated message was accepted")


def _fuzz_setup(suite: int) -> tuple[Network, list[bytes]]:
    net = three(99, encrypt=True, suite=suite)
    alice = net.groups["alice"]
    carol = net.groups["carol"]
    messages = [
        alice.encrypt(b"application data", net.random),
        carol.propose_remove(0, net.random),
        alice.propose_update(net.random),
        forge(carol, Proposal(Remove(0)), wire_format=WireFormat.PUBLIC_MESSAGE),
        carol.commit(net.random, encrypt=False).message,
    ]
    return net, messages


#: Suite 1 and the post-quantum suites (hybrid KEM; ML-DSA-65 signatures).
_FUZZ = {suite: _fuzz_setup(suite) for suite in (1, 0xF001, 0xF00A)}


# -- forged, replayed, wrong epoch or group --------------------------------------------------


def test_wrong_membership_tag_and_signature() -> None:
    net = three(1)
    alice, bob = net.groups["alice"], net.groups["bob"]
    message = bytearray(alice.propose_remove(2, net.random))
    message[-1] ^= 1  # the membership tag ends a member's PublicMessage
    refused(bob, bytes(message), AuthenticationError)
    # Carol, a member, signs a proposal claiming to come from Alice.
    carol = net.groups["carol"]
    forged = forge(carol, Proposal(Remove(1)), sender=alice.leaf_index)
    refused(bob, forged, AuthenticationError)
    # A signature over other bytes, with a correct membership tag.
    public = MLSMessage.from_bytes(alice.propose_remove(2, net.random)).public_message
    bad_auth = FramedContentAuthData(public.auth.signature[::-1])
    content = AuthenticatedContent(WireFormat.PUBLIC_MESSAGE, public.content, bad_auth)
    refused(bob, MLSMessage(alice._framing.protect_public(content)).to_bytes(), AuthenticationError)
    # A sender leaf that is blank.
    refused(bob, forge(carol, Proposal(Remove(1)), sender=7), ValidationError)


def test_replays() -> None:
    net = three(2, encrypt=True)
    alice, bob = net.groups["alice"], net.groups["bob"]
    application = alice.encrypt(b"once", net.random)
    assert isinstance(bob.process(application), ApplicationMessage)
    refused(bob, application, GenerationConsumedError)
    proposal = alice.propose_remove(2, net.random)
    bob.process(proposal)
    refused(bob, proposal, DecryptionError)  # its handshake key is spent
    public = forge(alice, Proposal(Remove(2)))
    net.groups["carol"].process(public)
    refused(net.groups["carol"], public, ValidationError)  # already cached


def test_wrong_epoch_and_group() -> None:
    net = three(3, encrypt=True)
    alice, bob, carol = net.groups["alice"], net.groups["bob"], net.groups["carol"]
    stale_proposal = alice.propose_remove(2, net.random)
    stale_commit = carol.commit(net.random)
    net.groups["alice"].clear_pending_proposals()
    net.commit("alice")
    refused(bob, stale_proposal, EpochError)
    refused(bob, stale_commit.message, EpochError)
    future = FramedContent(bob.group_id, bob.epoch + 1, Sender.member(0), b"", Proposal(Remove(2)))
    public = PublicMessage(future, FramedContentAuthData(b"s" * 64), b"t" * 32)
    refused(bob, MLSMessage(public).to_bytes(), EpochError)
    for content_type in ContentType:
        private = PrivateMessage(
            bob.group_id, bob.epoch + 1, content_type, b"", b"x" * 28, b"y" * 40
        )
        refused(bob, MLSMessage(private).to_bytes(), EpochError)
    other = three(4)
    refused(bob, other.groups["alice"].encrypt(b"x", other.random), ValidationError)
    refused(bob, other.groups["alice"].propose_remove(1, other.random), ValidationError)


def test_tampered_private_message_consumes_nothing() -> None:
    net = three(5)
    alice, bob = net.groups["alice"], net.groups["bob"]
    message = alice.encrypt(b"intact", net.random)
    tampered = bytearray(message)
    tampered[-3] ^= 0x40
    refused(bob, bytes(tampered), DecryptionError)
    event = bob.process(message)
    assert isinstance(event, ApplicationMessage) and event.data == b"intact"


def test_application_data_in_public_message() -> None:
    net = three(6)
    framed = FramedContent(net.groups["alice"].group_id, 1, Sender.member(0), b"", b"in the clear")
    message = MLSMessage(PublicMessage(framed, FramedContentAuthData(b"s"), b"t" * 32))
    refused(net.groups["bob"], message.to_bytes(), ValidationError)


# -- invalid commits ---------------------------------------------------------------------------


def _invalid_commits(net: Network) -> list[tuple[str, Commit]]:
    alice = net.groups["alice"]
    leaf = alice._s.epoch.tree.leaf(0)
    assert leaf is not None
    update = Update(leaf)
    return [
        ("removes the committer", Commit((ProposalOrRef.by_value(Remove(2)),))),
        (
            "removes a leaf twice",
            Commit((ProposalOrRef.by_value(Remove(1)), ProposalOrRef.by_value(Remove(1)))),
        ),
        ("removes a blank leaf", Commit((ProposalOrRef.by_value(Remove(5)),))),
        ("an Update by value", Commit((ProposalOrRef.by_value(update),))),
        ("an ExternalInit", Commit((ProposalOrRef.by_value(ExternalInit(b"k" * 32)),))),
        ("an unknown reference", Commit((ProposalOrRef.by_reference(b"r" * 32),))),
        ("no path for a Remove", Commit((ProposalOrRef.by_value(Remove(1)),))),
        ("no path and no proposals", Commit(())),
        (
            "two GroupContextExtensions",
            Commit(
                (
                    ProposalOrRef.by_value(GroupContextExtensions(())),
                    ProposalOrRef.by_value(GroupContextExtensions(())),
                )
            ),
        ),
    ]


@pytest.mark.parametrize("wire_format", [WireFormat.PUBLIC_MESSAGE, WireFormat.PRIVATE_MESSAGE])
def test_commits_with_invalid_proposals(wire_format: WireFormat) -> None:
    net = three(7)
    carol, bob = net.groups["carol"], net.groups["bob"]
    for reason, commit in _invalid_commits(net):
        message = forge(carol, commit, wire_format=wire_format)
        with unchanged(bob), pytest.raises(ValidationError):
            bob.process(message, now=NOW)
        del reason
    net.commit("carol")  # the group still works, carol's ratchet included
    net.check()


def test_bad_confirmation_tag() -> None:
    net = three(8)
    carol, bob = net.groups["carol"], net.groups["bob"]
    result = carol.commit(net.random)
    public = MLSMessage.from_bytes(result.message).public_message
    assert public.auth.confirmation_tag is not None
    wrong = FramedContentAuthData(
        public.auth.signature, bytes(b ^ 1 for b in public.auth.confirmation_tag)
    )
    content = AuthenticatedContent(WireFormat.PUBLIC_MESSAGE, public.content, wrong)
    message = MLSMessage(carol._framing.protect_public(content)).to_bytes()
    refused(bob, message, AuthenticationError)
    assert isinstance(bob.process(result.message), StagedCommit)


def test_commit_path_for_another_epoch() -> None:
    """A path encrypted under another GroupContext does not decrypt."""
    net = three(9)
    carol, bob = net.groups["carol"], net.groups["bob"]
    old = carol.commit(net.random)
    old_commit = MLSMessage.from_bytes(old.message).public_message.content.content
    assert isinstance(old_commit, Commit)
    net.commit("alice")
    message = forge(net.groups["carol"], old_commit)
    with unchanged(bob), pytest.raises(InvalidMessageError):
        bob.process(message)


def test_staged_commit_of_another_group() -> None:
    net, other = three(10), three(11)
    staged = other.groups["bob"].process(other.groups["alice"].commit(other.random).message)
    assert isinstance(staged, StagedCommit)
    bob = net.groups["bob"]
    with unchanged(bob), pytest.raises(UsageError):
        bob.merge(staged)


# -- bad Welcomes and GroupInfos ----------------------------------------------------------


def test_bad_welcomes() -> None:
    net = three(12)
    alice = net.groups["alice"]
    kp = net.key_package("dave")
    result = alice.commit(net.random, add=[kp], inline_tree=False)
    assert result.welcome is not None
    bundle = net.bundle("dave", kp)
    with pytest.raises(ValidationError):  # the tree is neither inline nor given
        Group.join_from_welcome(result.welcome, bundle)
    stale_tree = alice.ratchet_tree.to_bytes()  # the tree before the Commit
    with pytest.raises(ValidationError):
        Group.join_from_welcome(result.welcome, bundle, ratchet_tree=stale_tree)
    other = net.bundle("bob", net.key_package("bob"))
    with pytest.raises(ValidationError):
        Group.join_from_welcome(result.welcome, other)
    welcome = MLSMessage.from_bytes(result.welcome).welcome
    sealed = welcome.encrypted_group_info  # flip a tag bit (a fixed byte could already be it)
    corrupt = replace(welcome, encrypted_group_info=sealed[:-1] + bytes([sealed[-1] ^ 1]))
    alice.merge(result.staged)
    tree = alice.ratchet_tree.to_bytes()
    with pytest.raises(DecryptionError):
        Group.join_from_welcome(MLSMessage(corrupt).to_bytes(), bundle, ratchet_tree=tree)
    entry = welcome.secrets[0]
    bad_secrets = replace(
        entry,
        encrypted_group_secrets=replace(
            entry.encrypted_group_secrets,
            ciphertext=bytes(len(entry.encrypted_group_secrets.ciphertext)),
        ),
    )
    broken = Welcome(welcome.cipher_suite, (bad_secrets,), welcome.encrypted_group_info)
    with pytest.raises(DecryptionError):
        Group.join_from_welcome(MLSMessage(broken).to_bytes(), bundle, ratchet_tree=tree)
    with pytest.raises(DecodeError):
        Group.join_from_welcome(b"\x00\x01\x00\x03", bundle)
    with pytest.raises(DecodeError):  # a KeyPackage is not a Welcome
        Group.join_from_welcome(kp, bundle)
    # A tampered out-of-band tree: a leaf of another group.
    nodes = list(RatchetTree.from_bytes(tree).nodes)
    nodes[0], nodes[2] = nodes[2], nodes[0]
    with pytest.raises(InvalidMessageError):
        Group.join_from_welcome(result.welcome, bundle, ratchet_tree=RatchetTree(tuple(nodes)))
    joined = Group.join_from_welcome(result.welcome, bundle, ratchet_tree=tree)
    assert joined.epoch_authenticator == alice.epoch_authenticator


def test_welcome_with_unknown_psk() -> None:
    net = Network(1, seed=13, psks={b"k": b"v"})
    net.create("alice")
    kp = net.key_package("bob")
    result = net.groups["alice"].commit(net.random, add=[kp], psks=[b"k"])
    assert result.welcome is not None
    with pytest.raises(ValidationError):
        Group.join_from_welcome(result.welcome, net.bundle("bob", kp))
    bob = Group.join_from_welcome(result.welcome, net.bundle("bob", kp), external_psks={b"k": b"v"})
    net.groups["alice"].merge(result.staged)
    assert bob.epoch_authenticator == net.groups["alice"].epoch_authenticator


def test_bad_group_info_for_external_join() -> None:
    net = three(14)
    alice = net.groups["alice"]
    client = net.client("eve")

    def join(info: bytes) -> None:
        Group.join_external(
            info,
            credential=client.credential,
            signature_private_key=client.signature_private_key,
            random=net.random,
        )

    with pytest.raises(ValidationError):
        join(alice.group_info(external_pub=False))
    info = MLSMessage.from_bytes(alice.group_info()).group_info
    with pytest.raises(AuthenticationError):
        join(MLSMessage(replace(info, signature=info.signature[::-1])).to_bytes())
    with pytest.raises(ValidationError):  # no tree to be had
        join(alice.group_info(inline_tree=False))
    # An external Commit for an old epoch is refused by the members.
    info_bytes = alice.group_info()
    _, result = Group.join_external(
        info_bytes,
        credential=client.credential,
        signature_private_key=client.signature_private_key,
        random=net.random,
    )
    net.commit("bob")
    refused(net.groups["carol"], result.message, EpochError)


def test_external_commit_with_wrong_signature() -> None:
    net = three(15)
    client = net.client("eve")
    _, result = Group.join_external(
        net.groups["alice"].group_info(),
        credential=client.credential,
        signature_private_key=client.signature_private_key,
        random=net.random,
    )
    public = MLSMessage.from_bytes(result.message).public_message
    forged = replace(public, auth=replace(public.auth, signature=public.auth.signature[::-1]))
    refused(net.groups["bob"], MLSMessage(forged).to_bytes(), AuthenticationError)
    assert isinstance(net.groups["bob"].process(result.message), StagedCommit)


# -- saved state ---------------------------------------------------------------------------------


def test_corrupted_state() -> None:
    net = three(16)
    data = net.groups["bob"].to_bytes()
    for bad in (b"", data[:-1], data + b"\x00", b"XXXX" + data[4:], data[:4] + b"\x09" + data[5:]):
        with pytest.raises(DecodeError):
            Group.from_bytes(bad)
    rng = random.Random(0)
    for _ in range(200):
        mutated = bytearray(data)
        mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
        with suppress(InvalidMessageError):
            Group.from_bytes(bytes(mutated))


def test_usage_errors() -> None:
    net = three(17)
    alice = net.groups["alice"]
    with unchanged(alice):
        with pytest.raises(UsageError):
            alice.commit(net.random, remove=[alice.leaf_index])
        with pytest.raises(UsageError):
            alice.commit(net.random, remove=[9])
        with pytest.raises(UsageError):
            alice.propose_remove(9, net.random)
        with pytest.raises(UsageError):
            alice.propose_psk(b"unknown", net.random)
        with pytest.raises(UsageError):
            alice.export_secret(b"x", b"", 1 << 17)
