"""Bad peer input on the join paths raises only ``InvalidMessageError`` subclasses.

Joining from a Welcome (RFC 9420 §12.4.3.1), joining by an external Commit
from a GroupInfo (RFC 9420 §12.4.3.2) and validating a KeyPackage for an Add
(RFC 9420 §10.1) all take bytes made by someone else: a GroupInfo, a
Welcome, a KeyPackage, a ratchet tree. Whatever is wrong with them is the
peer's fault, so it must raise an ``InvalidMessageError`` subclass -- never
``UsageError`` (the caller's fault), nor an exception of the standard library
or of ``cryptography`` (architecture guide, convention 5).

The explicit tests below each pin one case that once escaped as something
else; the property test at the end mutates valid GroupInfo, Welcome,
ratchet tree and KeyPackage bytes and feeds them to the join APIs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.mls.ciphersuite import CIPHER_SUITES, CipherSuite, SignatureScheme
from messenger.mls.codec import Reader, decode_all, vl_bytes
from messenger.mls.commit import Commit
from messenger.mls.content import FramedContent, Sender, WireFormat
from messenger.mls.errors import InvalidMessageError, UsageError, ValidationError
from messenger.mls.extensions import Extension, ExtensionType, ExternalPub, find_extension
from messenger.mls.group import Group
from messenger.mls.group_context import GroupContext
from messenger.mls.hpke import KemId
from messenger.mls.joining import encrypt_group_info, open_group_info, open_group_secrets
from messenger.mls.key_package import KeyPackage
from messenger.mls.key_package_bundle import KeyPackageBundle
from messenger.mls.key_schedule import epoch_from_joiner_secret
from messenger.mls.leaf_node import LeafNode, LeafNodeSource
from messenger.mls.messages import MLSMessage
from messenger.mls.nodes import decode_node_values, encode_node_values
from messenger.mls.proposals import Add, ProposalOrRef
from messenger.mls.psk import psk_secret
from messenger.mls.ratchet_tree import PublicTree
from messenger.mls.transcript import confirmation_tag
from messenger.mls.welcome import GroupInfo, GroupInfoTBS, GroupSecrets
from tests.mls.harness import NOW, Network

LAST_EPOCH = (1 << 64) - 1
ALL_SUITES = sorted(CIPHER_SUITES)
ECDSA_CURVES: dict[int, ec.EllipticCurve] = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: ec.SECP256R1(),
    SignatureScheme.ECDSA_SECP384R1_SHA384: ec.SECP384R1(),
    SignatureScheme.ECDSA_SECP521R1_SHA512: ec.SECP521R1(),
}
ECDSA_SUITES = [s for s in ALL_SUITES if CIPHER_SUITES[s].signature_scheme in ECDSA_CURVES]
MONTGOMERY_KEMS = (KemId.DHKEM_X25519_SHA256, KemId.DHKEM_X448_SHA512)
PQ_KEMS = (KemId.ML_KEM_768, KemId.MLKEM768_X25519)
MONTGOMERY_SUITES = [s for s in ALL_SUITES if CIPHER_SUITES[s].kem_id in MONTGOMERY_KEMS]
POINT_FORMAT = "ECDSA signature keys must be uncompressed SEC1 points"


# -- building bad input -------------------------------------------------------------------


def pair(suite_id: int, seed: int = 0) -> Network:
    """Alice and Bob; Bob was added by a Commit without a path.

    The tree has no parent nodes, so a leaf can be changed by signing it
    again and recomputing the tree hash: no parent hash covers it.
    """
    net = Network(suite_id, seed=seed)
    net.create("alice")
    net.commit("alice", add_names=["bob"])
    return net


def signature_key(net: Network, name: str) -> bytes:
    return net.clients[name].signature_private_key


def resigned(
    suite: CipherSuite,
    info: GroupInfo,
    signer_key: bytes,
    *,
    leaves: Mapping[int, LeafNode] | None = None,
    context: Callable[[GroupContext], GroupContext] | None = None,
    extensions: Callable[[list[Extension]], list[Extension]] | None = None,
    joiner_secret: bytes | None = None,
) -> GroupInfo:
    """``info`` changed as asked, then signed again with ``signer_key``.

    ``leaves`` replace leaves of the inline ratchet tree; the GroupContext's
    ``tree_hash`` follows. With ``joiner_secret`` (a GroupInfo for a
    Welcome) the confirmation tag is recomputed for the new GroupContext,
    so that nothing but the change itself is wrong (RFC 9420 §12.4.3.1).
    """
    exts = list(info.extensions)
    group_context = info.group_context
    if leaves:
        for i, ext in enumerate(exts):
            if ext.extension_type == ExtensionType.RATCHET_TREE:
                values = decode_all(ext.extension_data, decode_node_values)
                for leaf_index, leaf in leaves.items():
                    values[2 * leaf_index] = leaf
                exts[i] = Extension(ExtensionType.RATCHET_TREE, encode_node_values(values))
                tree_hash = PublicTree.from_nodes(suite, values).tree_hash()
                group_context = replace(group_context, tree_hash=tree_hash)
    if context is not None:
        group_context = context(group_context)
    if extensions is not None:
        exts = extensions(exts)
    tag = info.confirmation_tag
    if joiner_secret is not None:
        keys = epoch_from_joiner_secret(suite, joiner_secret, group_context.to_bytes())
        tag = confirmation_tag(
            suite, keys.secrets.confirmation_key, group_context.confirmed_transcript_hash
        )
    return GroupInfoTBS(group_context, tuple(exts), tag, info.signer).sign(suite, signer_key)


def alice_group_info(net: Network) -> GroupInfo:
    return MLSMessage.from_bytes(net.groups["alice"].group_info()).group_info


def with_leaf(
    suite: CipherSuite, leaf: LeafNode, key: bytes, *, group: Group | None = None, **fields: bytes
) -> LeafNode:
    """``leaf`` with other field values, signed with ``key`` (RFC 9420 §7.2)."""
    if leaf.leaf_node_source == LeafNodeSource.KEY_PACKAGE or group is None:
        tbs = leaf.to_tbs()
    else:
        tbs = leaf.to_tbs(group.group_id, group.leaf_index)
    return replace(tbs, **fields).sign(suite, key)


def compressed(suite: CipherSuite, public: bytes) -> bytes:
    """An uncompressed SEC1 point (RFC 9420 §5.1.1) in the compressed form."""
    curve = ECDSA_CURVES[suite.signature_scheme]
    point = ec.EllipticCurvePublicKey.from_encoded_point(curve, public)
    return point.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def small_order_points(suite: CipherSuite) -> dict[str, bytes]:
    """X25519/X448 keys of small order: every shared secret with them is all
    zero, which RFC 9180 §7.1.4 rejects (RFC 7748 §6)."""
    n = suite.hpke.Npk
    p = (1 << 255) - 19 if n == 32 else (1 << 448) - (1 << 224) - 1
    return {
        "zero": bytes(n),
        "one": (1).to_bytes(n, "little"),
        "p - 1": (p - 1).to_bytes(n, "little"),
        "p (non-canonical zero)": p.to_bytes(n, "little"),
    }


def join_external(net: Network, info: GroupInfo | bytes, **kwargs: Any) -> Group:
    data = info if isinstance(info, bytes) else MLSMessage(info).to_bytes()
    eve = net.client("eve")
    group, _ = Group.join_external(
        data,
        credential=eve.credential,
        signature_private_key=eve.signature_private_key,
        random=random.Random(7).randbytes,
        now=NOW,
        **kwargs,
    )
    return group


@dataclass
class Invitation:
    """A Welcome for Dave, from Alice, and what it takes to forge variants of it."""

    net: Network
    welcome: bytes
    bundle: KeyPackageBundle
    secrets: GroupSecrets
    group_info: GroupInfo

    @property
    def suite(self) -> CipherSuite:
        return self.bundle.suite

    def sealed(self, group_info: bytes | None = None, group_secrets: bytes | None = None) -> bytes:
        """The Welcome with another (encoded) GroupInfo or GroupSecrets,
        encrypted as a committer does (RFC 9420 §12.4.3.1)."""
        suite = self.suite
        welcome = MLSMessage.from_bytes(self.welcome).welcome
        encrypted_info = welcome.encrypted_group_info
        if group_info is not None:
            joiner_secret = self.secrets.joiner_secret
            encrypted_info = encrypt_group_info(suite, joiner_secret, None, group_info)
        plaintext = self.secrets.to_bytes() if group_secrets is None else group_secrets
        ciphertext = suite.encrypt_with_label(
            self.bundle.key_package.init_key,
            b"Welcome",
            encrypted_info,
            plaintext,
            random.Random(3).randbytes,
        )
        entry = replace(welcome.secrets[0], encrypted_group_secrets=ciphertext)
        new = replace(welcome, secrets=(entry,), encrypted_group_info=encrypted_info)
        return MLSMessage(new).to_bytes()

    def join(self, welcome: bytes | None = None, **kwargs: Any) -> Group:
        return Group.join_from_welcome(
            self.welcome if welcome is None else welcome,
            self.bundle,
            now=NOW,
            **kwargs,
        )


def invite(net: Network, *, psks: Mapping[bytes, bytes] | None = None, **kwargs: Any) -> Invitation:
    """Alice adds Dave (with the external ``psks``); the Commit is not merged."""
    kp = net.key_package("dave")
    alice = net.groups["alice"]
    result = alice.commit(
        net.random, add=[kp], psks=list(psks or ()), include_pending=False, now=NOW, **kwargs
    )
    assert result.welcome is not None
    bundle = net.bundle("dave", kp)
    suite = bundle.suite
    welcome = MLSMessage.from_bytes(result.welcome).welcome
    secrets = open_group_secrets(suite, welcome, bundle.key_package, bundle.init_private_key)
    values = [(p, (psks or {})[p.psk_id]) for p in secrets.psks]
    secret = psk_secret(suite, values) if values else None
    info = open_group_info(suite, welcome, secrets.joiner_secret, secret)
    return Invitation(net, result.welcome, bundle, secrets, info)


def key_package_of(net: Network, name: str) -> KeyPackage:
    return MLSMessage.from_bytes(net.key_package(name)).key_package


def forged_key_package(
    net: Network, name: str, *, init_key: bytes | None = None, **leaf_fields: bytes
) -> bytes:
    """A KeyPackage of ``name`` with other field values, properly signed."""
    suite = net.suite
    kp = key_package_of(net, name)
    key = signature_key(net, name)
    leaf = with_leaf(suite, kp.leaf_node, key, **leaf_fields) if leaf_fields else kp.leaf_node
    tbs = replace(kp.to_tbs(), leaf_node=leaf)
    if init_key is not None:
        tbs = replace(tbs, init_key=init_key)
    return MLSMessage(tbs.sign(suite, key)).to_bytes()


# -- the known cases -------------------------------------------------------------------------


@pytest.mark.parametrize("suite_id", [0x0000, 0x0A0A, 0xF0F0, 0xFFFF])  # reserved, GREASE, private
def test_external_join_with_unknown_cipher_suite(suite_id: int) -> None:
    """Once UsageError: the suite was looked up as if the caller had named it."""
    net = pair(1)
    info = resigned(
        net.suite,
        alice_group_info(net),
        signature_key(net, "alice"),
        context=lambda c: replace(c, cipher_suite=suite_id),
    )
    with pytest.raises(ValidationError, match="cipher suite"):
        join_external(net, info)


@pytest.mark.parametrize("version", [0, 2, 0xFFFF])
def test_external_join_with_unknown_version(version: int) -> None:
    """Once joined: an external Commit was made for a group of a protocol
    version this implementation does not speak (RFC 9420 §6)."""
    net = pair(1)
    info = resigned(
        net.suite,
        alice_group_info(net),
        signature_key(net, "alice"),
        context=lambda c: replace(c, version=version),
    )
    with pytest.raises(ValidationError, match="mls10"):
        join_external(net, info)


def test_welcome_without_ratchet_tree() -> None:
    """Once UsageError: neither the GroupInfo nor the caller has the tree."""
    net = pair(1)
    invitation = invite(net, inline_tree=False)
    with pytest.raises(ValidationError, match="ratchet_tree"):
        invitation.join()
    tree = net.groups["alice"].ratchet_tree.to_bytes()  # the tree before the Commit
    with pytest.raises(ValidationError):  # a stale tree: the tree hash differs
        invitation.join(ratchet_tree=tree)


def test_external_join_without_ratchet_tree() -> None:
    net = pair(1)
    info = net.groups["alice"].group_info(inline_tree=False)
    with pytest.raises(ValidationError, match="ratchet_tree"):
        join_external(net, info)
    tree = net.groups["alice"].ratchet_tree.to_bytes()
    assert join_external(net, info, ratchet_tree=tree).epoch == 2  # given out of band


def invalid_external_pubs(suite: CipherSuite, good: bytes) -> dict[str, bytes]:
    """Keys that are not HPKE public keys of the suite's KEM (RFC 9180 §7.1.1, §7.1.4)."""
    bad = {
        "31 bytes": good[:31],
        "empty": b"",
        "one byte short": good[:-1],
        "one byte long": good + b"\x00",
    }
    if suite.kem_id in MONTGOMERY_KEMS:
        # Every string of Npk bytes is a u-coordinate (RFC 7748 §5); the ones
        # that are not usable keys are the points of small order.
        bad.update(small_order_points(suite))
    elif suite.kem_id in PQ_KEMS:
        # An ML-KEM key failing the FIPS 203 modulus check; a small-order X25519 part.
        bad["ML-KEM coefficients out of range"] = b"\xff" * 1184 + good[1184:]
        if suite.kem_id == KemId.MLKEM768_X25519:
            bad["small-order X25519 part"] = good[:1184] + bytes(32)
    else:
        size = (len(good) - 1) // 2
        x, y = good[1 : 1 + size], good[1 + size :]
        bad["off the curve"] = b"\x04" + x + (int.from_bytes(y, "big") ^ 1).to_bytes(size, "big")
        bad["compressed"] = bytes((2 + (y[-1] & 1),)) + x
        bad["point at infinity"] = b"\x00"
        bad["all zero"] = bytes(len(good))
    return bad


@pytest.mark.parametrize("suite_id", ALL_SUITES)
def test_external_join_with_invalid_external_pub(suite_id: int) -> None:
    """Once UsageError, from HPKE: the joiner encrypts to ``external_pub``
    (RFC 9420 §12.4.3.2), and the key was taken for the caller's."""
    net = pair(suite_id)
    info = alice_group_info(net)
    pub = ExternalPub.find_in(info.extensions)
    assert pub is not None
    alice_key = signature_key(net, "alice")
    for what, key in invalid_external_pubs(net.suite, pub.external_pub).items():

        def swap(exts: list[Extension], key: bytes = key) -> list[Extension]:
            return [
                ExternalPub(key).to_extension()
                if e.extension_type == ExtensionType.EXTERNAL_PUB
                else e
                for e in exts
            ]

        bad = resigned(net.suite, info, alice_key, extensions=swap)
        with pytest.raises(ValidationError, match="external_pub"):
            join_external(net, bad)
            pytest.fail(f"an external_pub that is {what} was accepted")
    assert join_external(net, info).epoch == 2  # the real one works


@pytest.mark.parametrize("suite_id", ECDSA_SUITES)
def test_compressed_ecdsa_key_in_key_package(suite_id: int) -> None:
    """Once AuthenticationError "leaf node signature does not verify": the
    key is refused for its form, RFC 9420 §5.1.1, and the error says so."""
    net = pair(suite_id)
    alice = net.groups["alice"]
    kp = key_package_of(net, "dave")
    data = forged_key_package(
        net, "dave", signature_key=compressed(net.suite, kp.leaf_node.signature_key)
    )
    with pytest.raises(ValidationError, match=POINT_FORMAT):
        alice.propose_add(data, net.random, now=NOW)
    with pytest.raises(ValidationError, match=POINT_FORMAT):
        alice.commit(net.random, add=[data], now=NOW)
    assert alice.pending_proposals() == []


@pytest.mark.parametrize("suite_id", ECDSA_SUITES)
@pytest.mark.parametrize("whose", ["alice", "bob"])
def test_compressed_ecdsa_key_in_external_join_tree(suite_id: int, whose: str) -> None:
    """Alice signs the GroupInfo: her key was "the GroupInfo signature does
    not verify", Bob's "the signature of leaf 1 does not verify"."""
    net = pair(suite_id)
    group = net.groups[whose]
    leaf = group.ratchet_tree.values[2 * group.leaf_index]
    assert isinstance(leaf, LeafNode)
    key = compressed(net.suite, leaf.signature_key)
    changed = with_leaf(net.suite, leaf, signature_key(net, whose), group=group, signature_key=key)
    info = resigned(
        net.suite,
        alice_group_info(net),
        signature_key(net, "alice"),
        leaves={group.leaf_index: changed},
    )
    with pytest.raises(ValidationError, match=POINT_FORMAT):
        join_external(net, info)


@pytest.mark.parametrize("suite_id", ECDSA_SUITES)
def test_compressed_ecdsa_key_in_welcome_tree(suite_id: int) -> None:
    net = pair(suite_id)
    invitation = invite(net)
    bob = net.groups["bob"]
    leaf = invitation_tree_leaf(invitation, bob.leaf_index)
    key = compressed(net.suite, leaf.signature_key)
    changed = with_leaf(net.suite, leaf, signature_key(net, "bob"), group=bob, signature_key=key)
    info = resigned(
        net.suite,
        invitation.group_info,
        signature_key(net, "alice"),
        leaves={bob.leaf_index: changed},
        joiner_secret=invitation.secrets.joiner_secret,
    )
    with pytest.raises(ValidationError, match=POINT_FORMAT):
        invitation.join(invitation.sealed(group_info=info.to_bytes()))
    assert invitation.join().epoch == 2  # the Welcome as sent works


def invitation_tree_leaf(invitation: Invitation, leaf_index: int) -> LeafNode:
    ext = next(
        e
        for e in invitation.group_info.extensions
        if e.extension_type == ExtensionType.RATCHET_TREE
    )
    leaf = decode_all(ext.extension_data, decode_node_values)[2 * leaf_index]
    assert isinstance(leaf, LeafNode)
    return leaf


# -- other cases found on the same paths ------------------------------------------------------


def test_external_join_at_the_last_epoch() -> None:
    """Once OverflowError: the epoch is a uint64 (RFC 9420 §8.1), and the
    external Commit is for the epoch after the GroupInfo's."""
    net = pair(1)
    info = resigned(
        net.suite,
        alice_group_info(net),
        signature_key(net, "alice"),
        context=lambda c: replace(c, epoch=LAST_EPOCH),
    )
    with pytest.raises(ValidationError, match="last epoch"):
        join_external(net, info)


def test_commit_at_the_last_epoch() -> None:
    """Once OverflowError for the receiver of a Commit at the last epoch, and
    for the member trying to make one."""
    net = pair(1)
    alice, bob = net.groups["alice"], net.groups["bob"]
    for group in (alice, bob):  # a group that got there (as from a Welcome saying so)
        state = group._s.epoch
        state.context = replace(state.context, epoch=LAST_EPOCH)
        group._rebuild_framing()
    kp = key_package_of(net, "dave")
    framed = FramedContent(
        alice.group_id,
        LAST_EPOCH,
        Sender.member(alice.leaf_index),
        b"",
        Commit((ProposalOrRef.by_value(Add(kp)),)),
    )
    wire_format = WireFormat.PUBLIC_MESSAGE
    auth = alice._framing.sign(
        alice._s.epoch.signature_private_key, wire_format, framed, bytes(net.suite.hash_len)
    )
    message = MLSMessage(alice._framing.protect_public(auth)).to_bytes()
    before = bob.to_bytes()
    with pytest.raises(ValidationError, match="last epoch"):
        bob.process(message, now=NOW)
    assert bob.to_bytes() == before
    with pytest.raises(UsageError, match="last epoch"):
        alice.commit(net.random, add=[MLSMessage(kp).to_bytes()], now=NOW)


@pytest.mark.parametrize("suite_id", MONTGOMERY_SUITES)
def test_small_order_encryption_key_in_tree(suite_id: int) -> None:
    """Once UsageError for an external joiner (encrypting its path secrets to
    the key, RFC 9420 §7.5), and a successful join from a Welcome that left
    the joiner unable to commit. A leaf's encryption key must be a valid HPKE
    public key (RFC 9420 §7.3), and these give an all-zero shared secret."""
    net = pair(suite_id)
    bob = net.groups["bob"]
    invitation = invite(net)
    leaf = invitation_tree_leaf(invitation, bob.leaf_index)
    for what, point in small_order_points(net.suite).items():
        changed = with_leaf(
            net.suite, leaf, signature_key(net, "bob"), group=bob, encryption_key=point
        )
        info = resigned(
            net.suite,
            alice_group_info(net),
            signature_key(net, "alice"),
            leaves={bob.leaf_index: changed},
        )
        with pytest.raises(ValidationError, match="HPKE public key"):
            join_external(net, info)
            pytest.fail(f"a tree with a {what} encryption key was accepted")
        info = resigned(
            net.suite,
            invitation.group_info,
            signature_key(net, "alice"),
            leaves={bob.leaf_index: changed},
            joiner_secret=invitation.secrets.joiner_secret,
        )
        with pytest.raises(ValidationError, match="HPKE public key"):
            invitation.join(invitation.sealed(group_info=info.to_bytes()))
            pytest.fail(f"a Welcome tree with a {what} encryption key was accepted")


@pytest.mark.parametrize("suite_id", MONTGOMERY_SUITES)
def test_key_package_with_small_order_keys(suite_id: int) -> None:
    """Once accepted by KeyPackage validation (RFC 9420 §10.1), after which
    the Commit adding it raised UsageError (sealing the Welcome to it)."""
    net = pair(suite_id)
    alice = net.groups["alice"]
    for what, point in small_order_points(net.suite).items():
        for which in ("init_key", "encryption_key"):
            if which == "init_key":
                data = forged_key_package(net, "dave", init_key=point)
            else:
                data = forged_key_package(net, "dave", encryption_key=point)
            with pytest.raises(ValidationError, match="HPKE public key"):
                alice.propose_add(data, net.random, now=NOW)
                pytest.fail(f"a KeyPackage with a {what} {which} was accepted")
            with pytest.raises(ValidationError, match="HPKE public key"):
                alice.commit(net.random, add=[data], now=NOW)
            assert alice.pending_proposals() == []


def test_welcome_with_too_many_psks() -> None:
    """Once UsageError: PSKLabel counts the PSKs in a uint16 (RFC 9420 §8.4)."""
    psks = {b"k": b"v"}
    net = Network(1, seed=3, psks=psks)
    net.create("alice")
    invitation = invite(net, psks=psks)
    many = replace(invitation.secrets, psks=invitation.secrets.psks * 0x10000)
    welcome = invitation.sealed(group_secrets=many.to_bytes())
    with pytest.raises(ValidationError, match="PSKs"):
        invitation.join(welcome, external_psks=psks)
    assert invitation.join(external_psks=psks).epoch == 1


# -- mutated input: only the peer's-fault errors escape -------------------------------------

#: A region of an encoding, ``[start, end)``, that mutations aim at.
Span = tuple[int, int]


def mutate(data: st.DataObject, original: bytes, spans: Sequence[Span]) -> bytes:
    """``original`` with 1-3 bit flips, splices of random bytes, insertions or
    truncations. Each lands in one of ``spans`` (the whole encoding is one of
    them): there a change hits a field rather than a length or a signature,
    which would stop the joiner at its first check. Flips and splices, which
    keep the length, come more often, and a splice stays within its field."""
    out = bytearray(original)
    ops = ["flip", "splice", "flip", "splice", "flip", "splice", "insert", "truncate"]
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        op = data.draw(st.sampled_from(ops), label="op")
        start, end = data.draw(st.sampled_from(spans), label="span")
        start, end = min(start, len(out)), min(end, len(out))
        pos = data.draw(st.integers(start, max(start, end - 1)), label="at")
        if op == "truncate":
            del out[pos:]
        elif op == "insert":
            out[pos:pos] = data.draw(st.binary(min_size=1, max_size=8), label="inserted")
        elif pos < len(out) and op == "flip":
            out[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        elif pos < len(out):
            size = min(16, max(1, end - pos))
            spliced = data.draw(st.binary(min_size=1, max_size=size), label="spliced")
            out[pos : pos + len(spliced)] = spliced
    return bytes(out)


def spans_of(encoding: bytes, *fields: bytes) -> list[Span]:
    """The whole of ``encoding`` and where each of ``fields`` (unique values) lies in it."""
    spans = [(0, len(encoding))]
    for value in fields:
        at = encoding.find(value)
        assert at >= 0 and encoding.find(value, at + 1) < 0, "a field must occur once"
        spans.append((at, at + len(value)))
    return spans


def group_info_spans(info: GroupInfo) -> list[Span]:
    """Fields of an encoded GroupInfo: the GroupContext's cipher suite and
    epoch (RFC 9420 §8.1), each extension's type and data, the keys in the
    ratchet tree and ``external_pub``, the confirmation tag and the signer."""
    body = info.to_bytes()
    head = len(vl_bytes(info.group_context.group_id))
    spans = [*spans_of(body), (2, 4), (4 + head, 12 + head)]
    keys: list[bytes] = []
    for ext in info.extensions:
        encoding = ext.to_bytes()
        at = body.find(encoding)
        spans += [(at, at + 2), (at + len(encoding) - len(ext.extension_data), at + len(encoding))]
        if ext.extension_type == ExtensionType.RATCHET_TREE:
            for node in decode_all(ext.extension_data, decode_node_values):
                if isinstance(node, LeafNode):
                    keys += [node.encryption_key, node.signature_key]
                elif node is not None:
                    keys.append(node.encryption_key)
    pub = ExternalPub.find_in(info.extensions)
    if pub is not None:
        keys.append(pub.external_pub)
    tail = len(body) - len(vl_bytes(info.signature))
    spans += spans_of(body, *keys, info.confirmation_tag)[1:]
    spans.append((tail - 4, tail))
    return spans


def shifted(spans: Sequence[Span], by: int) -> list[Span]:
    return [(a + by, b + by) for a, b in spans]


def peer_errors_only(action: Callable[[], object]) -> None:
    """Run ``action``; an InvalidMessageError is fine, anything else fails the test."""
    try:
        action()
    except InvalidMessageError:
        pass  # the peer's fault: what must be raised; success is fine too
    except Exception as exc:  # anything else is a bug (convention 5)
        pytest.fail(f"{type(exc).__name__} escaped: {exc}")


def decoded_group_info(data: bytes) -> GroupInfo | None:
    r = Reader(data)
    try:
        info = GroupInfo.decode(r)
        r.finish()
    except InvalidMessageError:
        return None
    return info


@dataclass
class Fixture:
    """A group of three whose tree has parent nodes, valid join material made
    in it, and the spans of that material's fields."""

    net: Network
    invitation: Invitation
    group_info: bytes
    key_package: bytes
    group_info_spans: list[Span] = field(init=False)
    welcome_spans: list[Span] = field(init=False)
    welcome_info_spans: list[Span] = field(init=False)
    secrets_spans: list[Span] = field(init=False)
    tree: bytes = field(init=False)
    tree_spans: list[Span] = field(init=False)
    welcome_without_tree: bytes = field(init=False)
    key_package_spans: list[Span] = field(init=False)

    def __post_init__(self) -> None:
        external = MLSMessage.from_bytes(self.group_info).group_info
        self.group_info_spans = shifted(group_info_spans(external), 4)  # after the MLSMessage head
        self.welcome_info_spans = group_info_spans(self.invitation.group_info)
        welcome = MLSMessage.from_bytes(self.invitation.welcome).welcome
        entry = welcome.secrets[0]
        self.welcome_spans = [
            *spans_of(self.invitation.welcome, entry.new_member),
            (4, 6),  # the cipher suite
            *spans_of(self.invitation.welcome, entry.encrypted_group_secrets.kem_output)[1:],
        ]
        secrets = self.invitation.secrets
        self.secrets_spans = spans_of(secrets.to_bytes(), secrets.joiner_secret)
        # The same Welcome with the tree sent out of band (RFC 9420 §12.4.3.3);
        # the confirmation tag does not cover the GroupInfo's extensions.
        info = self.invitation.group_info
        tree = find_extension(info.extensions, ExtensionType.RATCHET_TREE)
        assert tree is not None
        self.tree = tree.extension_data
        at = info.to_bytes().find(self.tree)
        self.tree_spans = [(0, len(self.tree))] + [
            (a - at, b - at)
            for a, b in self.welcome_info_spans
            if at <= a and b <= at + len(self.tree)
        ]
        alice_key = signature_key(self.net, "alice")
        without_tree = resigned(
            self.invitation.suite,
            info,
            alice_key,
            extensions=lambda exts: [e for e in exts if e is not tree],
        )
        self.welcome_without_tree = self.invitation.sealed(group_info=without_tree.to_bytes())
        kp = MLSMessage.from_bytes(self.key_package).key_package
        leaf = kp.leaf_node
        self.key_package_spans = [
            *spans_of(self.key_package, kp.init_key, leaf.encryption_key, leaf.signature_key),
            (4, 8),  # version and cipher suite
        ]


def _fixture(suite_id: int) -> Fixture:
    net = Network(suite_id, seed=40 + suite_id)
    net.create("alice")
    net.commit("alice", add_names=["bob", "carol"])
    net.commit("bob")  # a path: parent nodes, then an unmerged leaf below
    invitation = invite(net, force_path=True)
    fixture = Fixture(net, invitation, net.groups["alice"].group_info(), net.key_package("erin"))
    # Unmutated, all of it works: the mutations start from valid input.
    epoch = net.groups["alice"].epoch + 1
    assert join_external(net, fixture.group_info).epoch == epoch
    assert invitation.join().epoch == epoch
    assert invitation.join(invitation.sealed(invitation.group_info.to_bytes())).epoch == epoch
    oob = invitation.join(fixture.welcome_without_tree, ratchet_tree=fixture.tree)
    assert oob.epoch == epoch
    net.groups["alice"].propose_add(fixture.key_package, net.random, now=NOW)
    net.groups["alice"].clear_pending_proposals()
    return fixture


#: Ed25519 with X25519, ECDSA P-256 with DHKEM(P-256), Ed448 with X448.
FIXTURES = {suite_id: _fixture(suite_id) for suite_id in (1, 2, 4)}


TARGETS = [
    "external join: GroupInfo",
    "external join: GroupInfo, signed again",
    "Welcome",
    "Welcome: GroupInfo, signed again",
    "Welcome: GroupSecrets",
    "Welcome: ratchet tree out of band",
    "Add: KeyPackage",
    "Add: KeyPackage, signed again",
]


@settings(max_examples=150)
@given(
    data=st.data(),
    suite_id=st.sampled_from(sorted(FIXTURES)),
    target=st.sampled_from(TARGETS),
)
def test_mutated_join_input(data: st.DataObject, suite_id: int, target: str) -> None:
    """Mutated GroupInfo, Welcome and KeyPackage bytes on every join path.

    "Signed again": Alice signs the mutated GroupInfo again (an insider can),
    with the confirmation tag recomputed for a Welcome, and Erin her mutated
    KeyPackage and its leaf, so that the checks after the signatures are
    reached. A GroupSecrets is encrypted to Dave again. Whatever the joiner
    or the adding member does with the result -- join, refuse -- only an
    InvalidMessageError may escape.
    """
    fixture = FIXTURES[suite_id]
    net = fixture.net
    suite = net.suite
    invitation = fixture.invitation
    alice = net.groups["alice"]
    alice_key = signature_key(net, "alice")
    if target.startswith("external join"):
        mutated = mutate(data, fixture.group_info, fixture.group_info_spans)
        info = decoded_group_info(mutated[4:]) if target.endswith("again") else None
        if info is not None:
            mutated = MLSMessage(info.to_tbs().sign(suite, alice_key)).to_bytes()
        peer_errors_only(lambda: join_external(net, mutated))
    elif target.startswith("Welcome"):
        if target == "Welcome":
            welcome = mutate(data, invitation.welcome, fixture.welcome_spans)
        elif target == "Welcome: GroupSecrets":
            secrets = mutate(data, invitation.secrets.to_bytes(), fixture.secrets_spans)
            welcome = invitation.sealed(group_secrets=secrets)
        elif target == "Welcome: ratchet tree out of band":
            tree = mutate(data, fixture.tree, fixture.tree_spans)
            welcome = fixture.welcome_without_tree
            peer_errors_only(lambda: invitation.join(welcome, ratchet_tree=tree))
            return
        else:
            body = mutate(data, invitation.group_info.to_bytes(), fixture.welcome_info_spans)
            info = decoded_group_info(body)
            if info is not None:
                joiner_secret = invitation.secrets.joiner_secret
                body = resigned(suite, info, alice_key, joiner_secret=joiner_secret).to_bytes()
            welcome = invitation.sealed(group_info=body)
        peer_errors_only(lambda: invitation.join(welcome))
    else:
        mutated = mutate(data, fixture.key_package, fixture.key_package_spans)
        kp: KeyPackage | None = None
        if target.endswith("again"):
            with suppress(InvalidMessageError):
                kp = MLSMessage.from_bytes(mutated).key_package
        if kp is not None:
            key = signature_key(net, "erin")
            leaf = kp.leaf_node
            if leaf.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
                leaf = leaf.resign(suite, key)
            mutated = MLSMessage(replace(kp.to_tbs(), leaf_node=leaf).sign(suite, key)).to_bytes()
        try:
            peer_errors_only(lambda: alice.propose_add(mutated, net.random, now=NOW))
        finally:
            alice.clear_pending_proposals()
        peer_errors_only(
            lambda: alice.commit(net.random, add=[mutated], include_pending=False, now=NOW)
        )
