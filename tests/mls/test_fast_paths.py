"""The fast paths equal the plain ones they stand in for.

Decoding, hashing and message protection have shortcuts for the hot cases: a
decoded struct keeps its encoding (:class:`~messenger.mls.codec.CachedStruct`),
common leaf and parent nodes are parsed in place, a fresh tree is hashed
level by level, HMAC is built from hashlib, and application messages are
sealed and opened without the intermediate structs. Each test here compares
a shortcut with the general code on the same input, including the inputs
the shortcut leaves to the general code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import random
from typing import Any

import pytest

from messenger.mls import hkdf
from messenger.mls.ciphersuite import CIPHER_SUITES, HmacKey, RandomSource, get_cipher_suite
from messenger.mls.codec import CachedStruct, Reader, Struct, Writer, decode_all, encode_varint
from messenger.mls.content import ContentType, FramedContent, Sender, WireFormat
from messenger.mls.credentials import Credential
from messenger.mls.errors import AuthenticationError, DecodeError, UsageError
from messenger.mls.events import ApplicationMessage
from messenger.mls.extensions import Extension
from messenger.mls.framing import FramingContext
from messenger.mls.group import Group
from messenger.mls.group_context import GroupContext
from messenger.mls.group_state import GroupConfig
from messenger.mls.key_package import KeyPackage
from messenger.mls.leaf_node import (
    Capabilities,
    LeafNode,
    LeafNodeSource,
    LeafNodeTBS,
    Lifetime,
)
from messenger.mls.messages import MLSMessage
from messenger.mls.nodes import ParentNode, RatchetTree, decode_node_values, encode_node_values
from messenger.mls.ratchet_tree import PublicTree
from messenger.mls.welcome import GroupInfo
from tests.mls.harness import Network
from tests.mls.vectors import h, load

SUITE = get_cipher_suite(1)


def _uncached(value: CachedStruct) -> bytes:
    """The encoding computed field by field, not the one kept."""
    w = Writer()
    value._encode_fields(w)
    return w.getvalue()


def _slow_leaf(data: bytes) -> LeafNode:
    """A LeafNode decoded by the general path only."""
    r = Reader(data)
    start = r.position
    # The general path of LeafNode.decode, for a subclass (no shortcut).
    leaf = _PlainLeaf.decode(r)
    r.finish()
    assert r.taken(start) == data
    return LeafNode(*(getattr(leaf, f.name) for f in dataclasses.fields(LeafNode)))


@dataclasses.dataclass(frozen=True, slots=True)
class _PlainLeaf(LeafNode):
    """LeafNode.decode takes the general path for a subclass."""


def _leaf(
    rng: random.Random,
    source: LeafNodeSource,
    *,
    identity: bytes = b"alice",
    extensions: tuple[Extension, ...] = (),
    credential: Credential | None = None,
) -> LeafNode:
    private, public = SUITE.generate_signature_key_pair(rng.randbytes)
    tbs = LeafNodeTBS(
        encryption_key=rng.randbytes(32),
        signature_key=public,
        credential=credential or Credential.basic(identity),
        capabilities=Capabilities((1,), (1, 2), (0xF0F0,), (), (1, 2)),
        leaf_node_source=source,
        lifetime=Lifetime(1, 2**64 - 1) if source == LeafNodeSource.KEY_PACKAGE else None,
        parent_hash=rng.randbytes(32) if source == LeafNodeSource.COMMIT else None,
        extensions=extensions,
        group_id=None if source == LeafNodeSource.KEY_PACKAGE else b"group",
        leaf_index=None if source == LeafNodeSource.KEY_PACKAGE else 3,
    )
    return tbs.sign(SUITE, private)


def _leaves() -> list[LeafNode]:
    rng = random.Random(7)
    leaves = [_leaf(rng, source) for source in LeafNodeSource]
    leaves += [
        _leaf(rng, LeafNodeSource.COMMIT, identity=b"x" * 200),  # two-byte length
        _leaf(rng, LeafNodeSource.UPDATE, identity=b""),
        _leaf(rng, LeafNodeSource.KEY_PACKAGE, extensions=(Extension(0xF0F0, b"ext"),)),
        _leaf(rng, LeafNodeSource.COMMIT, credential=Credential.x509([b"cert", b"ca"])),
    ]
    for tc in load("tree-validation")[:20]:
        tree = RatchetTree.from_bytes(h(tc["tree"]))
        leaves += [n.value for n in tree.nodes if n is not None and isinstance(n.value, LeafNode)]
    return leaves


# -- CachedStruct ----------------------------------------------------------------------


def test_kept_encodings_are_the_encodings() -> None:
    """Every CachedStruct in the message vectors: kept bytes == fresh encoding."""
    checked: dict[type[Any], int] = {}

    def visit(value: object) -> None:
        if isinstance(value, tuple):
            for item in value:
                visit(item)
            return
        if not isinstance(value, Struct):
            return
        if isinstance(value, CachedStruct):
            assert value.to_bytes() == _uncached(value), type(value).__name__
            checked[type(value)] = checked.get(type(value), 0) + 1
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                visit(getattr(value, f.name))

    for tc in load("messages"):
        for name in ("mls_welcome", "mls_group_info", "mls_key_package"):
            visit(MLSMessage.from_bytes(h(tc[name])))
        visit(RatchetTree.from_bytes(h(tc["ratchet_tree"])))
    for tc in load("tree-validation"):
        visit(RatchetTree.from_bytes(h(tc["tree"])))
    assert {LeafNode, ParentNode, KeyPackage, GroupInfo, GroupContext} <= set(checked)


def test_replace_and_copies_do_not_inherit_the_encoding() -> None:
    leaf = _leaves()[0]
    leaf.to_bytes()
    changed = dataclasses.replace(leaf, signature=b"\x01" * 64)
    assert changed.to_bytes() == _uncached(changed) != leaf.to_bytes()
    parent = ParentNode.from_bytes(ParentNode(b"k" * 32, b"p" * 32).to_bytes())
    assert dataclasses.replace(parent, unmerged_leaves=(4,)).to_bytes() == _uncached(
        ParentNode(b"k" * 32, b"p" * 32, (4,))
    )


def test_equality_ignores_the_kept_encoding() -> None:
    leaf = _leaves()[1]
    fresh = LeafNode(*(getattr(leaf, f.name) for f in dataclasses.fields(LeafNode)))
    decoded = LeafNode.from_bytes(leaf.to_bytes())
    assert fresh == decoded == leaf and hash(fresh) == hash(decoded)


# -- leaf and parent nodes -------------------------------------------------------------


def test_leaf_shortcut_equals_general_decoding() -> None:
    for leaf in _leaves():
        data = leaf.to_bytes()
        fast = LeafNode.from_bytes(data)
        slow = _slow_leaf(data)
        for f in dataclasses.fields(LeafNode):  # every slot is set
            assert getattr(fast, f.name) == getattr(slow, f.name), f.name
        assert fast == slow
        assert type(fast.credential) is Credential and fast.credential == slow.credential
        assert fast.to_bytes() == data == _uncached(fast)


def test_leaf_tbs_bytes_equal_the_tbs_struct() -> None:
    for leaf in _leaves():
        if leaf.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
            assert leaf.tbs_bytes() == leaf.to_tbs().to_bytes()
            assert leaf.tbs_bytes(b"ignored", 9) == leaf.to_tbs().to_bytes()
        else:
            assert leaf.tbs_bytes(b"grp", 7) == leaf.to_tbs(b"grp", 7).to_bytes()
            with pytest.raises(UsageError):
                leaf.tbs_bytes()


def test_signed_leaf_keeps_the_encoding_of_its_fields() -> None:
    for leaf in _leaves()[:7]:
        assert leaf.to_bytes() == _uncached(leaf)


def test_truncated_and_altered_leaves_fail_alike() -> None:
    """Every prefix and every single-byte change: same value or same error."""
    rng = random.Random(3)
    for leaf in _leaves()[:7]:
        data = leaf.to_bytes()
        variants = [data[:i] for i in range(len(data))]
        for _ in range(150):
            i = rng.randrange(len(data))
            variants.append(data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :])
        for variant in variants:
            outcomes: list[object] = []
            for decode in (LeafNode.from_bytes, _slow_leaf):
                try:
                    outcomes.append(decode(variant))
                except DecodeError as exc:
                    outcomes.append(str(exc))
                except UsageError as exc:  # a field combination __init__ refuses
                    outcomes.append(f"usage: {exc}")
            assert outcomes[0] == outcomes[1], variant.hex()


def test_parent_node_shortcut() -> None:
    for node in (
        ParentNode(b"k" * 32, b"p" * 32),
        ParentNode(b"k" * 32),
        ParentNode(b"k" * 32, b"p" * 32, (1, 5)),
        ParentNode(b"k" * 70, b"p" * 32),
    ):
        data = node.to_bytes()
        decoded = ParentNode.from_bytes(data)
        assert decoded == node and decoded.to_bytes() == data
        for i in range(len(data)):
            with pytest.raises(DecodeError):
                ParentNode.from_bytes(data[:i])


def test_node_values_equal_ratchet_tree_decoding() -> None:
    for tc in load("tree-validation"):
        data = h(tc["tree"])
        assert decode_all(data, decode_node_values) == list(RatchetTree.from_bytes(data).values)
    for bad in (b"\x00", b"\x02\x01\x00", b"\x01\x03", b"\x01\x02", b"\x02\x01\x01"):
        with pytest.raises(DecodeError):
            decode_all(bad, decode_node_values)
        with pytest.raises(DecodeError):
            RatchetTree.from_bytes(bad)


def test_encoded_node_values_equal_the_ratchet_tree_encoding() -> None:
    for tc in load("tree-validation"):
        data = h(tc["tree"])
        values = list(RatchetTree.from_bytes(data).values)
        assert encode_node_values(values) == data
        assert encode_node_values([*values, None, None]) == data  # trailing blanks dropped
        tree = PublicTree.from_nodes(get_cipher_suite(tc["cipher_suite"]), values)
        assert tree.encode_ratchet_tree() == tree.to_ratchet_tree().to_bytes() == data
    with pytest.raises(UsageError):
        encode_node_values([None, None])


def test_capabilities_are_shared_and_correct() -> None:
    caps = Capabilities((1,), (1, 3), (0x0A0A,), (0x0B0B,), (1, 2))
    first = Capabilities.from_bytes(caps.to_bytes())
    second = Capabilities.from_bytes(caps.to_bytes())
    assert first == caps and first is second
    with pytest.raises(DecodeError):
        Capabilities.from_bytes(b"\x01\x00\x00\x00\x00\x00")  # odd uint16 vector


# -- tree hashes -----------------------------------------------------------------------


def test_level_by_level_hashes_equal_recursive_ones() -> None:
    for tc in load("tree-validation"):
        suite = get_cipher_suite(tc["cipher_suite"])
        values = RatchetTree.from_bytes(h(tc["tree"])).values
        bulk = PublicTree.from_nodes(suite, values)
        bulk._hash_all()
        recursive = PublicTree.from_nodes(suite, values)
        for x in range(recursive.width):
            assert bulk._hashes[x] == recursive.node_tree_hash(x) == h(tc["tree_hashes"][x])


def test_large_tree_hash_after_joining_and_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh tree is hashed level by level, an edited one along the path."""
    bulk_runs: list[PublicTree] = []
    hash_all = PublicTree._hash_all

    def counted(tree: PublicTree) -> None:
        bulk_runs.append(tree)
        hash_all(tree)

    monkeypatch.setattr(PublicTree, "_hash_all", counted)
    rng = random.Random(1)
    nodes: list[LeafNode | None] = []
    for _ in range(40):  # 40 leaves in a tree of 64
        nodes += [_leaf(rng, LeafNodeSource.UPDATE), None]
    tree = PublicTree.from_nodes(SUITE, nodes[:-1])
    recursive = PublicTree.from_nodes(SUITE, nodes[:-1])
    assert tree.tree_hash() == recursive._tree_hash(recursive.root)
    assert bulk_runs == [tree]
    tree.update_leaf(5, _leaf(rng, LeafNodeSource.UPDATE))
    fresh = PublicTree.from_nodes(SUITE, [tree.node(x) for x in range(tree.width)])
    again = PublicTree.from_nodes(SUITE, [tree.node(x) for x in range(tree.width)])
    assert tree.tree_hash() == fresh.tree_hash() == again._tree_hash(again.root)
    assert bulk_runs == [tree, fresh]
    copy = fresh.copy()  # hashes known: the copy rehashes only the changed path
    copy.remove_leaf(7)
    assert copy.tree_hash() == PublicTree.from_nodes(
        SUITE, [copy.node(x) for x in range(copy.width)]
    )._tree_hash(copy.root)
    assert len(bulk_runs) == 2


# -- HMAC and HKDF ---------------------------------------------------------------------


@pytest.mark.parametrize("suite_id", sorted(CIPHER_SUITES))
def test_hmac_and_hkdf_equal_the_standard_library(suite_id: int) -> None:
    suite = get_cipher_suite(suite_id)
    rng = random.Random(suite_id)
    for key_len in (0, 1, suite.hash_len, 64, 127, 128, 129, 300):
        key = rng.randbytes(key_len)
        for data_len in (0, 5, 64, 1000):
            data = rng.randbytes(data_len)
            want = hmac.digest(key, data, suite.hash_name)
            assert suite.mac(key, data) == want
            assert HmacKey(suite, key).mac(data) == want
    prk = rng.randbytes(suite.hash_len)
    info = b"info"
    for length in (0, 1, 12, suite.hash_len, suite.hash_len + 1, 3 * suite.hash_len + 5):
        okm, block, counter = b"", b"", 1
        while len(okm) < length:
            block = hmac.digest(prk, block + info + bytes((counter,)), suite.hash_name)
            okm += block
            counter += 1
        assert suite.expand(prk, info, length) == okm[:length]
    assert suite.extract(b"", b"ikm") == hmac.digest(b"", b"ikm", suite.hash_name)
    assert suite.hash(b"abc") == hashlib.new(suite.hash_name, b"abc").digest()


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_one_hkdf_path_for_mls_and_hpke(hash_name: str) -> None:
    """MLS (ciphersuite) and HPKE (RFC 9180 §4) both derive through messenger.mls.hkdf."""
    import messenger.mls.ciphersuite as ciphersuite_module
    import messenger.mls.hpke as hpke_module

    assert vars(hpke_module)["expand"] is hkdf.expand
    assert vars(hpke_module)["extract"] is hkdf.extract
    assert vars(ciphersuite_module)["expand"] is hkdf.expand
    hash_len = hashlib.new(hash_name).digest_size
    prk = bytes(range(hash_len))
    okm, block = b"", b""
    for counter in range(1, 256):
        block = hmac.digest(prk, block + b"info" + bytes((counter,)), hash_name)
        okm += block
    for length in (0, 1, hash_len, hash_len + 1, 255 * hash_len):
        assert hkdf.expand(hash_name, hash_len, prk, b"info", length) == okm[:length]
    with pytest.raises(UsageError):
        hkdf.expand(hash_name, hash_len, prk, b"info", 255 * hash_len + 1)
    assert hkdf.extract(hash_name, b"", b"ikm") == hmac.digest(b"", b"ikm", hash_name)


# -- application messages --------------------------------------------------------------


def _pair(suite_id: int, padding: int | None = None) -> tuple[Network, Group, Group]:
    config = GroupConfig() if padding is None else GroupConfig(padding_block=padding)
    net = Network(suite_id, config=config)
    alice = net.create("alice")
    key_package = net.key_package("bob")
    result = alice.commit(net.random, add=[key_package])
    alice.merge(result.staged)
    assert result.welcome is not None
    bob = Group.join_from_welcome(result.welcome, net.bundle("bob", key_package), config=config)
    return net, alice, bob


def _fixed(value: bytes) -> RandomSource:
    return lambda n: value


def _copy(group: Group) -> Group:
    return Group.from_bytes(group.to_bytes())


def _signature_key(tree: PublicTree, leaf_index: int) -> bytes:
    leaf = tree.leaf(leaf_index)
    assert leaf is not None
    return leaf.signature_key


# EdDSA suites: their signatures are deterministic, so the bytes must match.
@pytest.mark.parametrize(("suite_id", "padding"), [(1, None), (1, 0), (3, 1), (4, 100)])
def test_sealed_application_message_equals_the_general_path(
    suite_id: int, padding: int | None
) -> None:
    net, alice, _ = _pair(suite_id, padding)
    for data, aad in ((b"hello", b""), (b"", b"ad"), (b"x" * 300, b"y" * 70)):
        other = _copy(alice)
        guard = net.random(4)
        fast = alice.encrypt(data, _fixed(guard), authenticated_data=aad)
        framing: FramingContext = other._framing
        st = other._s.epoch
        content = FramedContent(
            st.context.group_id, st.context.epoch, Sender.member(st.private.leaf_index), aad, data
        )
        auth = framing.sign(st.signature_private_key, WireFormat.PRIVATE_MESSAGE, content)
        slow = MLSMessage(framing.protect_private(auth, _fixed(guard))).to_bytes()
        assert fast == slow


@pytest.mark.parametrize("suite_id", [1, 2, 3])
def test_opened_application_message_equals_the_general_path(suite_id: int) -> None:
    net, alice, bob = _pair(suite_id)
    message = alice.encrypt(b"hi there", net.random, authenticated_data=b"meta")
    other = _copy(bob)
    event = bob.process(message)
    assert isinstance(event, ApplicationMessage)
    private = MLSMessage.from_bytes(message).private_message
    tree = other._s.epoch.tree
    auth = other._framing.unprotect_private(
        private,
        is_member=lambda leaf: tree.leaf(leaf) is not None,
        signature_key_of=lambda leaf: _signature_key(tree, leaf),
    )
    assert auth.content.content == event.data == b"hi there"
    assert auth.content.authenticated_data == event.authenticated_data == b"meta"
    assert auth.content.sender.leaf_index == event.sender.leaf_index == alice.leaf_index


def test_opening_a_forged_application_message_keeps_the_key() -> None:
    net, alice, bob = _pair(1)
    message = alice.encrypt(b"genuine", net.random)
    private = MLSMessage.from_bytes(message).private_message
    tree = bob._s.epoch.tree
    framing = bob._framing
    with pytest.raises(UsageError):
        framing.open_application(
            dataclasses.replace(private, content_type=ContentType.PROPOSAL),
            is_member=lambda leaf: True,
            signature_key_of=lambda leaf: b"",
        )
    with pytest.raises(AuthenticationError):  # bob's own key, not alice's
        framing.open_application(
            private,
            is_member=lambda leaf: True,
            signature_key_of=lambda leaf: _signature_key(tree, 1),
        )
    event = bob.process(message)  # the key was not consumed by the failure
    assert isinstance(event, ApplicationMessage) and event.data == b"genuine"


# -- codec -----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 300, 16383, 16384, 70000])
def test_opaque_lengths(length: int) -> None:
    data = bytes(range(256)) * (length // 256 + 1)
    w = Writer()
    w.opaque(data[:length])
    w.u8(7)
    r = Reader(w.getvalue())
    assert r.opaque() == data[:length]
    assert r.u8() == 7
    r.finish()
    encoded = w.getvalue()[:-1]
    for cut in {c for c in (0, 1, len(encoded) // 2, len(encoded) - 1) if c < len(encoded)}:
        with pytest.raises(DecodeError):
            Reader(encoded[:cut]).opaque()


@pytest.mark.parametrize("encoding", ["4000", "403f", "8000003f", "80003fff"])
def test_non_minimal_opaque_lengths_rejected(encoding: str) -> None:
    with pytest.raises(DecodeError, match="non-minimal"):
        Reader(bytes.fromhex(encoding) + b"\x00" * 70).opaque()


def test_uint16_vectors() -> None:
    w = Writer()
    w.u16s((1, 0xFFFF, 0x0102))
    w.u16s(())
    r = Reader(w.getvalue())
    assert r.u16s() == (1, 0xFFFF, 0x0102)
    assert r.u16s() == ()
    r.finish()
    with pytest.raises(DecodeError):
        Reader(b"\x03\x00\x01\x02").u16s()


def test_buffer_and_seek() -> None:
    r = Reader(b"\x00\x01\x02\x03", 1, 3)
    assert r.buffer() == (b"\x00\x01\x02\x03", 1, 3)
    r.seek(2)
    assert r.u8() == 2 and r.at_end()
    with pytest.raises(UsageError):
        r.seek(1)
    with pytest.raises(UsageError):
        Reader(b"\x00").seek(2)


def test_varint_encoding_unchanged() -> None:
    for n in (0, 63, 64, 16383, 16384):
        w = Writer()
        w.opaque(b"\x00" * n)
        assert w.getvalue()[: len(encode_varint(n))] == encode_varint(n)
