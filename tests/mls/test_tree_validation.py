"""RFC 9420 §4.1.1, §7.8, §7.9.2 and §12.4.3.1: tree-validation.json, plus
the ways a tree can fail validation."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.credentials import Credential
from messenger.mls.errors import AuthenticationError, ValidationError
from messenger.mls.extensions import ApplicationId, Extension, RequiredCapabilities
from messenger.mls.leaf_node import LeafNode, LeafNodeSource, LeafNodeTBS, Lifetime
from messenger.mls.nodes import ParentNode, RatchetTree
from messenger.mls.ratchet_tree import LeafNodePolicy, PublicTree
from tests.mls.vectors import assert_eq, cases, h, load

#: Inside the lifetimes of the vectors' key_package leaves (2023-02 .. 2024-02).
NOW = 1_690_000_000


def accept_all(credential: object, signature_key: bytes) -> bool:
    return True


POLICY = LeafNodePolicy(validate_credential=accept_all, now=NOW)


def load_tree(tc: dict[str, Any]) -> PublicTree:
    suite = get_cipher_suite(tc["cipher_suite"])
    return PublicTree.from_ratchet_tree_unverified(suite, RatchetTree.from_bytes(h(tc["tree"])))


@pytest.mark.parametrize("tc", cases("tree-validation"))
def test_tree_validation_vector(tc: dict[str, Any]) -> None:
    tree = load_tree(tc)
    assert_eq("node count", tree.width, len(tc["tree_hashes"]))
    for x, want in enumerate(tc["resolutions"]):
        assert_eq(f"resolution of node {x}", tree.resolution(x), want)
    for x, want in enumerate(tc["tree_hashes"]):
        assert_eq(f"tree hash of node {x}", tree.node_tree_hash(x), h(want))
    tree.verify_parent_hashes()
    group_id = h(tc["group_id"])
    for leaf_index, leaf in tree.members():
        assert leaf.verify_signature(tree.suite, group_id, leaf_index), (
            f"signature of leaf {leaf_index}"
        )
    tree.validate(group_id=group_id, tree_hash=h(tc["tree_hashes"][tree.root]), policy=POLICY)
    # The same, from scratch, through the joiner's constructor.
    joined = PublicTree.from_ratchet_tree(
        tree.suite,
        tree.to_ratchet_tree(),
        group_id=group_id,
        tree_hash=h(tc["tree_hashes"][tree.root]),
        policy=POLICY,
    )
    assert_eq("re-encoded tree", joined.to_ratchet_tree().to_bytes(), h(tc["tree"]))


def test_tree_hashes_match_uncached_computation() -> None:
    """Hashes after copies and edits equal those of a freshly built tree."""
    for tc in load("tree-validation")[:14]:
        tree = load_tree(tc)
        tree.tree_hash()
        copy = tree.copy()
        members = [i for i, _ in copy.members()]
        copy.remove_leaf(members[-1])
        fresh = PublicTree.from_nodes(copy.suite, [copy.node(x) for x in range(copy.width)])
        assert_eq("tree hash after remove", copy.tree_hash(), fresh.tree_hash())
        # The original is untouched by the copy's change.
        assert_eq("original tree hash", tree.tree_hash(), h(tc["tree_hashes"][tree.root]))


def _largest(suite_id: int) -> dict[str, Any]:
    return max(
        (tc for tc in load("tree-validation") if tc["cipher_suite"] == suite_id),
        key=lambda tc: len(tc["tree"]),
    )


def _with_node(tree: PublicTree, x: int, value: Any) -> PublicTree:
    nodes = [tree.node(y) for y in range(tree.width)]
    nodes[x] = value
    return PublicTree.from_nodes(tree.suite, nodes)


def test_wrong_tree_hash_is_rejected() -> None:
    tc = _largest(1)
    tree = load_tree(tc)
    with pytest.raises(ValidationError, match="tree hash"):
        tree.validate(group_id=h(tc["group_id"]), tree_hash=b"\x00" * 32, policy=POLICY)


def test_tampered_parent_node_is_rejected() -> None:
    tc = _largest(1)
    tree = load_tree(tc)
    x = next(x for x in range(1, tree.width, 2) if isinstance(tree.node(x), ParentNode))
    parent = tree.node(x)
    assert isinstance(parent, ParentNode)
    forged = _with_node(tree, x, replace(parent, encryption_key=bytes(32)))
    with pytest.raises(ValidationError, match="parent-hash valid"):
        forged.verify_parent_hashes()


def test_bad_leaf_signature_is_rejected() -> None:
    tc = _largest(1)
    tree = load_tree(tc)
    # Only the leaves: a changed leaf then breaks no parent hash, and the
    # signature is what has to catch it.
    leaves_only = [tree.node(x) if x % 2 == 0 else None for x in range(tree.width)]
    leaf_index, leaf = next(tree.members())
    leaves_only[2 * leaf_index] = replace(leaf, signature=bytes(64))
    forged = PublicTree.from_nodes(tree.suite, leaves_only)
    with pytest.raises(AuthenticationError, match=f"leaf {leaf_index}"):
        forged.validate(group_id=h(tc["group_id"]), tree_hash=forged.tree_hash(), policy=POLICY)


def test_signature_binds_group_id() -> None:
    tc = _largest(1)
    tree = load_tree(tc)
    with pytest.raises(AuthenticationError):
        tree.validate(group_id=b"another group", tree_hash=tree.tree_hash(), policy=POLICY)


def test_rejected_credential_and_expired_lifetime() -> None:
    tc = _largest(1)
    tree = load_tree(tc)
    refuse = LeafNodePolicy(validate_credential=lambda c, k: False)
    with pytest.raises(ValidationError, match="credential rejected"):
        tree.validate(group_id=h(tc["group_id"]), tree_hash=tree.tree_hash(), policy=refuse)
    if any(leaf.lifetime is not None for _, leaf in tree.members()):
        late = LeafNodePolicy(validate_credential=accept_all, now=2_000_000_000)
        with pytest.raises(ValidationError, match="lifetime"):
            tree.validate(group_id=h(tc["group_id"]), tree_hash=tree.tree_hash(), policy=late)


def test_duplicate_keys_are_rejected() -> None:
    tree = load_tree(_largest(1))
    (i, a), (_, b) = list(tree.members())[:2]
    with pytest.raises(ValidationError, match="encryption key"):
        _with_node(tree, 2 * i, replace(a, encryption_key=b.encryption_key))
    with pytest.raises(ValidationError, match="signature key"):
        _with_node(tree, 2 * i, replace(a, signature_key=b.signature_key))


def test_misplaced_node_kinds_are_rejected() -> None:
    tree = load_tree(_largest(1))
    leaf = tree.leaf(0)
    assert isinstance(leaf, LeafNode)
    with pytest.raises(ValidationError, match="parent node"):
        PublicTree.from_nodes(tree.suite, [leaf, leaf, None])


def test_bad_unmerged_leaves_are_rejected() -> None:
    tc = next(
        tc
        for tc in load("tree-validation")
        if tc["cipher_suite"] == 1
        and any(
            isinstance(v, ParentNode) and v.unmerged_leaves
            for v in RatchetTree.from_bytes(h(tc["tree"])).values
        )
    )
    tree = load_tree(tc)
    x, parent = next(
        (x, v)
        for x in range(1, tree.width, 2)
        if isinstance(v := tree.node(x), ParentNode) and v.unmerged_leaves
    )
    outside = tree.n_leaves  # not a leaf below any node
    forged = _with_node(
        tree, x, replace(parent, unmerged_leaves=(*parent.unmerged_leaves, outside))
    )
    with pytest.raises(ValidationError):
        forged.validate(group_id=h(tc["group_id"]), tree_hash=forged.tree_hash(), policy=POLICY)


# -- leaf node validation (RFC 9420 §7.3) -------------------------------------


def _key_package_leaf(tree: PublicTree, seed: int, **changes: Any) -> tuple[LeafNode, bytes]:
    """A fresh, correctly signed key_package leaf like the tree's leaf 0."""
    suite = tree.suite
    rng = random.Random(seed).randbytes
    signature_private, signature_public = suite.generate_signature_key_pair(rng)
    _, encryption_public = suite.generate_hpke_key_pair(rng)
    template = tree.leaf(0)
    assert template is not None
    fields: dict[str, Any] = {
        "encryption_key": encryption_public,
        "signature_key": signature_public,
        "credential": Credential.basic(b"new member"),
        "capabilities": template.capabilities,
        "leaf_node_source": LeafNodeSource.KEY_PACKAGE,
        "lifetime": Lifetime(NOW - 10, NOW + 10),
    }
    fields.update(changes)
    return LeafNodeTBS(**fields).sign(suite, signature_private), signature_private


def test_check_leaf_node_accepts_a_good_key_package_leaf() -> None:
    tree = load_tree(_largest(1))
    leaf, _ = _key_package_leaf(tree, 1)
    tree.check_leaf_node(leaf, source=LeafNodeSource.KEY_PACKAGE, policy=POLICY)
    with pytest.raises(ValidationError, match="source"):
        tree.check_leaf_node(
            leaf, source=LeafNodeSource.UPDATE, policy=POLICY, group_id=b"g", leaf_index=0
        )


def test_check_leaf_node_rules() -> None:
    tree = load_tree(_largest(1))
    first = tree.leaf(0)
    assert first is not None
    caps = first.capabilities

    def refused(match: str, policy: LeafNodePolicy = POLICY, **changes: Any) -> None:
        leaf, _ = _key_package_leaf(tree, 2, **changes)
        with pytest.raises(ValidationError, match=match):
            tree.check_leaf_node(leaf, source=LeafNodeSource.KEY_PACKAGE, policy=policy)

    # The credential type in use must be listed, and supported by all.
    refused("own credential type", capabilities=replace(caps, credentials=(2,)))
    refused(
        "not supported by every member",
        credential=Credential.x509([b"cert"]),
        capabilities=replace(caps, credentials=(1, 2)),
    )
    # Extensions must be in the capabilities (default ones need not be).
    refused("extension 0x0a0a", extensions=(Extension(0x0A0A, b""),))
    leaf, _ = _key_package_leaf(
        tree,
        3,
        extensions=(ApplicationId(b"app").to_extension(), Extension(0x0A0A, b"")),
        capabilities=replace(caps, extensions=(0x0A0A,)),
    )
    tree.check_leaf_node(leaf, source=LeafNodeSource.KEY_PACKAGE, policy=POLICY)
    # The group's required capabilities.
    strict = replace(POLICY, required_capabilities=RequiredCapabilities(extension_types=(0x0B0B,)))
    refused("required extension", policy=strict)
    # Lifetime, when a time is given, and its maximum length.
    refused("lifetime", lifetime=Lifetime(NOW + 5, NOW + 10))
    refused("longer than the maximum", policy=replace(POLICY, max_lifetime=5))
    # Keys already in the tree.
    member = tree.leaf(0)
    assert member is not None
    refused("encryption key", encryption_key=member.encryption_key)
    leaf, _ = _key_package_leaf(tree, 4)
    with pytest.raises(ValidationError, match="signature key"):
        tree.check_leaf_node(
            replace(leaf, signature_key=member.signature_key),
            source=LeafNodeSource.KEY_PACKAGE,
            policy=POLICY,
        )
    # A bad signature.
    with pytest.raises(AuthenticationError):
        tree.check_leaf_node(
            replace(leaf, signature=bytes(64)), source=LeafNodeSource.KEY_PACKAGE, policy=POLICY
        )
