"""RFC 9420 §7.4-§7.6 and §12.4.2: treekem.json, then paths of our own
making, joiners, and UpdatePaths that must be refused."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from messenger.mls import treemath
from messenger.mls.ciphersuite import CipherSuite, get_cipher_suite
from messenger.mls.codec import Writer
from messenger.mls.commit import UpdatePath
from messenger.mls.credentials import Credential
from messenger.mls.errors import (
    AuthenticationError,
    DecodeError,
    DecryptionError,
    UsageError,
    ValidationError,
)
from messenger.mls.group_context import GroupContext
from messenger.mls.leaf_node import LeafNode, LeafNodeSource, LeafNodeTBS, Lifetime
from messenger.mls.nodes import RatchetTree
from messenger.mls.ratchet_tree import LeafNodePolicy, PublicTree
from messenger.mls.treekem import (
    CreatedPath,
    NodeKey,
    PrivateTree,
    create_update_path,
    derive_node_key_pair,
    process_update_path,
)
from tests.mls.vectors import assert_eq, cases, h, load

POLICY = LeafNodePolicy(validate_credential=lambda credential, key: True)


def random_source(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


@dataclass
class Case:
    suite: CipherSuite
    tree: PublicTree
    context: GroupContext
    privates: dict[int, PrivateTree]
    signature_keys: dict[int, bytes]


def load_case(tc: dict[str, Any]) -> Case:
    suite = get_cipher_suite(tc["cipher_suite"])
    tree = PublicTree.from_ratchet_tree_unverified(
        suite, RatchetTree.from_bytes(h(tc["ratchet_tree"]))
    )
    privates: dict[int, PrivateTree] = {}
    signature_keys: dict[int, bytes] = {}
    for entry in tc["leaves_private"]:
        i = entry["index"]
        leaf_private = h(entry["encryption_priv"])
        keys = sorted(
            (
                NodeKey(ps["node"], *derive_node_key_pair(suite, h(ps["path_secret"])))
                for ps in entry["path_secrets"]
            ),
            key=lambda k: k.node,
        )
        private = PrivateTree(i, leaf_private, suite.hpke_public_key(leaf_private), tuple(keys))
        assert private.matches(tree), f"leaves_private[{i}] is not consistent with ratchet_tree"
        privates[i] = private
        signature_keys[i] = h(entry["signature_priv"])
    context = GroupContext(
        cipher_suite=suite.suite_id,
        group_id=h(tc["group_id"]),
        epoch=tc["epoch"],
        tree_hash=tree.tree_hash(),
        confirmed_transcript_hash=h(tc["confirmed_transcript_hash"]),
    )
    return Case(suite, tree, context, privates, signature_keys)


@pytest.mark.parametrize("tc", cases("treekem"))
def test_treekem_vector(tc: dict[str, Any]) -> None:
    case = load_case(tc)
    tree = case.tree
    assert_eq("members with private state", sorted(case.privates), [i for i, _ in tree.members()])
    for n, up in enumerate(tc["update_paths"]):
        sender = up["sender"]
        path = UpdatePath.from_bytes(h(up["update_path"]))
        where = f"update_paths[{n}] (sender {sender})"

        merged = tree.copy()
        merged.apply_update_path(sender, path.leaf_node, [p.encryption_key for p in path.nodes])
        assert_eq(f"{where}: tree_hash_after", merged.tree_hash(), h(up["tree_hash_after"]))

        for j, private in case.privates.items():
            if j == sender:
                continue
            got = process_update_path(
                tree,
                private,
                sender=sender,
                update_path=path,
                group_context=case.context,
                policy=POLICY,
            )
            assert_eq(f"{where}: path_secrets[{j}]", got.path_secret, h(up["path_secrets"][j]))
            assert_eq(
                f"{where}: commit_secret at leaf {j}", got.commit_secret, h(up["commit_secret"])
            )
            assert_eq(
                f"{where}: tree hash at leaf {j}", got.tree.tree_hash(), h(up["tree_hash_after"])
            )
            assert_eq(
                f"{where}: context tree hash at leaf {j}",
                got.group_context.tree_hash,
                h(up["tree_hash_after"]),
            )
            assert got.private.matches(got.tree), f"{where}: private state of leaf {j}"
        # The inputs are untouched.
        assert_eq(f"{where}: tree hash before", tree.tree_hash(), case.context.tree_hash)

        # A path of our own from the same sender reaches every other member.
        created = create_update_path(
            tree,
            sender,
            group_context=case.context,
            signature_private_key=case.signature_keys[sender],
            random=random_source(n),
        )
        assert created.private.matches(created.tree), f"{where}: new path, sender's private state"
        for j, private in case.privates.items():
            if j == sender:
                continue
            got = process_update_path(
                tree,
                private,
                sender=sender,
                update_path=created.update_path,
                group_context=case.context,
                policy=POLICY,
            )
            assert_eq(
                f"{where}: new path, commit secret at leaf {j}",
                got.commit_secret,
                created.commit_secret,
            )
            assert_eq(
                f"{where}: new path, tree hash at leaf {j}",
                got.tree.tree_hash(),
                created.tree.tree_hash(),
            )
            assert_eq(
                f"{where}: new path, path secret at leaf {j}",
                got.path_secret,
                created.path_secret_for(j),
            )


# -- beyond the vectors --------------------------------------------------------


def _largest_case(suite_id: int = 1) -> Case:
    tc = max(
        (tc for tc in load("treekem") if tc["cipher_suite"] == suite_id),
        key=lambda tc: len(tc["ratchet_tree"]),
    )
    return load_case(tc)


def new_member(suite: CipherSuite, template: LeafNode, seed: int) -> tuple[LeafNode, bytes, bytes]:
    """A KeyPackage leaf node with fresh keys: (leaf, encryption private, signature private)."""
    rng = random_source(seed)
    signature_private, signature_public = suite.generate_signature_key_pair(rng)
    encryption_private, encryption_public = suite.generate_hpke_key_pair(rng)
    leaf = LeafNodeTBS(
        encryption_key=encryption_public,
        signature_key=signature_public,
        credential=Credential.basic(b"joiner %d" % seed),
        capabilities=template.capabilities,
        leaf_node_source=LeafNodeSource.KEY_PACKAGE,
        lifetime=Lifetime(0, 2**64 - 1),
    ).sign(suite, signature_private)
    return leaf, encryption_private, signature_private


def test_add_with_path_welcome_and_next_epoch() -> None:
    """A commit adding a member: old members process it, the joiner starts
    from the path secret, and then everyone follows a commit by another."""
    case = _largest_case()
    tree, suite = case.tree, case.suite
    committer = min(case.privates)
    template = tree.leaf(committer)
    assert template is not None
    leaf, joiner_key, joiner_signature_key = new_member(suite, template, 1)
    tree.check_leaf_node(leaf, source=LeafNodeSource.KEY_PACKAGE, policy=POLICY)
    staged = tree.copy()
    joiner = staged.add_leaf(leaf)
    context = replace(case.context, epoch=case.context.epoch + 1)
    created = create_update_path(
        staged,
        committer,
        group_context=context,
        signature_private_key=case.signature_keys[committer],
        random=random_source(7),
        exclude=[joiner],
    )
    # No ciphertext goes to the new member (RFC 9420 §12.4.2).
    children = _copath_children(staged, committer)
    total = sum(len(p.encrypted_path_secret) for p in created.update_path.nodes)
    reached = sum(len(staged.resolution(c, exclude=[joiner])) for c in children)
    everyone = sum(len(staged.resolution(c)) for c in children)
    assert_eq("ciphertexts in the path", total, reached)
    assert_eq("ciphertexts saved by excluding the joiner", everyone - reached, 1)

    privates = {committer: created.private}
    for j, private in case.privates.items():
        if j == committer:
            continue
        got = process_update_path(
            staged,
            private,
            sender=committer,
            update_path=created.update_path,
            group_context=context,
            policy=POLICY,
            exclude=[joiner],
        )
        assert_eq(f"commit secret at leaf {j}", got.commit_secret, created.commit_secret)
        privates[j] = got.private

    joined = PrivateTree.join(
        created.tree,
        joiner,
        joiner_key,
        committer=committer,
        path_secret=created.path_secret_for(joiner),
    )
    assert joined.matches(created.tree), "joiner's private state"
    assert joined.path_keys, "the joiner learned some path keys"
    privates[joiner] = joined
    signature_keys = {**case.signature_keys, joiner: joiner_signature_key}

    # Next epoch: every member in turn commits; all others agree.
    tree = created.tree
    for sender in sorted(privates):
        context = replace(context, epoch=context.epoch + 1)
        made = create_update_path(
            tree,
            sender,
            group_context=context,
            signature_private_key=signature_keys[sender],
            random=random_source(100 + sender),
        )
        for j in privates:
            if j == sender:
                continue
            got = process_update_path(
                tree,
                privates[j],
                sender=sender,
                update_path=made.update_path,
                group_context=context,
                policy=POLICY,
            )
            assert_eq(
                f"epoch {context.epoch}: commit secret at {j}",
                got.commit_secret,
                made.commit_secret,
            )
            privates[j] = got.private
        privates[sender] = made.private
        tree = made.tree
        tree.verify_parent_hashes()
    for j, private in privates.items():
        assert private.matches(tree), f"final private state of leaf {j}"


def _copath_children(tree: PublicTree, leaf_index: int) -> list[int]:
    out = []
    for p in tree.filtered_direct_path(leaf_index):
        k = treemath.level(p)
        out.append(p ^ (3 << (k - 1)) if 2 * leaf_index < p else p ^ (1 << (k - 1)))
    return out


def _made_path(case: Case) -> tuple[int, int, CreatedPath]:
    sender, receiver = sorted(case.privates)[:2]
    created = create_update_path(
        case.tree,
        sender,
        group_context=case.context,
        signature_private_key=case.signature_keys[sender],
        random=random_source(3),
    )
    return sender, receiver, created


def _public_key(tree: PublicTree, node: int) -> bytes:
    value = tree.node(node)
    assert value is not None
    return value.encryption_key


def _commit_leaf(case: Case, sender: int, leaf: LeafNode, parent_hash: bytes) -> LeafNode:
    """``leaf`` with another parent hash, signed again by the sender."""
    return LeafNodeTBS(
        encryption_key=leaf.encryption_key,
        signature_key=leaf.signature_key,
        credential=leaf.credential,
        capabilities=leaf.capabilities,
        leaf_node_source=LeafNodeSource.COMMIT,
        parent_hash=parent_hash,
        group_id=case.context.group_id,
        leaf_index=sender,
    ).sign(case.suite, case.signature_keys[sender])


def _process(case: Case, sender: int, receiver: int, path: UpdatePath) -> None:
    process_update_path(
        case.tree,
        case.privates[receiver],
        sender=sender,
        update_path=path,
        group_context=case.context,
        policy=POLICY,
    )


def test_forged_paths_are_refused() -> None:
    case = _largest_case()
    sender, receiver, created = _made_path(case)
    path = created.update_path
    before = case.tree.to_ratchet_tree()

    # A public key that the path secrets do not give, in a path that is
    # otherwise right: parent hash, signature, and ciphertexts under the
    # GroupContext of the tree it makes.
    nodes = list(path.nodes)
    _, fresh = case.suite.generate_hpke_key_pair(random_source(9))
    nodes[-1] = replace(nodes[-1], encryption_key=fresh)
    keys = [n.encryption_key for n in nodes]
    resigned = _commit_leaf(case, sender, path.leaf_node, case.tree.path_parent_hash(sender, keys))
    forged_tree = case.tree.copy()
    forged_tree.apply_update_path(sender, resigned, keys)
    context = replace(case.context, tree_hash=forged_tree.tree_hash()).to_bytes()
    fdp = case.tree.filtered_direct_path(sender)
    for n, (node, child) in enumerate(zip(fdp, _copath_children(case.tree, sender), strict=True)):
        cts = tuple(
            case.suite.encrypt_with_label(
                _public_key(case.tree, r),
                b"UpdatePathNode",
                context,
                created.path_secrets[node],
                random_source(n),
            )
            for r in case.tree.resolution(child)
        )
        nodes[n] = replace(nodes[n], encrypted_path_secret=cts)
    with pytest.raises(ValidationError, match="does not give its public key"):
        _process(case, sender, receiver, UpdatePath(resigned, tuple(nodes)))
    # The same key without a matching parent hash.
    with pytest.raises(ValidationError, match="parent_hash"):
        _process(case, sender, receiver, replace(path, nodes=tuple(nodes)))

    # A damaged ciphertext.
    nodes = [
        replace(
            n,
            encrypted_path_secret=tuple(
                replace(ct, ciphertext=bytes(len(ct.ciphertext))) for ct in n.encrypted_path_secret
            ),
        )
        for n in path.nodes
    ]
    with pytest.raises(DecryptionError):
        _process(case, sender, receiver, replace(path, nodes=tuple(nodes)))

    # Too few nodes, too few ciphertexts.
    with pytest.raises(ValidationError, match="nodes"):
        _process(case, sender, receiver, replace(path, nodes=path.nodes[:-1]))
    nodes = list(path.nodes)
    nodes[0] = replace(nodes[0], encrypted_path_secret=nodes[0].encrypted_path_secret[1:])
    with pytest.raises(ValidationError, match="ciphertexts"):
        _process(case, sender, receiver, replace(path, nodes=tuple(nodes)))

    # A leaf whose signature or parent hash is wrong, or that is not a commit leaf.
    leaf = path.leaf_node
    with pytest.raises(AuthenticationError):
        _process(
            case, sender, receiver, replace(path, leaf_node=replace(leaf, signature=bytes(64)))
        )
    assert leaf.parent_hash is not None
    wrong_hash = _commit_leaf(case, sender, leaf, bytes(len(leaf.parent_hash)))
    with pytest.raises(ValidationError, match="parent_hash"):
        _process(case, sender, receiver, replace(path, leaf_node=wrong_hash))

    # A key already in the tree.
    existing = case.tree.leaf(receiver)
    assert existing is not None
    nodes = list(path.nodes)
    nodes[0] = replace(nodes[0], encryption_key=existing.encryption_key)
    with pytest.raises(ValidationError):
        _process(case, sender, receiver, replace(path, nodes=tuple(nodes)))

    # An "external" commit from a member's leaf.
    with pytest.raises(ValidationError, match="taken"):
        process_update_path(
            case.tree,
            case.privates[receiver],
            sender=sender,
            update_path=path,
            group_context=case.context,
            policy=POLICY,
            external=True,
        )

    assert_eq("tree after refused paths", case.tree.to_ratchet_tree(), before)


def test_misuse_is_a_usage_error() -> None:
    case = _largest_case()
    sender, receiver, created = _made_path(case)
    path = created.update_path
    with pytest.raises(UsageError):  # one's own commit
        _process(case, sender, sender, path)
    with pytest.raises(UsageError):  # a member the commit adds
        process_update_path(
            case.tree,
            case.privates[receiver],
            sender=sender,
            update_path=path,
            group_context=case.context,
            policy=POLICY,
            exclude=[receiver],
        )
    with pytest.raises(UsageError):  # a leaf key the tree no longer has
        stale = case.privates[receiver].with_leaf_key(b"\x01" * 32, b"\x02" * 32)
        process_update_path(
            case.tree,
            stale,
            sender=sender,
            update_path=path,
            group_context=case.context,
            policy=POLICY,
        )


def test_private_tree_encoding_round_trip() -> None:
    case = _largest_case()
    for private in case.privates.values():
        data = private.to_bytes()
        assert_eq("decoded private tree", PrivateTree.from_bytes(data), private)
        assert private.leaf_private_key.hex() not in repr(private)
    # A key for node 5, which is not above leaf 0.
    w = Writer()
    w.u32(0)
    w.opaque(b"private")
    w.opaque(b"public")
    w.structs([NodeKey(5, b"private", b"public")])
    with pytest.raises(DecodeError, match="not above leaf 0"):
        PrivateTree.from_bytes(w.getvalue())
    with pytest.raises(DecodeError):
        PrivateTree.from_bytes(b"\x00\x00\x00")
    with pytest.raises(UsageError):
        PrivateTree(0, b"k", b"p", (NodeKey(3, b"k", b"p"), NodeKey(1, b"k", b"p")))


def test_external_commit_from_a_reserved_leaf() -> None:
    """RFC 9420 §12.4.3.2: the joiner takes the leftmost blank leaf (or a new
    one) and its path carries its whole leaf node."""
    case = _largest_case()
    template = case.tree.leaf(min(case.privates))
    assert template is not None
    _, _, signature_private = new_member(case.suite, template, 5)
    context = replace(case.context, epoch=case.context.epoch + 1)
    for fill in (False, True):
        staged = case.tree.copy()
        if fill:  # no blank leaf left: the tree is extended
            seed = 10
            while staged.next_free_leaf() < staged.n_leaves:
                seed += 1
                staged.add_leaf(new_member(case.suite, template, seed)[0])
        n_leaves = staged.n_leaves
        joiner = staged.reserve_free_leaf()
        assert_eq("reserved leaf", joiner, n_leaves if fill else case.tree.next_free_leaf())
        with pytest.raises(UsageError, match="credential"):
            create_update_path(
                staged,
                joiner,
                group_context=context,
                signature_private_key=signature_private,
                random=random_source(1),
            )
        created = create_update_path(
            staged,
            joiner,
            group_context=context,
            signature_private_key=signature_private,
            random=random_source(1),
            credential=Credential.basic(b"external joiner"),
            capabilities=template.capabilities,
        )
        created.tree.verify_parent_hashes()
        for j, private in case.privates.items():
            with pytest.raises(ValidationError, match="blank"):
                process_update_path(
                    staged,
                    private,
                    sender=joiner,
                    update_path=created.update_path,
                    group_context=context,
                    policy=POLICY,
                )
            got = process_update_path(
                staged,
                private,
                sender=joiner,
                update_path=created.update_path,
                group_context=context,
                policy=POLICY,
                external=True,
            )
            assert_eq(f"commit secret at leaf {j}", got.commit_secret, created.commit_secret)
            assert_eq(f"tree hash at leaf {j}", got.tree.tree_hash(), created.tree.tree_hash())


def test_signature_key_rotation_is_explicit() -> None:
    case = _largest_case()
    sender, receiver = sorted(case.privates)[:2]
    template = case.tree.leaf(sender)
    assert template is not None
    _, _, new_key = new_member(case.suite, template, 77)
    with pytest.raises(UsageError, match="rotate_signature_key"):
        create_update_path(
            case.tree,
            sender,
            group_context=case.context,
            signature_private_key=new_key,
            random=random_source(1),
        )
    created = create_update_path(
        case.tree,
        sender,
        group_context=case.context,
        signature_private_key=new_key,
        random=random_source(1),
        rotate_signature_key=True,
    )
    assert_eq(
        "rotated signature key",
        created.update_path.leaf_node.signature_key,
        case.suite.signature_public_key(new_key),
    )
    got = process_update_path(
        case.tree,
        case.privates[receiver],
        sender=sender,
        update_path=created.update_path,
        group_context=case.context,
        policy=POLICY,
    )
    assert_eq("commit secret", got.commit_secret, created.commit_secret)
