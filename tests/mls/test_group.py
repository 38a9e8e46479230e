"""The Group API with several members, for every cipher suite (RFC 9420 §11-§12).

Groups of 2, 3 and 50 members go through adds, removes, updates, proposals by
reference, external joins, PSKs (external, resumption, ReInit, branch),
GroupContextExtensions with ``required_capabilities`` and ``external_senders``,
and external proposals. After every Commit each member must agree on the
epoch, the GroupContext and the epoch authenticator, and application messages
must decrypt everywhere (tests/mls/harness.py); states are serialized and
restored in the middle.
"""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from messenger.mls.ciphersuite import PQ_CIPHER_SUITES, get_cipher_suite
from messenger.mls.credentials import Credential, CredentialType
from messenger.mls.errors import EpochError, UsageError, ValidationError
from messenger.mls.events import ApplicationMessage, ProposalReceived, StagedCommit
from messenger.mls.extensions import (
    Extension,
    ExternalSender,
    ExternalSenders,
    RequiredCapabilities,
)
from messenger.mls.external_proposals import external_proposal, new_member_add_proposal
from messenger.mls.group import Group
from messenger.mls.group_state import GroupConfig
from messenger.mls.key_package_bundle import default_capabilities, generate_key_package
from messenger.mls.leaf_node import LeafNode
from messenger.mls.messages import MLSMessage
from messenger.mls.proposals import Add, ProposalType, ReInit, Remove
from messenger.mls.psk import PreSharedKeyID, ResumptionPSKUsage
from tests.mls.harness import NOW, Network

SUITES = [*range(1, 8), *PQ_CIPHER_SUITES]
PSKS = {b"team psk": b"a secret shared out of band"}


def names(prefix: str, count: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i}" for i in range(start, start + count)]


# -- small groups, every suite ------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_two_members(suite: int) -> None:
    net = Network(suite, seed=suite)
    net.create("alice")
    net.commit("alice", add_names=["bob"])
    net.check()
    net.commit("bob")  # an empty Commit: a full self-update (RFC 9420 §12.4)
    net.check()
    net.propose("alice", net.groups["alice"].propose_update(net.random))
    net.commit("bob")
    net.check()
    exported = {g.export_secret(b"test", b"context", 42) for g in net.groups.values()}
    assert len(exported) == 1 and len(exported.pop()) == 42


@pytest.mark.parametrize("suite", SUITES)
def test_three_members_full_mix(suite: int) -> None:
    net = Network(suite, seed=100 + suite, psks=PSKS)
    alice = net.create("alice")
    assert alice.epoch == 0 and len(alice.members()) == 1
    net.commit("alice", add_names=["bob"])
    net.check()
    # Add by reference: Bob proposes Carol, Alice commits it.
    net.propose("bob", net.groups["bob"].propose_add(net.key_package("carol"), net.random))
    result = net.groups["alice"].commit(net.random, now=NOW)
    net.accept("alice", result, ["carol"])
    assert [m.credential.identity for m in result.staged.added] == [b"carol"]
    net.check()
    net.round_trip("bob")
    # Updates by reference from two members, committed by the third.
    net.propose("alice", net.groups["alice"].propose_update(net.random))
    net.propose("bob", net.groups["bob"].propose_update(net.random))
    result = net.commit("carol")
    assert {m.leaf_index for m in result.staged.updated} == {0, 1, 2}
    net.check()
    # External PSK by reference and a resumption PSK by value.
    net.propose("bob", net.groups["bob"].propose_psk(b"team psk", net.random))
    g = net.groups["carol"]
    resumption = PreSharedKeyID.resumption(
        ResumptionPSKUsage.APPLICATION, g.group_id, g.epoch - 1, net.random(g.suite.hash_len)
    )
    net.commit("carol", psks=[resumption])
    net.check()
    net.round_trip()
    # Remove by reference, then an external join and a resync.
    net.propose("carol", net.groups["carol"].propose_remove(1, net.random))
    result = net.commit("alice")
    assert [m.credential.identity for m in result.staged.removed] == [b"bob"]
    assert "bob" not in net.groups
    net.check()
    net.join_external("dave", "carol")
    net.check()
    net.join_external("dave", "alice", resync=True)
    net.check()
    net.commit("dave", remove=[net.groups["alice"].leaf_index], add_names=["erin"])
    net.check()
    assert sorted(net.groups) == ["carol", "dave", "erin"]
    # Any proposal by value through ``proposals``.
    result = net.commit("erin", proposals=[Remove(net.groups["carol"].leaf_index)])
    assert [m.credential.identity for m in result.staged.removed] == [b"carol"]
    net.check()


@pytest.mark.parametrize("suite", SUITES)
def test_private_handshake_and_out_of_band_tree(suite: int) -> None:
    net = Network(suite, seed=200 + suite, config=GroupConfig(encrypt_handshake=True))
    net.create("alice")
    net.commit("alice", add_names=["bob", "carol"], ratchet_tree_out_of_band=True)
    net.check()
    message = net.groups["bob"].propose_remove(2, net.random)
    assert MLSMessage.from_bytes(message).wire_format.name == "PRIVATE_MESSAGE"
    net.propose("bob", message)
    net.commit("alice", add_names=["dave"], ratchet_tree_out_of_band=True)
    net.check()
    net.round_trip()
    net.commit("dave", encrypt=False)
    net.check()


@pytest.mark.parametrize("suite", SUITES)
def test_fifty_members(suite: int) -> None:
    net = Network(suite, seed=300 + suite)
    net.create("m0")
    net.commit("m0", add_names=names("m", 49, 1))
    net.check(senders=2)
    # An update by reference and a self-update, then removes and adds.
    net.propose("m17", net.groups["m17"].propose_update(net.random))
    net.commit("m33")
    net.check(senders=2)
    net.commit("m42", remove=[net.groups[n].leaf_index for n in ("m3", "m4", "m5")])
    net.check(senders=2)
    net.commit("m8", add_names=["n1", "n2"])
    net.check(senders=2)
    assert len(net.groups) == 49


def test_fifty_members_full_mix() -> None:
    net = Network(1, seed=7, psks=PSKS)
    net.create("m0")
    net.commit("m0", add_names=names("m", 9, 1))
    for batch in range(4):  # members add members, ten at a time
        committer = f"m{batch * 3}"
        net.commit(committer, add_names=names("m", 10, 10 + 10 * batch))
    net.check(senders=3)
    assert len(net.groups) == 50
    for name in ("m1", "m20", "m45"):
        net.propose(name, net.groups[name].propose_update(net.random))
    net.propose("m2", net.groups["m2"].propose_remove(net.groups["m30"].leaf_index, net.random))
    net.propose("m3", net.groups["m3"].propose_add(net.key_package("x1"), net.random))
    net.propose("m4", net.groups["m4"].propose_psk(b"team psk", net.random))
    result = net.groups["m5"].commit(net.random, now=NOW)
    net.accept("m5", result, ["x1"])
    assert len(result.staged.updated) == 4 and len(result.staged.removed) == 1
    net.check(senders=3)
    net.round_trip(*names("m", 10, 5))
    for name in ("m6", "m21", "x1"):
        net.commit(name)  # self-updates fill the tree's parent nodes
        net.check(senders=2)
    net.join_external("y1", "m7")
    net.check(senders=3)
    net.commit("y1", remove=[net.groups[n].leaf_index for n in names("m", 5, 40)])
    net.check(senders=3)
    assert len(net.groups) == 46


# -- proposals, PSKs and extensions ----------------------------------------------------------


@pytest.mark.parametrize("suite", [1, 2, 5, *PQ_CIPHER_SUITES])
def test_group_context_extensions(suite: int) -> None:
    net = Network(suite, seed=400 + suite)
    net.create("alice")
    net.commit("alice", add_names=["bob"])
    ds_private, ds_public = net.suite.generate_signature_key_pair(net.random)
    required = RequiredCapabilities(
        extension_types=(0xF0A0,), credential_types=(CredentialType.BASIC,)
    )
    senders = ExternalSenders((ExternalSender(ds_public, Credential.basic(b"ds")),))
    extensions = [required.to_extension(), senders.to_extension(), Extension(0xF0A0, b"x")]
    # Neither member supports 0xF0A0 yet: the proposal is refused.
    with pytest.raises(UsageError):
        net.groups["alice"].propose_group_context_extensions(extensions, net.random)
    # Both re-key with capabilities that list it, then the group adopts it.
    for name in ("alice", "bob"):
        group = net.groups[name]
        new_caps = default_capabilities(group.suite, [0xF0A0])
        net.propose(name, group.propose_update(net.random, capabilities=new_caps))
        other = "bob" if name == "alice" else "alice"
        net.commit(other)
    net.commit("alice", group_context_extensions=extensions)
    net.check()
    assert net.groups["bob"].extensions == tuple(extensions)
    # A newcomer without 0xF0A0 in its capabilities cannot be added.
    with pytest.raises(ValidationError):
        net.groups["bob"].commit(net.random, add=[net.key_package("carol")])
    kp = net.key_package("carol", extensions=[Extension(0xF0A0, b"")])
    net.accept("bob", net.groups["bob"].commit(net.random, add=[kp]), ["carol"])
    net.check()
    # The external sender (the "DS") proposes a Remove; a member commits it.
    g = net.groups["carol"]
    message = external_proposal(
        net.suite,
        group_id=g.group_id,
        epoch=g.epoch,
        sender_index=0,
        proposal=Remove(net.groups["alice"].leaf_index),
        signature_private_key=ds_private,
    )
    for event in net.deliver(None, message).values():
        assert isinstance(event, ProposalReceived) and event.member is None
    net.commit("bob")
    assert sorted(net.groups) == ["bob", "carol"]
    net.check()
    # An external sender that is not listed is refused.
    forged = external_proposal(
        net.suite,
        group_id=g.group_id,
        epoch=net.groups["bob"].epoch,
        sender_index=1,
        proposal=Remove(0),
        signature_private_key=ds_private,
    )
    with pytest.raises(ValidationError):
        net.groups["bob"].process(forged)


def test_new_member_proposal() -> None:
    net = Network(1, seed=5)
    net.create("alice")
    net.commit("alice", add_names=["bob"])
    g = net.groups["alice"]
    kp = net.key_package("carol")
    message = new_member_add_proposal(g.group_id, g.epoch, net.bundle("carol", kp))
    events = net.deliver(None, message)
    for event in events.values():
        assert isinstance(event, ProposalReceived)
        assert event.proposal.proposal_type == ProposalType.ADD
    net.accept("bob", net.groups["bob"].commit(net.random), ["carol"])
    net.check()


@pytest.mark.parametrize("suite", SUITES)
def test_reinit(suite: int) -> None:
    net = Network(suite, seed=500 + suite)
    net.create("alice")
    net.commit("alice", add_names=["bob", "carol"])
    new_suite = get_cipher_suite(suite % 7 + 1)
    old = net.groups["bob"]
    net.propose(
        "bob",
        old.propose_reinit(net.random, group_id=b"new group", cipher_suite=new_suite.suite_id),
    )
    result = net.commit("carol")
    assert result.staged.reinit is not None
    for group in net.groups.values():
        assert group.pending_reinit == result.staged.reinit and not group.active
    with pytest.raises(UsageError):
        old.encrypt(b"no more", net.random)
    kps = {n: net.key_package(n, new_suite) for n in ("alice", "bob", "carol")}
    new, result = Group.reinit(
        net.groups["carol"],
        net.bundle("carol", kps["carol"]),
        [kps["alice"], kps["bob"]],
        net.random,
        now=NOW,
    )
    new.merge(result.staged)
    assert result.welcome is not None
    members = {"carol": new}
    for name in ("alice", "bob"):
        members[name] = Group.join_from_welcome(
            result.welcome, net.bundle(name, kps[name]), previous=net.groups[name]
        )
        with pytest.raises(ValidationError):  # the reinit PSK is needed
            Group.join_from_welcome(result.welcome, net.bundle(name, kps[name]))
    auths = {g.epoch_authenticator for g in members.values()}
    assert len(auths) == 1
    assert {g.group_id for g in members.values()} == {b"new group"}
    assert {g.suite.suite_id for g in members.values()} == {new_suite.suite_id}
    assert {g.epoch for g in members.values()} == {1}


@pytest.mark.parametrize("suite", [1, 7, *PQ_CIPHER_SUITES])
def test_branch(suite: int) -> None:
    net = Network(suite, seed=600 + suite)
    net.create("alice")
    net.commit("alice", add_names=["bob", "carol"])
    kps = {n: net.key_package(n) for n in ("alice", "bob")}
    sub, result = Group.branch(
        net.groups["alice"],
        net.bundle("alice", kps["alice"]),
        [kps["bob"]],
        net.random,
        group_id=b"subgroup",
    )
    sub.merge(result.staged)
    assert result.welcome is not None
    bob = Group.join_from_welcome(
        result.welcome, net.bundle("bob", kps["bob"]), previous=net.groups["bob"]
    )
    assert bob.epoch_authenticator == sub.epoch_authenticator
    assert bob.epoch == 1 and [m.credential for m in bob.members()] == [
        Credential.basic(b"alice"),
        Credential.basic(b"bob"),
    ]
    with pytest.raises(UsageError):  # dave was never a member
        Group.branch(
            net.groups["alice"],
            net.bundle("alice", net.key_package("alice")),
            [net.key_package("dave")],
            net.random,
        )


# -- stage, persist, merge -------------------------------------------------------------------


@pytest.mark.parametrize("encrypt", [False, True])
def test_stage_persist_merge(encrypt: bool) -> None:
    net = Network(1, seed=8, config=GroupConfig(encrypt_handshake=encrypt))
    net.create("alice")
    net.commit("alice", add_names=["bob", "carol"])
    alice, bob = net.groups["alice"], net.groups["bob"]
    before = bob.to_bytes()
    result = alice.commit(net.random)
    assert alice.epoch == 1 and alice.to_bytes() != alice.to_bytes(result.staged)
    staged = bob.process(result.message)
    assert isinstance(staged, StagedCommit)
    assert bob.to_bytes() == before  # staging changes nothing
    persisted = bob.to_bytes(staged)
    bob.merge(staged)
    assert bob.to_bytes() == persisted
    restored = Group.from_bytes(persisted)
    assert restored.epoch_authenticator == staged.epoch_authenticator
    with pytest.raises(UsageError):
        bob.merge(staged)  # not for the current epoch any more
    # The committer's own Commit comes back from the DS as its pending staged commit.
    assert alice.process(result.message) is result.staged
    alice.merge(result.staged)
    carol = net.groups["carol"]
    carol.merge(carol.process(result.message))  # type: ignore[arg-type]
    net.check()


def test_concurrent_commits() -> None:
    """Two members commit in the same epoch; the DS orders Bob's first."""
    net = Network(1, seed=9)
    net.create("alice")
    net.commit("alice", add_names=["bob", "carol"])
    losing = net.groups["alice"].commit(net.random)
    winning = net.groups["bob"].commit(net.random)
    net.accept("bob", winning)  # Alice processes and merges Bob's Commit
    with pytest.raises(EpochError):
        net.groups["carol"].process(losing.message)
    with pytest.raises(UsageError):
        net.groups["alice"].merge(losing.staged)
    net.check()


def test_own_proposal_echo_and_pending_proposals_block_sending() -> None:
    net = Network(1, seed=10)
    net.create("alice")
    net.commit("alice", add_names=["bob"])
    alice = net.groups["alice"]
    message = alice.propose_update(net.random)
    echoed = alice.process(message)
    assert isinstance(echoed, ProposalReceived)
    assert [p.ref for p in alice.pending_proposals()] == [echoed.ref]
    with pytest.raises(UsageError):  # RFC 9420 §12.4: commit before sending
        alice.encrypt(b"hi", net.random)
    net.propose("alice", message)
    net.commit("bob")
    net.check()


def test_late_application_messages() -> None:
    net = Network(1, seed=11, config=GroupConfig(max_past_epochs=2))
    net.create("alice")
    net.commit("alice", add_names=["bob", "carol"])
    late = [net.groups["carol"].encrypt(b"epoch 1", net.random)]
    net.commit("alice", remove=[net.groups["carol"].leaf_index])
    late.append(net.groups["bob"].encrypt(b"epoch 2", net.random))
    net.commit("bob", add_names=["dave"])
    late.append(net.groups["alice"].encrypt(b"epoch 3", net.random))
    net.commit("bob")
    bob = net.groups["bob"]
    assert bob.epoch == 4
    with pytest.raises(EpochError):  # epoch 1 is out of the window of 2
        bob.process(late[0])
    event = net.groups["alice"].process(late[1])
    assert isinstance(event, ApplicationMessage) and event.epoch == 2
    event = bob.process(late[2])
    assert isinstance(event, ApplicationMessage) and event.data == b"epoch 3"
    assert event.sender.credential == Credential.basic(b"alice")
    bob = Group.from_bytes(bob.to_bytes())
    event = bob.process(net.groups["bob"].encrypt(b"now", net.random))  # own, other ratchet
    assert isinstance(event, ApplicationMessage)
    no_window = Network(1, seed=12, config=GroupConfig(max_past_epochs=0))
    no_window.create("a")
    no_window.commit("a", add_names=["b"])
    old = no_window.groups["b"].encrypt(b"x", no_window.random)
    no_window.commit("a")
    with pytest.raises(EpochError):
        no_window.groups["a"].process(old)


def test_removed_member() -> None:
    net = Network(1, seed=13)
    net.create("alice")
    net.commit("alice", add_names=["bob", "carol"])
    bob = net.groups["bob"]
    late = net.groups["carol"].encrypt(b"before", net.random)
    result = net.groups["alice"].commit(net.random, remove=[bob.leaf_index])
    staged = bob.process(result.message)
    assert isinstance(staged, StagedCommit) and staged.self_removed
    assert staged.epoch_authenticator is None
    bob.merge(staged)
    assert bob.removed and not bob.active
    with pytest.raises(UsageError):
        bob.encrypt(b"x", net.random)
    event = bob.process(late)  # a late message of its last epoch still decrypts
    assert isinstance(event, ApplicationMessage)
    assert Group.from_bytes(bob.to_bytes()).removed


# -- credentials -------------------------------------------------------------------------------


def _self_signed(name: str, private: ed25519.Ed25519PrivateKey) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = datetime.datetime(2023, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(private, None)
    )
    return cert.public_bytes(Encoding.DER)


def x509_validator(credential: Credential, signature_key: bytes) -> bool:
    """Accept an X.509 credential whose end-entity key is the leaf's signature key."""
    if credential.credential_type != CredentialType.X509 or not credential.certificates:
        return False
    cert = x509.load_der_x509_certificate(credential.certificates[0].cert_data)
    key = cert.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return key == signature_key


def test_x509_credentials() -> None:
    suite = get_cipher_suite(1)
    seed = [0]

    def rnd(n: int) -> bytes:
        seed[0] += 1
        return bytes((seed[0] + i) % 256 for i in range(n))

    bundles = []
    for name in ("alice", "bob"):
        private = ed25519.Ed25519PrivateKey.from_private_bytes(rnd(32))
        raw = private.private_bytes_raw()
        credential = Credential.x509([_self_signed(name, private)])
        bundles.append(generate_key_package(suite, credential, raw, rnd, now=NOW))
    alice = Group.create(bundles[0], rnd, identity=x509_validator)
    result = alice.commit(rnd, add=[bundles[1].key_package])
    alice.merge(result.staged)
    assert result.welcome is not None
    with pytest.raises(ValidationError):  # the default validator takes basic only
        Group.join_from_welcome(result.welcome, bundles[1])
    bob = Group.join_from_welcome(result.welcome, bundles[1], identity=x509_validator)
    assert bob.epoch_authenticator == alice.epoch_authenticator
    event = bob.process(alice.encrypt(b"signed by a certificate", rnd))
    assert isinstance(event, ApplicationMessage)
    assert event.sender.credential.credential_type == CredentialType.X509
    # A certificate for another key is refused when adding.
    other = ed25519.Ed25519PrivateKey.from_private_bytes(rnd(32))
    wrong = Credential.x509([_self_signed("mallory", other)])
    bad = generate_key_package(suite, wrong, rnd(32), rnd, now=NOW)
    with pytest.raises(ValidationError):
        bob.commit(rnd, add=[bad.key_package])


def test_add_and_remove_in_one_commit_reuses_the_client() -> None:
    """RFC 9420 §12.2: an Add of a client in the group is fine with its Remove."""
    net = Network(1, seed=14)
    net.create("alice")
    net.commit("alice", add_names=["bob"])
    bob = net.clients["bob"]
    again = generate_key_package(
        net.suite, bob.credential, bob.signature_private_key, net.random, now=NOW
    )
    with pytest.raises(ValidationError):  # Bob's signature key is in the tree
        net.groups["alice"].commit(net.random, add=[again.key_package])
    result = net.groups["alice"].commit(
        net.random, add=[again.key_package], remove=[net.groups["bob"].leaf_index]
    )
    assert [m.leaf_index for m in result.staged.added] == [1]
    assert isinstance(Add(again.key_package), Add)
    net.groups["alice"].merge(result.staged)
    assert result.welcome is not None
    fresh = Group.join_from_welcome(result.welcome, again)
    assert fresh.epoch_authenticator == net.groups["alice"].epoch_authenticator


def test_reinit_commit_must_be_alone() -> None:
    net = Network(1, seed=15)
    net.create("alice")
    net.commit("alice", add_names=["bob"])
    reinit = ReInit(b"g2", 1, 1, ())
    with pytest.raises(UsageError):
        net.groups["alice"].commit(net.random, reinit=reinit, remove=[1])


@pytest.mark.parametrize("suite", [1, *PQ_CIPHER_SUITES[:1]])
def test_a_commit_gives_the_committers_leaf_new_capabilities(suite: int) -> None:
    """RFC 9420 §12.4.2, §7.3: the path's leaf may list new capabilities, and so
    carry an extension its old leaf could not; every member sees both."""
    net = Network(suite, seed=740 + suite)
    net.create("alice")
    net.commit("alice", add_names=["bob"])
    alice = net.groups["alice"].leaf_index

    def leaf(group: Group) -> LeafNode:
        node = group.ratchet_tree.nodes[2 * alice]  # RFC 9420 Appendix C
        assert node is not None
        return node.leaf

    assert 0xF0CC not in leaf(net.groups["bob"]).capabilities.extensions
    caps = default_capabilities(get_cipher_suite(suite), (0xF0CC,))
    net.commit("alice", leaf_extensions=[Extension(0xF0CC, b"t")], capabilities=caps)
    for group in net.groups.values():
        assert 0xF0CC in leaf(group).capabilities.extensions
        member = group.member(alice)
        assert member is not None
        assert [(e.extension_type, e.extension_data) for e in member.extensions] == [(0xF0CC, b"t")]
    net.check()


@pytest.mark.parametrize("suite", [1, 3, *PQ_CIPHER_SUITES[:1]])
def test_a_commit_gives_the_committers_leaf_new_extensions(suite: int) -> None:
    """RFC 9420 §12.4.2: the path's leaf may carry other extensions than the old leaf."""
    net = Network(suite, seed=700 + suite)
    caps = default_capabilities(get_cipher_suite(suite), (0xF0AA,))
    kp = net.key_package("alice", capabilities=caps, leaf_extensions=[Extension(0xF0AA, b"old")])
    net.groups["alice"] = Group.create(net.bundle("alice", kp), net.random, config=net.config)
    added = net.groups["alice"].commit(net.random, add=[net.key_package("bob")], now=NOW)
    net.accept("alice", added, ["bob"])
    net.check()
    alice = net.groups["alice"].leaf_index
    net.commit("alice", leaf_extensions=[Extension(0xF0AA, b"new")])
    for group in net.groups.values():
        member = group.member(alice)
        assert member is not None
        assert [(e.extension_type, e.extension_data) for e in member.extensions] == [
            (0xF0AA, b"new")
        ]
    net.check()
    # An extension the leaf's capabilities do not list is refused (RFC 9420 §7.3).
    with pytest.raises((UsageError, ValidationError)):
        result = net.groups["alice"].commit(
            net.random, leaf_extensions=[Extension(0xF0BB, b"x")], now=NOW
        )
        net.groups["bob"].process(result.message, now=NOW)
