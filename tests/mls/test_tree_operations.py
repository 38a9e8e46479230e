"""RFC 9420 §7.7, §7.8 and §12.1.1-§12.1.3: tree-operations.json, and the
tree operations' own rules (copies, extension, truncation, key reuse)."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from messenger.mls import treemath
from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.errors import UsageError, ValidationError
from messenger.mls.leaf_node import LeafNode, LeafNodeSource
from messenger.mls.nodes import ParentNode, RatchetTree
from messenger.mls.proposals import Add, Proposal, Remove, Update
from messenger.mls.ratchet_tree import PublicTree
from tests.mls.vectors import assert_eq, cases, h, load


def apply(tree: PublicTree, proposal: Proposal, sender: int) -> None:
    body = proposal.body
    if isinstance(body, Add):
        tree.add_leaf(body.key_package.leaf_node)
    elif isinstance(body, Update):
        tree.update_leaf(sender, body.leaf_node)
    elif isinstance(body, Remove):
        tree.remove_leaf(body.removed)
    else:  # pragma: no cover - the vectors hold only these three
        raise AssertionError(f"unexpected proposal {proposal.proposal_type}")


@pytest.mark.parametrize("tc", cases("tree-operations"))
def test_tree_operations_vector(tc: dict[str, Any]) -> None:
    suite = get_cipher_suite(tc["cipher_suite"])
    before = RatchetTree.from_bytes(h(tc["tree_before"]))
    tree = PublicTree.from_ratchet_tree_unverified(suite, before)
    assert_eq("tree_hash_before", tree.tree_hash(), h(tc["tree_hash_before"]))
    original = tree.copy()

    apply(tree, Proposal.from_bytes(h(tc["proposal"])), tc["proposal_sender"])
    assert_eq("tree_after", tree.to_ratchet_tree().to_bytes(), h(tc["tree_after"]))
    assert_eq("tree_hash_after", tree.tree_hash(), h(tc["tree_hash_after"]))

    # The incremental hash equals one computed from scratch.
    fresh = PublicTree.from_ratchet_tree_unverified(
        suite, RatchetTree.from_bytes(h(tc["tree_after"]))
    )
    assert_eq("tree_hash_after (from scratch)", fresh.tree_hash(), h(tc["tree_hash_after"]))
    # The copy taken before is unchanged.
    assert_eq("tree_before (copy)", original.to_ratchet_tree().to_bytes(), h(tc["tree_before"]))
    assert_eq("tree_hash_before (copy)", original.tree_hash(), h(tc["tree_hash_before"]))


def _tree(index: int = 0) -> tuple[PublicTree, Proposal]:
    tc = load("tree-operations")[index]
    suite = get_cipher_suite(tc["cipher_suite"])
    tree = PublicTree.from_ratchet_tree_unverified(
        suite, RatchetTree.from_bytes(h(tc["tree_before"]))
    )
    return tree, Proposal.from_bytes(h(tc["proposal"]))


def _add_case() -> tuple[PublicTree, LeafNode]:
    for i in range(len(load("tree-operations"))):
        tree, proposal = _tree(i)
        if isinstance(proposal.body, Add):
            return tree, proposal.body.key_package.leaf_node
    raise AssertionError("no Add case in tree-operations.json")


def test_add_extends_a_full_tree_and_marks_unmerged() -> None:
    tree, leaf = _add_case()
    members = [i for i, _ in tree.members()]
    # Fill every blank leaf first, with fresh keys, then add once more.
    n = 0
    while tree.next_free_leaf() < tree.n_leaves:
        n += 1
        tree.add_leaf(replace(leaf, encryption_key=bytes([n]) * 32, signature_key=bytes([n]) * 32))
    width, n_leaves = tree.width, tree.n_leaves
    assert tree.member_count() == n_leaves >= len(members)
    index = tree.add_leaf(leaf)
    assert_eq("new leaf index", index, n_leaves)
    assert_eq("n_leaves after extend", tree.n_leaves, 2 * n_leaves)
    assert_eq("width after extend", tree.width, 2 * width + 1)
    for p in treemath.direct_path(2 * index, tree.n_leaves):
        value = tree.node(p)
        if isinstance(value, ParentNode):
            assert index in value.unmerged_leaves, f"leaf {index} unmerged at node {p}"
    fresh = PublicTree.from_nodes(tree.suite, [tree.node(x) for x in range(tree.width)])
    assert_eq("tree hash after extend", tree.tree_hash(), fresh.tree_hash())


def test_remove_truncates_to_the_rightmost_member() -> None:
    tree, _ = _tree()
    members = [i for i, _ in tree.members()]
    for i in reversed(members[1:]):
        tree.remove_leaf(i)
        last = max(j for j, _ in tree.members())
        want = 1
        while want <= last:
            want *= 2
        assert_eq(f"n_leaves after removing leaf {i}", tree.n_leaves, want)
    assert_eq("n_leaves with one member", tree.n_leaves, 1)
    assert_eq("width with one member", tree.width, 1)
    fresh = PublicTree.from_nodes(tree.suite, [tree.node(0)])
    assert_eq("tree hash with one member", tree.tree_hash(), fresh.tree_hash())


def test_operations_check_members_and_keys() -> None:
    tree, leaf = _add_case()
    before = tree.to_ratchet_tree()
    blank = tree.next_free_leaf()
    with pytest.raises(ValidationError, match="not a member"):
        tree.remove_leaf(tree.n_leaves + 5)
    if blank < tree.n_leaves:
        with pytest.raises(ValidationError, match="not a member"):
            tree.update_leaf(blank, leaf)
    first_index, first = next(tree.members())
    with pytest.raises(ValidationError, match="encryption key"):
        tree.add_leaf(replace(leaf, encryption_key=first.encryption_key))
    with pytest.raises(ValidationError, match="signature key"):
        tree.add_leaf(replace(leaf, signature_key=first.signature_key))
    with pytest.raises(ValidationError, match="encryption key"):
        tree.update_leaf(first_index, first)  # RFC 9420 §7.3: a new key is required
    assert_eq("tree after failed operations", tree.to_ratchet_tree(), before)
    with pytest.raises(UsageError):
        tree.node(tree.width)


def test_copy_is_independent() -> None:
    tree, leaf = _add_case()
    hash_before = tree.tree_hash()
    copy = tree.copy()
    copy.add_leaf(leaf)
    assert_eq("original tree hash", tree.tree_hash(), hash_before)
    assert tree.find_leaf(leaf) is None
    assert copy.find_leaf(leaf) is not None
    assert copy != tree


def test_random_operations_keep_caches_and_parent_hashes_right() -> None:
    """Incremental hashes, counts and indexes equal a rebuild after every
    step, and the tree stays parent-hash valid (RFC 9420 §7.9.2) through
    adds (unmerged leaves), updates, removes and commits."""
    rng = random.Random(2024)
    tc = max(
        (tc for tc in load("tree-validation") if tc["cipher_suite"] == 1),
        key=lambda tc: len(tc["tree"]),
    )
    suite = get_cipher_suite(1)
    tree = PublicTree.from_ratchet_tree_unverified(suite, RatchetTree.from_bytes(h(tc["tree"])))
    template = tree.leaf(0)
    assert template is not None

    def fresh_leaf(**changes: Any) -> LeafNode:
        return replace(
            template, encryption_key=rng.randbytes(32), signature_key=rng.randbytes(32), **changes
        )

    for step in range(300):
        members = [i for i, _ in tree.members()]
        op = rng.choice(["add", "add", "remove", "update", "commit", "commit"])
        if op == "add":
            tree.add_leaf(fresh_leaf())
        elif op == "remove" and len(members) > 2:
            tree.remove_leaf(rng.choice(members[1:]))
        elif op == "update":
            i = rng.choice(members)
            old = tree.leaf(i)
            assert old is not None
            tree.update_leaf(i, replace(old, encryption_key=rng.randbytes(32)))
        elif op == "commit":
            i = rng.choice(members)
            old = tree.leaf(i)
            assert old is not None
            keys = [rng.randbytes(32) for _ in tree.filtered_direct_path(i)]
            leaf = replace(
                old,
                encryption_key=rng.randbytes(32),
                leaf_node_source=LeafNodeSource.COMMIT,
                lifetime=None,
                parent_hash=tree.path_parent_hash(i, keys),
            )
            tree.apply_update_path(i, leaf, keys)
        where = f"step {step} ({op})"
        rebuilt = PublicTree.from_nodes(suite, [tree.node(x) for x in range(tree.width)])
        assert_eq(f"{where}: tree hash", tree.tree_hash(), rebuilt.tree_hash())
        assert_eq(f"{where}: next free leaf", tree.next_free_leaf(), rebuilt.next_free_leaf())
        assert_eq(f"{where}: member count", tree.member_count(), rebuilt.member_count())
        assert_eq(
            f"{where}: root resolution", tree.resolution(tree.root), rebuilt.resolution(tree.root)
        )
        for i, leaf in tree.members():
            assert_eq(
                f"{where}: filtered direct path of {i}",
                tree.filtered_direct_path(i),
                rebuilt.filtered_direct_path(i),
            )
            assert_eq(f"{where}: leaf of signature key", tree.find_leaf(leaf), i)
        tree.verify_parent_hashes()
