"""TreeKEM: a member's private keys and the update paths of commits
(RFC 9420 §7.4-§7.6).

:class:`PrivateTree` is what one member knows beyond the public tree: the
HPKE private keys of its own leaf and of the parent nodes above it that it
holds (the tree invariant of RFC 9420 §4.2). It is immutable and encodes with
the codec, for storage. The three ways a member's private keys change are:

* :func:`create_update_path` -- this member commits with a path: fresh
  secrets up its filtered direct path, a new signed leaf, the path secrets
  encrypted to the copath (RFC 9420 §7.4, §7.5, §7.6, §12.4.2);
* :func:`process_update_path` -- another member's commit with a path: merge
  it into the public tree, decrypt one path secret, derive the rest and
  check them against the public keys (RFC 9420 §7.5, §12.4.2);
* :meth:`PrivateTree.join` -- a new member from a Welcome: its own leaf key
  and the path secret from ``GroupSecrets`` (RFC 9420 §12.4.3.1).

Both path functions take the tree with the commit's proposals applied and
return a new tree and a new private state; their inputs are left alone, so a
staged commit changes nothing until the caller merges it (architecture guide,
convention 4).

Every path starts from a random ``leaf_secret``: the leaf's key pair is
``DeriveKeyPair(DeriveSecret(leaf_secret, "node"))`` and the first path
secret is ``DeriveSecret(leaf_secret, "path")`` (RFC 9420 §7.4).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from . import treemath
from .ciphersuite import CipherSuite, RandomSource
from .codec import Reader, Struct, Writer
from .commit import UpdatePath, UpdatePathNode
from .credentials import Credential
from .errors import DecodeError, UsageError, ValidationError
from .extensions import Extension
from .group_context import GroupContext
from .leaf_node import Capabilities, LeafNodeSource, LeafNodeTBS
from .ratchet_tree import LeafNodePolicy, PublicTree

__all__ = [
    "CreatedPath",
    "NodeKey",
    "PrivateTree",
    "ProcessedPath",
    "create_update_path",
    "derive_node_key_pair",
    "next_path_secret",
    "process_update_path",
]

_LABEL = b"UpdatePathNode"


def derive_node_key_pair(suite: CipherSuite, path_secret: bytes) -> tuple[bytes, bytes]:
    """``(private, public)`` for a node (RFC 9420 §7.4).

    ``node_secret = DeriveSecret(path_secret, "node")``, then
    ``KEM.DeriveKeyPair(node_secret)``.
    """
    return suite.derive_hpke_key_pair(suite.derive_secret(path_secret, b"node"))


def next_path_secret(suite: CipherSuite, path_secret: bytes) -> bytes:
    """``path_secret[n+1] = DeriveSecret(path_secret[n], "path")`` (RFC 9420 §7.4)."""
    return suite.derive_secret(path_secret, b"path")


def _copath_child(node: int, leaf_index: int) -> int:
    """The child of ``node`` that is not above ``leaf_index`` (RFC 9420 §4.1)."""
    k = treemath.level(node)
    return node ^ (3 << (k - 1)) if 2 * leaf_index < node else node ^ (1 << (k - 1))


@dataclass(frozen=True, slots=True)
class NodeKey(Struct):
    """One HPKE key pair a member holds, at node index ``node``."""

    node: int
    private_key: bytes
    public_key: bytes

    def encode(self, w: Writer) -> None:
        w.u32(self.node)
        w.opaque(self.private_key)
        w.opaque(self.public_key)

    @classmethod
    def decode(cls, r: Reader) -> NodeKey:
        return cls(r.u32(), r.opaque(), r.opaque())

    def __repr__(self) -> str:  # never print private keys
        return f"NodeKey(node={self.node}, public_key={self.public_key.hex()[:16]}...)"


@dataclass(frozen=True, slots=True)
class PrivateTree(Struct):
    """A member's private keys in the ratchet tree (RFC 9420 §4.2, §7.4).

    The key pair of the member's leaf, and ``path_keys`` for parent nodes
    above it, sorted by node index. Each key pair keeps its public key, so
    stale keys -- of nodes since blanked or replaced -- are recognised
    without any HPKE operation: see :meth:`pruned`.
    """

    leaf_index: int
    leaf_private_key: bytes
    leaf_public_key: bytes
    path_keys: tuple[NodeKey, ...] = ()

    def __post_init__(self) -> None:
        leaf_node = 2 * self.leaf_index
        previous = -1
        for key in self.path_keys:
            if key.node <= previous:
                raise UsageError("private tree keys must be sorted by node, without repeats")
            previous = key.node
            if not (key.node & 1 and treemath.is_ancestor(key.node, leaf_node)):
                raise UsageError(f"node {key.node} is not above leaf {self.leaf_index}")

    @classmethod
    def join(
        cls,
        tree: PublicTree,
        leaf_index: int,
        encryption_private_key: bytes,
        *,
        committer: int | None = None,
        path_secret: bytes | None = None,
    ) -> PrivateTree:
        """The private state of a member joining from a Welcome (RFC 9420 §12.4.3.1).

        ``encryption_private_key`` goes with the encryption key of the leaf
        at ``leaf_index`` (the joiner's KeyPackage leaf). If GroupSecrets
        has a ``path_secret``, it is for the lowest common ancestor of this
        leaf and ``committer`` (``GroupInfo.signer``); the keys from there to
        the root along the committer's filtered direct path are derived and
        must match the tree, or :class:`ValidationError` is raised.
        """
        suite = tree.suite
        leaf = tree.leaf(leaf_index)
        if leaf is None:
            raise UsageError(f"leaf {leaf_index} is blank")
        public = suite.hpke_public_key(encryption_private_key)
        if public != leaf.encryption_key:
            raise UsageError("the private key does not match the leaf's encryption key")
        path_keys: list[NodeKey] = []
        if path_secret is not None:
            if committer is None:
                raise UsageError("a path secret comes with the committer's leaf index")
            if committer == leaf_index or not 0 <= committer < tree.n_leaves:
                raise ValidationError(f"invalid committer leaf {committer}")
            ancestor = treemath.common_ancestor(2 * leaf_index, 2 * committer)
            path = tree.filtered_direct_path(committer)
            if ancestor not in path:
                raise ValidationError("the path secret's node is not on the committer's path")
            path_keys = _derive_path_keys(tree, path[path.index(ancestor) :], path_secret)[0]
        return cls(leaf_index, encryption_private_key, public, tuple(path_keys))

    # -- reading -----------------------------------------------------------------

    @property
    def leaf_key(self) -> NodeKey:
        """The key pair of this member's leaf, as a :class:`NodeKey`."""
        return NodeKey(2 * self.leaf_index, self.leaf_private_key, self.leaf_public_key)

    @property
    def keys(self) -> tuple[NodeKey, ...]:
        """Every key pair held: the leaf's, then the path's."""
        return (self.leaf_key, *self.path_keys)

    def key(self, node: int) -> NodeKey | None:
        """The key pair held for ``node``, if any (it may be stale)."""
        if node == 2 * self.leaf_index:
            return self.leaf_key
        for key in self.path_keys:
            if key.node == node:
                return key
        return None

    def current_private_key(self, tree: PublicTree, node: int) -> bytes | None:
        """The private key for ``node`` if it matches the tree's public key."""
        key = self.key(node)
        if key is None or node >= tree.width:
            return None
        value = tree.node(node)
        if value is None or value.encryption_key != key.public_key:
            return None
        return key.private_key

    def matches(self, tree: PublicTree) -> bool:
        """Whether every key held is the one of its node in ``tree``."""
        return all(self.current_private_key(tree, key.node) is not None for key in self.keys)

    # -- changing ------------------------------------------------------------------

    def pruned(self, tree: PublicTree) -> PrivateTree:
        """Without the keys of nodes that ``tree`` has blanked or replaced.

        Deleting those is what RFC 9420 §7.5 asks after a commit. The leaf's
        key must still be current: after an Update proposal of this member
        was committed, install its key with :meth:`with_leaf_key` first.
        """
        if self.current_private_key(tree, 2 * self.leaf_index) is None:
            raise UsageError(f"the tree's leaf {self.leaf_index} does not have this member's key")
        kept = tuple(
            k for k in self.path_keys if self.current_private_key(tree, k.node) is not None
        )
        return self if len(kept) == len(self.path_keys) else replace(self, path_keys=kept)

    def with_leaf_key(self, private_key: bytes, public_key: bytes) -> PrivateTree:
        """With a new leaf key pair: that of this member's committed Update (§12.1.2)."""
        return replace(self, leaf_private_key=private_key, leaf_public_key=public_key)

    def with_path_keys(self, keys: Iterable[NodeKey]) -> PrivateTree:
        """With ``keys`` for parent nodes added, replacing any held for the same nodes."""
        merged = {k.node: k for k in self.path_keys}
        merged.update((k.node, k) for k in keys)
        return replace(self, path_keys=tuple(merged[n] for n in sorted(merged)))

    # -- encoding --------------------------------------------------------------------

    def encode(self, w: Writer) -> None:
        w.u32(self.leaf_index)
        w.opaque(self.leaf_private_key)
        w.opaque(self.leaf_public_key)
        w.structs(self.path_keys)

    @classmethod
    def decode(cls, r: Reader) -> PrivateTree:
        leaf_index = r.u32()
        private, public = r.opaque(), r.opaque()
        path_keys = tuple(r.structs(NodeKey))
        try:
            return cls(leaf_index, private, public, path_keys)
        except UsageError as exc:
            raise DecodeError(f"invalid private tree: {exc}") from None

    def __repr__(self) -> str:
        nodes = [k.node for k in self.path_keys]
        return f"PrivateTree(leaf_index={self.leaf_index}, path_nodes={nodes})"


def _derive_path_keys(
    tree: PublicTree, nodes: Sequence[int], path_secret: bytes
) -> tuple[list[NodeKey], bytes]:
    """Key pairs for ``nodes`` from the first one's path secret, each checked
    against the public key in ``tree`` (RFC 9420 §7.5, §12.4.3.1); and the
    path secret after the last node."""
    suite = tree.suite
    keys = []
    secret = path_secret
    for node in nodes:
        private, public = derive_node_key_pair(suite, secret)
        value = tree.node(node)
        if value is None or value.encryption_key != public:
            raise ValidationError(
                f"the path secret for node {node} does not give its public key (RFC 9420 §7.5)"
            )
        keys.append(NodeKey(node, private, public))
        secret = next_path_secret(suite, secret)
    return keys, secret


@dataclass(frozen=True, slots=True, eq=False)
class CreatedPath:
    """The result of :func:`create_update_path`.

    ``tree`` is the new tree and ``private`` this member's whole new private
    state (the old one is obsolete). ``group_context`` is the provisional
    GroupContext the path secrets were encrypted under, with the new tree
    hash. ``path_secrets`` maps each node of the filtered direct path to its
    path secret, for the Welcome.
    """

    update_path: UpdatePath
    tree: PublicTree
    private: PrivateTree
    commit_secret: bytes
    group_context: GroupContext
    path_secrets: Mapping[int, bytes]

    def path_secret_for(self, leaf_index: int) -> bytes:
        """The ``path_secret`` of GroupSecrets for the member at ``leaf_index``.

        The secret of the lowest common ancestor of that leaf and the
        committer's (RFC 9420 §12.4.3.1).
        """
        ancestor = treemath.common_ancestor(2 * leaf_index, 2 * self.private.leaf_index)
        secret = self.path_secrets.get(ancestor)
        if secret is None:
            raise UsageError(f"leaf {leaf_index} is not reached by this path")
        return secret

    def __repr__(self) -> str:
        return f"<CreatedPath leaf={self.private.leaf_index} nodes={len(self.update_path.nodes)}>"


@dataclass(frozen=True, slots=True, eq=False)
class ProcessedPath:
    """The result of :func:`process_update_path`.

    ``tree`` is the new tree and ``private`` the receiver's new private
    state. ``path_secret`` is the secret it decrypted (for the lowest common
    ancestor of its leaf and the committer's).
    """

    tree: PublicTree
    private: PrivateTree
    commit_secret: bytes
    group_context: GroupContext
    path_secret: bytes

    def __repr__(self) -> str:
        return f"<ProcessedPath leaf={self.private.leaf_index}>"


def create_update_path(
    tree: PublicTree,
    leaf_index: int,
    *,
    group_context: GroupContext,
    signature_private_key: bytes,
    random: RandomSource,
    exclude: Collection[int] = (),
    credential: Credential | None = None,
    capabilities: Capabilities | None = None,
    extensions: Sequence[Extension] | None = None,
    rotate_signature_key: bool = False,
) -> CreatedPath:
    """Make the UpdatePath of a commit by the member at ``leaf_index`` (§7.5, §12.4.2).

    ``tree`` has the commit's proposals applied; it is not changed.
    ``group_context`` is the new epoch's provisional GroupContext (new
    epoch and extensions, the old confirmed transcript hash); its
    ``tree_hash`` is ignored and replaced by that of the new tree.
    ``exclude`` lists the leaves the same commit adds, which receive their
    secrets from the Welcome instead (§12.4.2).

    The new leaf keeps the credential, capabilities and extensions of the
    current one unless others are given (for an external commit, whose leaf
    is blank, ``credential`` and ``capabilities`` are required). Its
    signature key is the one of ``signature_private_key``, which must be the
    current leaf's unless ``rotate_signature_key`` is set.
    """
    suite = tree.suite
    if not 0 <= leaf_index < tree.n_leaves:
        raise UsageError(f"leaf {leaf_index} is outside the tree")
    old = tree.leaf(leaf_index)
    if old is not None:
        credential = old.credential if credential is None else credential
        capabilities = old.capabilities if capabilities is None else capabilities
        extensions = old.extensions if extensions is None else extensions
    if credential is None or capabilities is None:
        raise UsageError("a commit from a blank leaf needs a credential and capabilities")
    excluded = frozenset(exclude)
    if leaf_index in excluded:
        raise UsageError("the committer cannot be one of the members it adds")
    signature_key = suite.signature_public_key(signature_private_key)
    if old is not None and signature_key != old.signature_key and not rotate_signature_key:
        raise UsageError("signature_private_key is not the leaf's (rotate_signature_key?)")

    fdp = tree.filtered_direct_path(leaf_index)
    leaf_secret = random(suite.hash_len)
    leaf_private, leaf_public = derive_node_key_pair(suite, leaf_secret)
    secrets: dict[int, bytes] = {}
    keys: list[NodeKey] = []
    secret = leaf_secret
    for node in fdp:
        secret = next_path_secret(suite, secret)
        secrets[node] = secret
        keys.append(NodeKey(node, *derive_node_key_pair(suite, secret)))
    commit_secret = next_path_secret(suite, secret)
    publics = [k.public_key for k in keys]

    new_tree = tree.copy()
    parent_hash = new_tree.path_parent_hash(leaf_index, publics)
    leaf = LeafNodeTBS(
        encryption_key=leaf_public,
        signature_key=signature_key,
        credential=credential,
        capabilities=capabilities,
        leaf_node_source=LeafNodeSource.COMMIT,
        parent_hash=parent_hash,
        extensions=tuple(extensions or ()),
        group_id=group_context.group_id,
        leaf_index=leaf_index,
    ).sign(suite, signature_private_key)
    new_tree.apply_update_path(leaf_index, leaf, publics)

    context = replace(group_context, tree_hash=new_tree.tree_hash())
    context_bytes = context.to_bytes()
    path_nodes = []
    for node, public in zip(fdp, publics, strict=True):
        resolution = new_tree.resolution(_copath_child(node, leaf_index), exclude=excluded)
        ciphertexts = tuple(
            suite.encrypt_with_label(
                _encryption_key(new_tree, r), _LABEL, context_bytes, secrets[node], random
            )
            for r in resolution
        )
        path_nodes.append(UpdatePathNode(public, ciphertexts))
    return CreatedPath(
        update_path=UpdatePath(leaf, tuple(path_nodes)),
        tree=new_tree,
        private=PrivateTree(
            leaf_index, leaf_private, leaf_public, tuple(sorted(keys, key=lambda k: k.node))
        ),
        commit_secret=commit_secret,
        group_context=context,
        path_secrets=secrets,
    )


def _encryption_key(tree: PublicTree, node: int) -> bytes:
    value = tree.node(node)
    assert value is not None  # a resolution holds non-blank nodes only
    return value.encryption_key


def process_update_path(
    tree: PublicTree,
    private: PrivateTree,
    *,
    sender: int,
    update_path: UpdatePath,
    group_context: GroupContext,
    policy: LeafNodePolicy,
    exclude: Collection[int] = (),
    external: bool = False,
) -> ProcessedPath:
    """Apply another member's UpdatePath and learn the new path secrets (§12.4.2).

    ``tree`` has the commit's proposals applied; it and ``private`` are not
    changed. ``sender`` is the committer's leaf, which must be a member's;
    for an external commit (``external=True``) it is the blank leaf that
    :meth:`PublicTree.reserve_free_leaf` gave. ``group_context`` is the provisional
    GroupContext, whose ``tree_hash`` is replaced as in
    :func:`create_update_path`; ``exclude`` lists the leaves the commit adds.

    Checks the new leaf node (RFC 9420 §7.3 with ``policy``, source
    ``commit``, signature), the number of nodes and of ciphertexts, that no
    new key is already in the tree, the parent hashes (§7.9.2), and that the
    decrypted path secrets give the UpdatePath's public keys. Raises
    :class:`ValidationError`, :class:`AuthenticationError` or
    :class:`DecryptionError` (all :class:`InvalidMessageError`) if the
    sender got something wrong; :class:`UsageError` if this member cannot
    process the path (it is the sender, is new, or its state is stale).
    """
    suite = tree.suite
    me = private.leaf_index
    if sender == me:
        raise UsageError("a member applies its own commit from create_update_path's result")
    excluded = frozenset(exclude)
    if me in excluded:
        raise UsageError("a member added by this commit joins from the Welcome")
    if not 0 <= sender < tree.n_leaves:
        raise ValidationError(f"sender leaf {sender} is outside the tree")
    if (tree.leaf(sender) is None) != external:
        raise ValidationError(
            f"sender leaf {sender} is blank"
            if not external
            else "an external sender's leaf is taken"
        )
    private = private.pruned(tree)

    leaf = update_path.leaf_node
    tree.check_leaf_node(
        leaf,
        source=LeafNodeSource.COMMIT,
        group_id=group_context.group_id,
        leaf_index=sender,
        policy=policy,
    )
    fdp = tree.filtered_direct_path(sender)
    if len(update_path.nodes) != len(fdp):
        raise ValidationError(
            f"UpdatePath has {len(update_path.nodes)} nodes for a filtered direct path "
            f"of {len(fdp)} (RFC 9420 §7.6)"
        )
    ancestor = treemath.common_ancestor(2 * sender, 2 * me)
    position = -1
    source: tuple[int, bytes] | None = None
    for i, (node, path_node) in enumerate(zip(fdp, update_path.nodes, strict=True)):
        resolution = tree.resolution(_copath_child(node, sender), exclude=excluded)
        if len(path_node.encrypted_path_secret) != len(resolution):
            raise ValidationError(
                f"UpdatePath node {i} has {len(path_node.encrypted_path_secret)} ciphertexts "
                f"for a resolution of {len(resolution)} (RFC 9420 §7.6)"
            )
        if node == ancestor:
            position = i
            for j, r in enumerate(resolution):
                key = private.current_private_key(tree, r)
                if key is not None:
                    source = (j, key)
                    break
    if position < 0 or source is None:
        raise UsageError(f"member {me} holds no key to decrypt this path (stale private state?)")

    new_tree = tree.copy()
    new_tree.apply_update_path(sender, leaf, [n.encryption_key for n in update_path.nodes])
    context = replace(group_context, tree_hash=new_tree.tree_hash())
    index, private_key = source
    ciphertext = update_path.nodes[position].encrypted_path_secret[index]
    path_secret = suite.decrypt_with_label(
        private_key, _LABEL, context.to_bytes(), ciphertext.kem_output, ciphertext.ciphertext
    )
    keys, commit_secret = _derive_path_keys(new_tree, fdp[position:], path_secret)
    return ProcessedPath(
        tree=new_tree,
        private=private.pruned(new_tree).with_path_keys(keys),
        commit_secret=commit_secret,
        group_context=context,
        path_secret=path_secret,
    )
