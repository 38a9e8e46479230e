"""The public ratchet tree of a group (RFC 9420 §4, §7).

:class:`PublicTree` is the tree every member agrees on: one
:class:`~messenger.mls.leaf_node.LeafNode` or
:class:`~messenger.mls.nodes.ParentNode` (or a blank) per node of the array
representation (RFC 9420 Appendix C). Its wire form is the body of the
``ratchet_tree`` extension, :class:`~messenger.mls.nodes.RatchetTree`
(RFC 9420 §12.4.3.3).

What is here, by RFC 9420 section:

* §4.1.1 resolutions (with unmerged leaves, and with new members excluded as
  §12.4.2 asks) and §4.1.2 filtered direct paths;
* §7.7 adding a leaf at the leftmost blank leaf or by extending the tree,
  with the unmerged-leaves bookkeeping of §12.1.1; §12.1.2 replacing a leaf
  (Update); §12.1.3 removing one and truncating the tree;
* §7.5 merging an UpdatePath (the public half of TreeKEM; the secrets are in
  :mod:`messenger.mls.treekem`);
* §7.8 tree hashes, cached per node and invalidated only along the path of a
  change, so that a commit rehashes O(log n) nodes; a tree just built is
  hashed level by level, from the nodes' kept encodings;
* §7.9 parent hashes, and §7.9.2 verifying every parent node of a tree;
* §7.3 leaf node validation and §12.4.3.1 validation of a whole tree when
  joining a group.

The tree is a mutable value. :meth:`PublicTree.copy` is a handful of O(n)
list and dict copies: nodes are frozen dataclasses and are shared, never
copied. A staged commit works on a copy, so the group's tree changes only
when the commit is merged (architecture guide, convention 4).

Operations check what a peer could get wrong (a blank sender, a reused key)
before they change anything, and raise
:class:`~messenger.mls.errors.ValidationError`; a failed operation leaves the
tree as it was.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, cast

from . import treemath
from .ciphersuite import CipherSuite
from .codec import encode_varint, vl_bytes
from .credentials import Credential
from .errors import AuthenticationError, UsageError, ValidationError
from .extensions import (
    DEFAULT_EXTENSION_TYPES,
    Extension,
    RequiredCapabilities,
    check_unique_extensions,
)
from .leaf_node import LeafNode, LeafNodeSource
from .nodes import ParentNode, RatchetTree, encode_node_values
from .proposals import DEFAULT_PROPOSAL_TYPES

__all__ = [
    "CredentialValidator",
    "LeafNodePolicy",
    "NodeValue",
    "PublicTree",
    "SignatureBatchVerifier",
    "verify_signatures_sequentially",
]

#: The value of one node: a leaf, a parent, or ``None`` for a blank node.
NodeValue = LeafNode | ParentNode | None

#: Decides whether a credential is acceptable and binds the signature key
#: (RFC 9420 §5.3.1): ``(credential, signature_key) -> bool``. This is the
#: Authentication Service's job, so the application supplies it.
CredentialValidator = Callable[[Credential, bytes], bool]

#: Checks many signatures at once, one ``bool`` per ``(public_key,
#: signed_message, signature)`` triple, in order; ``signed_message`` is the
#: complete input of ``Verify`` (the labelled ``SignContent`` of RFC 9420
#: §5.1.2), so the work is ``suite.verify(*triple)``. Joining a large group
#: verifies every leaf's signature; an application may spread that over
#: processes with its own verifier.
SignatureBatchVerifier = Callable[[CipherSuite, Sequence[tuple[bytes, bytes, bytes]]], list[bool]]

_LEAF_TBS_LABEL: Final = vl_bytes(b"MLS 1.0 LeafNodeTBS")

#: :meth:`PublicTree.tree_hash` samples about this many nodes: if most of
#: their hashes are stale, it hashes level by level instead of recursing.
_STALE_SAMPLE: Final = 16


def verify_signatures_sequentially(
    suite: CipherSuite, checks: Sequence[tuple[bytes, bytes, bytes]]
) -> list[bool]:
    """The default :data:`SignatureBatchVerifier`: one ``Verify`` after another."""
    verify = suite.verify
    return [verify(public, message, signature) for public, message, signature in checks]


@dataclass(frozen=True, slots=True)
class LeafNodePolicy:
    """The application's and the group's rules for leaf nodes (RFC 9420 §7.3).

    ``now`` is the current time in seconds since the Unix epoch; lifetimes of
    ``key_package`` leaves are checked against it, and not at all if it is
    ``None`` (the check is only RECOMMENDED for received leaf nodes).
    ``max_lifetime`` is the longest ``not_after - not_before`` accepted
    (RFC 9420 §7.2 asks applications to define one); ``None`` for no limit.
    ``required_capabilities`` is the group's ``required_capabilities``
    extension, if it has one (RFC 9420 §11.1).
    """

    validate_credential: CredentialValidator
    now: int | None = None
    required_capabilities: RequiredCapabilities | None = None
    max_lifetime: int | None = None

    @classmethod
    def for_group(
        cls,
        group_extensions: Sequence[Extension],
        validate_credential: CredentialValidator,
        *,
        now: int | None,
        max_lifetime: int | None = None,
    ) -> LeafNodePolicy:
        """The policy of a group whose GroupContext has ``group_extensions``."""
        return cls(
            validate_credential=validate_credential,
            now=now,
            required_capabilities=RequiredCapabilities.find_in(group_extensions),
            max_lifetime=max_lifetime,
        )

    def check_fields(self, leaf: LeafNode) -> None:
        """The checks of RFC 9420 §7.3 that look at ``leaf`` alone.

        The credential, the capabilities against the group's requirements,
        the lifetime and the extensions. The signature, the source and the
        checks against other members are :meth:`PublicTree.check_leaf_node`'s.
        """
        caps = leaf.capabilities
        if not self.validate_credential(leaf.credential, leaf.signature_key):
            raise ValidationError("leaf node credential rejected (RFC 9420 §5.3.1)")
        # RFC 9420 §7.2: the credential type in use MUST be in capabilities.
        if leaf.credential.credential_type not in caps.credentials:
            raise ValidationError("leaf node does not list its own credential type")
        # RFC 9420 §7.3: every extension is listed in capabilities (§7.2:
        # the default types are never listed), and §13.4: no duplicates.
        check_unique_extensions(leaf.extensions)
        for ext in leaf.extensions:
            t = ext.extension_type
            if t not in DEFAULT_EXTENSION_TYPES and t not in caps.extensions:
                raise ValidationError(f"leaf node extension 0x{t:04x} is not in its capabilities")
        required = self.required_capabilities
        if required is not None:
            # RFC 9420 §11.1: required types MUST be listed (defaults always are).
            for t in required.extension_types:
                if t not in DEFAULT_EXTENSION_TYPES and t not in caps.extensions:
                    raise ValidationError(f"leaf node lacks required extension 0x{t:04x}")
            for t in required.proposal_types:
                if t not in DEFAULT_PROPOSAL_TYPES and t not in caps.proposals:
                    raise ValidationError(f"leaf node lacks required proposal 0x{t:04x}")
            for t in required.credential_types:
                if t not in caps.credentials:
                    raise ValidationError(f"leaf node lacks required credential 0x{t:04x}")
        lifetime = leaf.lifetime
        if lifetime is not None:
            if self.now is not None and not lifetime.contains(self.now):
                raise ValidationError("leaf node lifetime does not include the current time")
            if (
                self.max_lifetime is not None
                and lifetime.not_after - lifetime.not_before > self.max_lifetime
            ):
                raise ValidationError("leaf node lifetime is longer than the maximum")


# -- encodings for the hashes (RFC 9420 §7.8, §7.9) -------------------------


def _level(x: int) -> int:
    y = x + 1
    return (y & -y).bit_length() - 1


def _leaf_hash_input(leaf_index: int, leaf_bytes: bytes | None) -> bytes:
    """``TreeHashInput`` of a leaf: ``LeafNodeHashInput`` (RFC 9420 §7.8)."""
    head = b"\x01" + leaf_index.to_bytes(4, "big")
    return head + b"\x00" if leaf_bytes is None else head + b"\x01" + leaf_bytes


def _parent_hash_input(parent: ParentNode | None, left_hash: bytes, right_hash: bytes) -> bytes:
    """``TreeHashInput`` of a parent: ``ParentNodeHashInput`` (RFC 9420 §7.8)."""
    node = b"\x02\x00" if parent is None else b"\x02\x01" + parent.to_bytes()
    return node + vl_bytes(left_hash) + vl_bytes(right_hash)


def _hash_constructor(suite: CipherSuite) -> Callable[[bytes], Any]:
    """The hashlib constructor of the suite's hash, for loops over many nodes."""
    return cast("Callable[[bytes], Any]", getattr(hashlib, suite.hash_name))


def _public_key_check(suite: CipherSuite) -> Callable[[bytes], bool]:
    """A test of HPKE public keys for ``suite`` (RFC 9180 §7.1.4).

    For X25519 and X448 it checks the length and refuses the points of
    small order, without parsing (it spares a joiner parsing thousands of
    keys): a key of small order would make every path secret encrypted to
    it fail (RFC 9420 §7.3: the encryption key is a valid HPKE public key).
    Other KEMs parse the point.
    """
    return suite.hpke.is_valid_public_key


def _leaf_signed_message(leaf: LeafNode, group_id: bytes, leaf_index: int) -> bytes:
    """The ``SignContent`` of a leaf node's signature (RFC 9420 §5.1.2, §7.2).

    ``LeafNodeTBS`` is the encoded LeafNode without its trailing signature,
    followed by ``group_id`` and ``leaf_index`` for the update and commit
    sources: a slice of the leaf's kept encoding.
    """
    return _LEAF_TBS_LABEL + vl_bytes(leaf.tbs_bytes(group_id, leaf_index))


class PublicTree:
    """A group's ratchet tree: public keys, credentials and hashes (RFC 9420 §7).

    Build one with :meth:`create` (a new group), :meth:`from_ratchet_tree`
    (joining: decode and validate) or :meth:`from_nodes` (trusted or test
    input, structure checked only). Node indices are those of the array
    representation (RFC 9420 Appendix C); leaf ``i`` is node ``2 * i``.
    """

    __slots__ = (
        "_cred_supported",
        "_cred_used",
        "_enc_keys",
        "_filled",
        "_hashes",
        "_n_leaves",
        "_n_members",
        "_nodes",
        "_occupied",
        "_sig_keys",
        "_suite",
    )

    _suite: CipherSuite
    _nodes: list[NodeValue]
    _n_leaves: int
    #: Cached tree hash per node; ``None`` if stale. If a node's entry is
    #: ``None`` so are its ancestors', so invalidation can stop early.
    _hashes: list[bytes | None]
    #: Number of non-blank nodes in the subtree under each node: an empty
    #: resolution (RFC 9420 §4.1.1) is a zero here, found in O(1).
    _filled: list[int]
    #: Number of non-blank leaves under each node: finds the leftmost blank
    #: leaf in O(log n).
    _occupied: list[int]
    #: Encryption key -> node index, over all non-blank nodes.
    _enc_keys: dict[bytes, int]
    #: Signature key -> leaf index, over all members.
    _sig_keys: dict[bytes, int]
    _n_members: int
    #: Credential type -> number of members using it / listing it.
    _cred_used: dict[int, int]
    _cred_supported: dict[int, int]

    # -- construction ----------------------------------------------------------

    def __init__(self, suite: CipherSuite, nodes: Sequence[NodeValue]) -> None:
        """A tree from node values in array order; see :meth:`from_nodes`."""
        if not nodes:
            raise ValidationError("a ratchet tree has at least one node")
        for x, value in enumerate(nodes):
            if value is None:
                continue
            want = ParentNode if x & 1 else LeafNode
            if not isinstance(value, want):
                kind = "parent" if x & 1 else "leaf"
                raise ValidationError(f"node {x} must be a {kind} node (RFC 9420 §12.4.3.3)")
        n_leaves = 1
        while 2 * n_leaves - 1 < len(nodes):
            n_leaves *= 2
        width = 2 * n_leaves - 1
        self._suite = suite
        self._nodes = list(nodes) + [None] * (width - len(nodes))
        self._n_leaves = n_leaves
        self._hashes = [None] * width
        self._filled = [0] * width
        self._occupied = [0] * width
        self._index_all()
        self._count_filled()

    @classmethod
    def from_nodes(cls, suite: CipherSuite, nodes: Sequence[NodeValue]) -> PublicTree:
        """A tree from node values in array order, blanks as ``None``.

        Only the structure is checked: leaves at even indices, parents at odd
        ones, no encryption or signature key used twice. The array is padded
        with blanks to a full tree. Nothing here is verified: a tree received
        from anyone else goes through :meth:`validate`, or use
        :meth:`from_ratchet_tree`.
        """
        return cls(suite, nodes)

    @classmethod
    def from_ratchet_tree_unverified(cls, suite: CipherSuite, body: RatchetTree) -> PublicTree:
        """The tree in a ``ratchet_tree`` extension, structure checked only."""
        return cls(suite, body.values)

    @classmethod
    def from_ratchet_tree(
        cls,
        suite: CipherSuite,
        body: RatchetTree,
        *,
        group_id: bytes,
        tree_hash: bytes,
        policy: LeafNodePolicy,
        verify_signatures: SignatureBatchVerifier = verify_signatures_sequentially,
    ) -> PublicTree:
        """The tree of a group being joined, fully validated (RFC 9420 §12.4.3.1).

        ``tree_hash`` is the one in the GroupInfo's GroupContext. See
        :meth:`validate` for what is checked.
        """
        tree = cls(suite, body.values)
        tree.validate(
            group_id=group_id,
            tree_hash=tree_hash,
            policy=policy,
            verify_signatures=verify_signatures,
        )
        return tree

    @classmethod
    def create(cls, suite: CipherSuite, leaf_node: LeafNode) -> PublicTree:
        """The one-leaf tree of a new group (RFC 9420 §11)."""
        return cls(suite, [leaf_node])

    def copy(self) -> PublicTree:
        """An independent tree with the same nodes (shared, they are immutable).

        The tree hashes are computed first, here, if they are not yet known
        (a tree just loaded): then the copy's changes rehash only their
        paths, and so do those of the next copy.
        """
        if self._hashes[self._n_leaves - 1] is None:
            self.tree_hash()
        new = PublicTree.__new__(PublicTree)
        new._suite = self._suite
        new._nodes = self._nodes.copy()
        new._n_leaves = self._n_leaves
        new._hashes = self._hashes.copy()
        new._filled = self._filled.copy()
        new._occupied = self._occupied.copy()
        new._enc_keys = self._enc_keys.copy()
        new._sig_keys = self._sig_keys.copy()
        new._n_members = self._n_members
        new._cred_used = self._cred_used.copy()
        new._cred_supported = self._cred_supported.copy()
        return new

    def to_ratchet_tree(self) -> RatchetTree:
        """The ``ratchet_tree`` extension body, without trailing blanks (§12.4.3.3)."""
        return RatchetTree.from_values(self._nodes)

    def encode_ratchet_tree(self) -> bytes:
        """``to_ratchet_tree().to_bytes()``, straight from the nodes."""
        return encode_node_values(self._nodes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicTree):
            return NotImplemented
        return self._suite.suite_id == other._suite.suite_id and self._nodes == other._nodes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"<PublicTree suite={self._suite.suite_id} leaves={self._n_leaves} "
            f"members={self._n_members}>"
        )

    # -- reading ---------------------------------------------------------------

    @property
    def suite(self) -> CipherSuite:
        return self._suite

    @property
    def n_leaves(self) -> int:
        """The number of leaves, blank or not: a power of two (RFC 9420 §4.1)."""
        return self._n_leaves

    @property
    def width(self) -> int:
        """The number of nodes: ``2 * n_leaves - 1``."""
        return len(self._nodes)

    @property
    def root(self) -> int:
        """The node index of the root."""
        return self._n_leaves - 1

    def member_count(self) -> int:
        """The number of non-blank leaves."""
        return self._n_members

    def node(self, x: int) -> NodeValue:
        """The value of node ``x``; :class:`UsageError` outside the tree."""
        if not 0 <= x < len(self._nodes):
            raise UsageError(f"node {x} is outside a tree of {len(self._nodes)} nodes")
        return self._nodes[x]

    def leaf(self, leaf_index: int) -> LeafNode | None:
        """The leaf node at ``leaf_index``; ``None`` if blank or past the last leaf."""
        if leaf_index < 0:
            raise UsageError(f"negative leaf index {leaf_index}")
        if leaf_index >= self._n_leaves:
            return None
        value = self._nodes[2 * leaf_index]
        assert value is None or isinstance(value, LeafNode)
        return value

    def parent(self, x: int) -> ParentNode | None:
        """The parent node at node index ``x`` (odd); ``None`` if blank."""
        value = self.node(x)
        if not x & 1:
            raise UsageError(f"node {x} is a leaf, not a parent")
        assert value is None or isinstance(value, ParentNode)
        return value

    def members(self) -> Iterator[tuple[int, LeafNode]]:
        """``(leaf_index, leaf_node)`` for every non-blank leaf, left to right."""
        nodes = self._nodes
        for x in range(0, len(nodes), 2):
            value = nodes[x]
            if value is not None:
                assert isinstance(value, LeafNode)
                yield x >> 1, value

    def find_leaf_by_signature_key(self, signature_key: bytes) -> int | None:
        """The leaf index of the member with this signature key, if any."""
        return self._sig_keys.get(bytes(signature_key))

    def find_leaf(self, leaf_node: LeafNode) -> int | None:
        """The leaf index holding exactly ``leaf_node`` (RFC 9420 §12.4.3.1), if any."""
        index = self._sig_keys.get(leaf_node.signature_key)
        if index is None or self._nodes[2 * index] != leaf_node:
            return None
        return index

    def find_node_by_encryption_key(self, encryption_key: bytes) -> int | None:
        """The node index whose encryption key this is, if any."""
        return self._enc_keys.get(bytes(encryption_key))

    def next_free_leaf(self) -> int:
        """The leftmost blank leaf, or ``n_leaves`` if there is none (RFC 9420 §12.1.1)."""
        leaf_index = self._first_blank_leaf()
        return self._n_leaves if leaf_index < 0 else leaf_index

    def _first_blank_leaf(self) -> int:
        """The leftmost blank leaf, or -1: down from the root, O(log n)."""
        if self._n_members == self._n_leaves:
            return -1
        occupied = self._occupied
        x = self._n_leaves - 1
        while x & 1:
            half = 1 << (_level(x) - 1)
            left = x - half
            x = left if occupied[left] < half else x + half  # half = leaves under left
        return x >> 1

    # -- paths and resolutions (RFC 9420 §4.1) ---------------------------------

    def resolution(self, x: int, *, exclude: Collection[int] = ()) -> list[int]:
        """The resolution of node ``x`` as node indices (RFC 9420 §4.1.1).

        Leaves in ``exclude`` (leaf indices: the members added by the commit
        being made, RFC 9420 §12.4.2) are left out, as leaves and as unmerged
        leaves.
        """
        self.node(x)
        out: list[int] = []
        self._resolve(x, frozenset(exclude), out)
        return out

    def _resolve(self, x: int, exclude: frozenset[int], out: list[int]) -> None:
        if not self._filled[x]:
            return
        value = self._nodes[x]
        if value is not None:
            if x & 1:
                assert isinstance(value, ParentNode)
                out.append(x)
                out.extend(2 * u for u in value.unmerged_leaves if u not in exclude)
            elif x >> 1 not in exclude:
                out.append(x)
            return
        k = _level(x)
        self._resolve(x ^ (1 << (k - 1)), exclude, out)
        self._resolve(x ^ (3 << (k - 1)), exclude, out)

    def _resolution_of_size(self, x: int, size: int) -> list[int] | None:
        """The resolution of ``x`` if it has exactly ``size`` entries, else ``None``.

        Stops as soon as the resolution is known to be longer: verifying
        parent hashes asks this of every child of every parent node.
        """
        out: list[int] = []
        stack = [x]
        nodes, filled = self._nodes, self._filled
        while stack:
            y = stack.pop()
            if not filled[y]:
                continue
            value = nodes[y]
            if value is None:
                k = _level(y)
                stack.append(y ^ (3 << (k - 1)))  # right after left: LIFO
                stack.append(y ^ (1 << (k - 1)))
                continue
            out.append(y)
            if isinstance(value, ParentNode):
                out.extend(2 * u for u in value.unmerged_leaves)
            if len(out) > size:
                return None
        return out if len(out) == size else None

    def filtered_direct_path(self, leaf_index: int) -> list[int]:
        """The filtered direct path of a leaf, as node indices (RFC 9420 §4.1.2).

        The direct path without the nodes whose copath child has an empty
        resolution (unmerged leaves count).
        """
        self._check_leaf_index(leaf_index)
        x = 2 * leaf_index
        n = self._n_leaves
        filled = self._filled
        return [
            p
            for p, c in zip(treemath.direct_path(x, n), treemath.copath(x, n), strict=True)
            if filled[c]
        ]

    def _check_leaf_index(self, leaf_index: int) -> None:
        if not 0 <= leaf_index < self._n_leaves:
            raise UsageError(f"leaf {leaf_index} is outside a tree of {self._n_leaves} leaves")

    # -- tree hashes (RFC 9420 §7.8) --------------------------------------------

    def tree_hash(self) -> bytes:
        """The tree hash of the root (RFC 9420 §7.8): the GroupContext's ``tree_hash``."""
        root = self._n_leaves - 1
        hashes = self._hashes
        if hashes[root] is None:
            # Mostly stale (a tree just built): level by level. A sample of
            # nodes tells, where counting them all would cost a scan.
            sample = hashes[:: max(1, len(hashes) // _STALE_SAMPLE)]
            if 2 * sample.count(None) > len(sample):
                self._hash_all()
        return self._tree_hash(root)

    def _hash_all(self) -> None:
        """Fill in every stale tree hash, bottom up, one level at a time.

        The same hashes as :meth:`_tree_hash`, with no recursion: for a tree
        that was just built (joining a group) or largely changed.
        """
        nodes, hashes = self._nodes, self._hashes
        width = len(nodes)
        new = _hash_constructor(self._suite)
        for x in range(0, width, 2):
            if hashes[x] is None:
                leaf = nodes[x]
                head = b"\x01" + (x >> 1).to_bytes(4, "big")
                if leaf is None:
                    hashes[x] = new(head + b"\x00").digest()
                else:
                    hashes[x] = new(head + b"\x01" + leaf.to_bytes()).digest()
        # Every child hash is KDF.Nh bytes: one length prefix for all.
        length = encode_varint(self._suite.hash_len)
        k = 1
        while (1 << k) - 1 < width:
            half = 1 << (k - 1)
            for p in range((1 << k) - 1, width, 1 << (k + 1)):
                if hashes[p] is None:
                    left = hashes[p - half]
                    right = hashes[p + half]
                    assert left is not None and right is not None
                    parent = nodes[p]
                    node = b"\x02\x00" if parent is None else b"\x02\x01" + parent.to_bytes()
                    hashes[p] = new(node + length + left + length + right).digest()
            k += 1

    def node_tree_hash(self, x: int) -> bytes:
        """The tree hash of the subtree under node ``x``."""
        self.node(x)
        return self._tree_hash(x)

    def _tree_hash(self, x: int) -> bytes:
        cached = self._hashes[x]
        if cached is not None:
            return cached
        value = self._nodes[x]
        if x & 1:
            k = _level(x)
            left = self._tree_hash(x ^ (1 << (k - 1)))
            right = self._tree_hash(x ^ (3 << (k - 1)))
            assert value is None or isinstance(value, ParentNode)
            digest = self._suite.hash(_parent_hash_input(value, left, right))
        else:
            leaf_bytes = None if value is None else value.to_bytes()
            digest = self._suite.hash(_leaf_hash_input(x >> 1, leaf_bytes))
        self._hashes[x] = digest
        return digest

    def _original_tree_hash(self, x: int, excluded: Sequence[int]) -> bytes:
        """Tree hash of ``x`` with the leaves ``excluded`` blanked and removed
        from every ``unmerged_leaves`` list (RFC 9420 §7.9).

        ``excluded`` is sorted; a subtree that holds none of them keeps its
        cached hash, so the work is O(len(excluded) * log n).
        """
        k = _level(x)
        first = (x - (1 << k) + 1) >> 1
        i = bisect_left(excluded, first)
        if i == len(excluded) or excluded[i] >= first + (1 << k):
            return self._tree_hash(x)
        value = self._nodes[x]
        if not x & 1:  # an excluded leaf: hashed as blank
            return self._suite.hash(_leaf_hash_input(x >> 1, None))
        if value is not None:
            assert isinstance(value, ParentNode)
            kept = tuple(u for u in value.unmerged_leaves if u not in excluded)
            value = replace(value, unmerged_leaves=kept)
        left = self._original_tree_hash(x ^ (1 << (k - 1)), excluded)
        right = self._original_tree_hash(x ^ (3 << (k - 1)), excluded)
        return self._suite.hash(_parent_hash_input(value, left, right))

    # -- parent hashes (RFC 9420 §7.9) ------------------------------------------

    def _parent_hash(self, encryption_key: bytes, parent_hash: bytes, sibling_hash: bytes) -> bytes:
        """The hash of a ``ParentHashInput`` (RFC 9420 §7.9)."""
        return self._suite.hash(
            vl_bytes(encryption_key) + vl_bytes(parent_hash) + vl_bytes(sibling_hash)
        )

    def _path_parent_hashes(
        self, leaf_index: int, encryption_keys: Sequence[bytes]
    ) -> tuple[list[int], list[bytes], bytes]:
        """The filtered direct path, the ``parent_hash`` of each of its nodes
        once ``encryption_keys`` are set on them, and the leaf's parent hash.

        Computed from the root down (RFC 9420 §7.9). The sibling hashes are
        those of the copath children, which a path does not change, and the
        new path nodes have no unmerged leaves, so the original sibling tree
        hash is the current one.
        """
        fdp = self.filtered_direct_path(leaf_index)
        if len(encryption_keys) != len(fdp):
            raise ValidationError(
                f"UpdatePath has {len(encryption_keys)} nodes, the filtered direct "
                f"path of leaf {leaf_index} has {len(fdp)} (RFC 9420 §7.6)"
            )
        x = 2 * leaf_index
        hashes = [b""] * len(fdp)
        above = b""  # the topmost node's parent_hash is empty (RFC 9420 §7.9)
        for i in range(len(fdp) - 1, -1, -1):
            p = fdp[i]
            hashes[i] = above
            k = _level(p)
            sibling = p ^ (3 << (k - 1)) if x < p else p ^ (1 << (k - 1))
            above = self._parent_hash(encryption_keys[i], above, self._tree_hash(sibling))
        return fdp, hashes, above

    def path_parent_hash(self, leaf_index: int, encryption_keys: Sequence[bytes]) -> bytes:
        """The ``parent_hash`` a committer's new leaf must carry (RFC 9420 §7.9).

        ``encryption_keys`` are the new public keys of the leaf's filtered
        direct path, bottom up. :meth:`apply_update_path` checks it.
        """
        return self._path_parent_hashes(leaf_index, encryption_keys)[2]

    def verify_parent_hashes(self) -> None:
        """Check that every non-blank parent node is parent-hash valid (§7.9.2).

        Top down: each non-blank parent P must have exactly one node D below
        it, in the resolution of one child C, whose ``parent_hash`` is P's
        parent hash with the other child S as sibling, and such that P's
        unmerged leaves under C are the rest of that resolution. Raises
        :class:`ValidationError` naming the first parent that fails.
        """
        nodes = self._nodes
        new = _hash_constructor(self._suite)
        hash_len = self._suite.hash_len
        length = encode_varint(hash_len)
        for p in range(1, len(nodes), 2):
            value = nodes[p]
            if value is None:
                continue
            assert isinstance(value, ParentNode)
            half = ((p + 1) & -(p + 1)) >> 1  # 1 << (level(p) - 1)
            unmerged = value.unmerged_leaves
            excluded = sorted(unmerged)
            # ParentHashInput (RFC 9420 §7.9) up to the sibling's tree hash.
            head = vl_bytes(value.encryption_key) + vl_bytes(value.parent_hash)
            matches = 0
            for c, s in ((p - half, p + half), (p + half, p - half)):
                child = nodes[c]
                if unmerged or child is None:
                    d = self._parent_hash_candidate(c, unmerged)
                elif isinstance(child, ParentNode) and child.unmerged_leaves:
                    d = -1
                else:
                    d = c  # the common case: D is C (see _parent_hash_candidate)
                if d < 0:
                    continue
                d_value = nodes[d]
                assert d_value is not None
                found = d_value.parent_hash
                if found is None or len(found) != hash_len:  # cannot be a parent hash
                    continue
                sibling = self._original_tree_hash(s, excluded) if unmerged else self._tree_hash(s)
                if found == new(head + length + sibling).digest():
                    matches += 1
            if matches != 1:
                raise ValidationError(f"parent node {p} is not parent-hash valid (RFC 9420 §7.9.2)")

    def _parent_hash_candidate(self, c: int, unmerged: Sequence[int]) -> int:
        """The one node D under ``c`` that may carry its parent's parent hash, or -1.

        RFC 9420 §7.9.2: D is in the resolution of C, and the parent's
        unmerged leaves under C are the rest of that resolution; so D is
        the resolution minus those leaves, if that leaves exactly one node.
        """
        value = self._nodes[c]
        under_c: list[int] = []
        if unmerged:
            below = treemath.leaf_range(c)
            under_c = sorted(2 * u for u in unmerged if u in below)
        if value is not None and not under_c:  # the common case: D is C
            if isinstance(value, ParentNode) and value.unmerged_leaves:
                return -1
            return c
        resolution = self._resolution_of_size(c, len(under_c) + 1)
        if resolution is None:
            return -1
        rest = [y for y in resolution if y not in under_c]
        if len(rest) != 1 or sorted(y for y in resolution if y != rest[0]) != under_c:
            return -1
        return rest[0]

    # -- validation (RFC 9420 §7.3, §12.4.3.1) ----------------------------------

    def check_leaf_node(
        self,
        leaf: LeafNode,
        *,
        source: LeafNodeSource,
        policy: LeafNodePolicy,
        group_id: bytes | None = None,
        leaf_index: int | None = None,
    ) -> None:
        """Validate a leaf node arriving in a message (RFC 9420 §7.3).

        * ``source=KEY_PACKAGE``: the leaf of an Add's KeyPackage (its
          signature binds no group, so no ``group_id`` or ``leaf_index``).
        * ``source=UPDATE``: an Update proposal's leaf; ``leaf_index`` is the
          sender's.
        * ``source=COMMIT``: the leaf of a commit's UpdatePath; ``leaf_index``
          is the committer's (for an external commit, the leaf it is given).

        The leaf at ``leaf_index`` is the one being replaced: its signature key
        may be kept, its encryption key may not. Checks the source, the
        signature, :meth:`LeafNodePolicy.check_fields`, the encryption key's
        validity, that the credential type is supported by every other member
        and that every credential type in use is supported by this leaf, and
        that neither key is in use by anyone else. Raises
        :class:`ValidationError` or, for the signature (checked last, as the
        dearest), :class:`AuthenticationError`.
        """
        if leaf.leaf_node_source != source:
            raise ValidationError(
                f"leaf node source is {leaf.leaf_node_source.name.lower()}, "
                f"expected {source.name.lower()} (RFC 9420 §7.3)"
            )
        if source != LeafNodeSource.KEY_PACKAGE and (group_id is None or leaf_index is None):
            raise UsageError(
                "an update or commit leaf node is checked with group_id and leaf_index"
            )
        if not _public_key_check(self._suite)(leaf.encryption_key):
            raise ValidationError("leaf node encryption key is not a valid HPKE public key")
        self._suite.check_signature_public_key(leaf.signature_key)  # RFC 9420 §5.1.1
        # Uniqueness (RFC 9420 §7.3): the encryption key is new to the tree,
        # which covers "different from the leaf being replaced" for updates.
        if leaf.encryption_key in self._enc_keys:
            raise ValidationError("leaf node encryption key is already in the tree")
        holder = self._sig_keys.get(leaf.signature_key)
        if holder is not None and holder != leaf_index:
            raise ValidationError(f"leaf node signature key is already used by leaf {holder}")
        policy.check_fields(leaf)
        self._check_credential_support(leaf, leaf_index)
        if not leaf.verify_signature(self._suite, group_id, leaf_index):
            raise AuthenticationError("leaf node signature does not verify (RFC 9420 §7.2)")

    def _check_credential_support(self, leaf: LeafNode, leaf_index: int | None) -> None:
        """RFC 9420 §7.3: credential types against the other members'."""
        used = dict(self._cred_used)
        supported = dict(self._cred_supported)
        others = self._n_members
        old = None if leaf_index is None else self.leaf(leaf_index)
        if old is not None:
            others -= 1
            used[old.credential.credential_type] -= 1
            for t in set(old.capabilities.credentials):
                supported[t] -= 1
        ctype = leaf.credential.credential_type
        if supported.get(ctype, 0) != others:
            raise ValidationError(
                f"credential type {ctype} is not supported by every member (RFC 9420 §7.3)"
            )
        for t, count in used.items():
            if count and t not in leaf.capabilities.credentials:
                raise ValidationError(
                    f"leaf node does not support credential type {t}, used in the group"
                )

    def validate(
        self,
        *,
        group_id: bytes,
        tree_hash: bytes,
        policy: LeafNodePolicy,
        verify_signatures: SignatureBatchVerifier = verify_signatures_sequentially,
    ) -> None:
        """Validate a whole tree, as a joiner must (RFC 9420 §12.4.3.1).

        * the root tree hash is ``tree_hash``;
        * every non-blank parent node is parent-hash valid (§7.9.2);
        * every leaf node is valid (§7.3): the policy's checks, the signature
          with ``group_id`` and its leaf index, credential types supported by
          every member, valid HPKE keys;
        * unmerged leaves are sorted, non-blank descendants of their parent,
          and listed by every non-blank node in between;
        * no encryption key appears twice and no signature key is used by two
          members (checked when the tree was built).

        Raises :class:`ValidationError` or :class:`AuthenticationError`. The
        signatures are checked last, in one batch by ``verify_signatures``.
        """
        suite = self._suite
        nodes = self._nodes
        if self.tree_hash() != tree_hash:
            raise ValidationError("the tree hash does not match the GroupContext (§12.4.3.1)")
        self.verify_parent_hashes()
        self._check_unmerged_leaves()
        is_valid_key = _public_key_check(suite)
        for x, value in enumerate(nodes):
            if value is not None and not is_valid_key(value.encryption_key):
                raise ValidationError(f"node {x} has an invalid HPKE public key")
        checks: list[tuple[bytes, bytes, bytes]] = []
        signers: list[int] = []
        for leaf_index, leaf in self.members():
            checks.append(
                (
                    leaf.signature_key,
                    _leaf_signed_message(leaf, group_id, leaf_index),
                    leaf.signature,
                )
            )
            signers.append(leaf_index)
        for leaf_index, leaf in self.members():
            try:
                suite.check_signature_public_key(leaf.signature_key)  # RFC 9420 §5.1.1
                policy.check_fields(leaf)
            except ValidationError as exc:
                raise ValidationError(f"leaf {leaf_index}: {exc}") from None
        for t, count in self._cred_used.items():
            if count and self._cred_supported.get(t, 0) != self._n_members:
                raise ValidationError(
                    f"credential type {t} is in use but not supported by every member"
                )
        results = verify_signatures(suite, checks)
        if len(results) != len(checks):
            raise UsageError("the signature verifier returned the wrong number of results")
        for leaf_index, ok in zip(signers, results, strict=True):
            if not ok:
                raise AuthenticationError(f"the signature of leaf {leaf_index} does not verify")

    def _check_unmerged_leaves(self) -> None:
        """The ``unmerged_leaves`` rules of RFC 9420 §7.1 and §12.4.3.1."""
        nodes = self._nodes
        n = self._n_leaves
        for p in range(1, len(nodes), 2):
            value = nodes[p]
            if not isinstance(value, ParentNode) or not value.unmerged_leaves:
                continue
            below = treemath.leaf_range(p)
            previous = -1
            for u in value.unmerged_leaves:
                if u <= previous:
                    raise ValidationError(f"unmerged leaves of node {p} are not sorted")
                previous = u
                if u not in below:
                    raise ValidationError(f"unmerged leaf {u} of node {p} is not below it")
                if nodes[2 * u] is None:
                    raise ValidationError(f"unmerged leaf {u} of node {p} is blank")
                for q in treemath.direct_path(2 * u, n):
                    if q == p:
                        break
                    between = nodes[q]
                    if between is not None:
                        assert isinstance(between, ParentNode)
                        if u not in between.unmerged_leaves:
                            raise ValidationError(
                                f"unmerged leaf {u} of node {p} is missing at node {q}"
                            )

    # -- changing the tree (RFC 9420 §7.5, §7.7, §12.1) ------------------------

    def add_leaf(self, leaf_node: LeafNode) -> int:
        """Add a member (RFC 9420 §12.1.1); return its leaf index.

        The leftmost blank leaf, or the first new one after extending the
        tree (§7.7). The new leaf becomes unmerged at every non-blank parent
        above it.
        """
        if leaf_node.encryption_key in self._enc_keys:
            raise ValidationError("the new leaf's encryption key is already in the tree")
        if leaf_node.signature_key in self._sig_keys:
            raise ValidationError("the new leaf's signature key is already in the tree")
        leaf_index = self._first_blank_leaf()
        if leaf_index < 0:
            leaf_index = self._n_leaves
            self._extend()
        x = 2 * leaf_index
        for p in treemath.direct_path(x, self._n_leaves):
            value = self._nodes[p]
            if value is not None:
                assert isinstance(value, ParentNode)
                unmerged = list(value.unmerged_leaves)
                i = bisect_left(unmerged, leaf_index)
                if i == len(unmerged) or unmerged[i] != leaf_index:
                    unmerged.insert(i, leaf_index)
                self._set(p, replace(value, unmerged_leaves=tuple(unmerged)))
        self._set(x, leaf_node)
        return leaf_index

    def update_leaf(self, leaf_index: int, leaf_node: LeafNode) -> None:
        """Apply an Update proposal (RFC 9420 §12.1.2).

        Replace the member's leaf and blank the parent nodes above it.
        """
        self._require_member(leaf_index)
        if leaf_node.encryption_key in self._enc_keys:
            raise ValidationError("the updated leaf's encryption key is already in the tree")
        holder = self._sig_keys.get(leaf_node.signature_key)
        if holder is not None and holder != leaf_index:
            raise ValidationError(f"the updated leaf's signature key is used by leaf {holder}")
        x = 2 * leaf_index
        self._set(x, leaf_node)
        for p in treemath.direct_path(x, self._n_leaves):
            self._set(p, None)

    def remove_leaf(self, leaf_index: int) -> None:
        """Apply a Remove proposal (RFC 9420 §12.1.3).

        Blank the leaf and its direct path, then truncate the tree while its
        right half is empty (§7.7).
        """
        self._require_member(leaf_index)
        x = 2 * leaf_index
        self._set(x, None)
        for p in treemath.direct_path(x, self._n_leaves):
            self._set(p, None)
        self._truncate()

    def reserve_free_leaf(self) -> int:
        """The leaf an external committer takes (RFC 9420 §12.4.2, §12.4.3.2).

        The leftmost blank leaf; if there is none, the tree is extended and
        the first new leaf is returned. The leaf stays blank until the
        commit's UpdatePath is applied there.
        """
        leaf_index = self._first_blank_leaf()
        if leaf_index < 0:
            leaf_index = self._n_leaves
            self._extend()
        return leaf_index

    def apply_update_path(
        self, leaf_index: int, leaf_node: LeafNode, encryption_keys: Sequence[bytes]
    ) -> None:
        """Merge the public part of an UpdatePath into the tree (RFC 9420 §7.5).

        Blank the direct path of ``leaf_index``, set ``encryption_keys`` on
        its filtered direct path (bottom up) with fresh parent hashes and no
        unmerged leaves, and put ``leaf_node`` in the leaf. Checks first that
        the leaf's ``parent_hash`` is the one computed (§7.9.2) and that no
        new key is already in the tree or repeated (§12.4.2); on failure the
        tree is unchanged. The leaf node itself is checked by
        :meth:`check_leaf_node`.
        """
        fdp, parent_hashes, leaf_parent_hash = self._path_parent_hashes(leaf_index, encryption_keys)
        if leaf_node.leaf_node_source != LeafNodeSource.COMMIT:
            raise ValidationError("an UpdatePath leaf node must have the commit source")
        if leaf_node.parent_hash != leaf_parent_hash:
            raise ValidationError("the UpdatePath leaf's parent_hash is wrong (RFC 9420 §7.9.2)")
        new_keys = [leaf_node.encryption_key, *encryption_keys]
        if len(set(new_keys)) != len(new_keys):
            raise ValidationError("an UpdatePath repeats an encryption key")
        for key in new_keys:
            if key in self._enc_keys:
                raise ValidationError("an UpdatePath key is already in the tree (§12.4.2)")
        is_valid_key = _public_key_check(self._suite)
        for key in encryption_keys:
            if not is_valid_key(key):
                raise ValidationError("an UpdatePath key is not a valid HPKE public key")
        holder = self._sig_keys.get(leaf_node.signature_key)
        if holder is not None and holder != leaf_index:
            raise ValidationError(f"the UpdatePath leaf's signature key is used by leaf {holder}")
        x = 2 * leaf_index
        for p in treemath.direct_path(x, self._n_leaves):
            self._set(p, None)
        for p, key, parent_hash in zip(fdp, encryption_keys, parent_hashes, strict=True):
            self._set(p, ParentNode(key, parent_hash, ()))
        self._set(x, leaf_node)

    def _require_member(self, leaf_index: int) -> None:
        if leaf_index < 0 or leaf_index >= self._n_leaves or self._nodes[2 * leaf_index] is None:
            raise ValidationError(f"leaf {leaf_index} is not a member")

    # -- internals ----------------------------------------------------------------

    def _index_node(self, x: int, value: LeafNode | ParentNode) -> None:
        """Record ``value``'s keys and credential data; it is going to node ``x``."""
        holder = self._enc_keys.get(value.encryption_key)
        if holder is not None and holder != x:
            raise ValidationError(f"nodes {holder} and {x} share an encryption key")
        if isinstance(value, LeafNode):
            signer = self._sig_keys.get(value.signature_key)
            if signer is not None and signer != x >> 1:
                raise ValidationError(f"leaves {signer} and {x >> 1} share a signature key")
            self._sig_keys[value.signature_key] = x >> 1
            self._n_members += 1
            ctype = value.credential.credential_type
            self._cred_used[ctype] = self._cred_used.get(ctype, 0) + 1
            for t in set(value.capabilities.credentials):
                self._cred_supported[t] = self._cred_supported.get(t, 0) + 1
        self._enc_keys[value.encryption_key] = x

    def _index_all(self) -> None:
        """:meth:`_index_node` for every node of a new tree, in one pass."""
        enc_keys: dict[bytes, int] = {}
        sig_keys: dict[bytes, int] = {}
        cred_used: dict[int, int] = {}
        cred_supported: dict[int, int] = {}
        #: Distinct credential types per Capabilities value (decoding shares them).
        supported_by: dict[int, set[int]] = {}
        n_members = 0
        for x, value in enumerate(self._nodes):
            if value is None:
                continue
            holder = enc_keys.get(value.encryption_key)
            if holder is not None:
                raise ValidationError(f"nodes {holder} and {x} share an encryption key")
            if not x & 1:
                assert isinstance(value, LeafNode)
                signer = sig_keys.get(value.signature_key)
                if signer is not None:
                    raise ValidationError(f"leaves {signer} and {x >> 1} share a signature key")
                sig_keys[value.signature_key] = x >> 1
                n_members += 1
                ctype = value.credential.credential_type
                cred_used[ctype] = cred_used.get(ctype, 0) + 1
                caps = value.capabilities
                types = supported_by.get(id(caps))
                if types is None:
                    types = supported_by[id(caps)] = set(caps.credentials)
                for t in types:
                    cred_supported[t] = cred_supported.get(t, 0) + 1
            enc_keys[value.encryption_key] = x
        self._enc_keys = enc_keys
        self._sig_keys = sig_keys
        self._n_members = n_members
        self._cred_used = cred_used
        self._cred_supported = cred_supported

    def _unindex_node(self, x: int, value: LeafNode | ParentNode) -> None:
        if self._enc_keys.get(value.encryption_key) == x:
            del self._enc_keys[value.encryption_key]
        if isinstance(value, LeafNode):
            if self._sig_keys.get(value.signature_key) == x >> 1:
                del self._sig_keys[value.signature_key]
            self._n_members -= 1
            self._cred_used[value.credential.credential_type] -= 1
            for t in set(value.capabilities.credentials):
                self._cred_supported[t] -= 1

    def _set(self, x: int, value: NodeValue) -> None:
        """Put ``value`` at node ``x``, keeping indexes, counts and hashes right."""
        old = self._nodes[x]
        if old is value:
            return
        if old is not None:
            self._unindex_node(x, old)
        if value is not None:
            try:
                self._index_node(x, value)
            except ValidationError:
                if old is not None:
                    self._index_node(x, old)
                raise
        self._nodes[x] = value
        delta = (value is not None) - (old is not None)
        leaf_delta = 0 if x & 1 else delta
        hashes, filled, occupied = self._hashes, self._filled, self._occupied
        filled[x] += delta
        occupied[x] += leaf_delta
        hashes[x] = None
        stale = True
        for p in treemath.direct_path(x, self._n_leaves):
            if delta:
                filled[p] += delta
                occupied[p] += leaf_delta
            elif not stale:
                break
            if stale:
                if hashes[p] is None:
                    stale = False  # the ancestors above are stale already
                else:
                    hashes[p] = None

    def _count_filled(self) -> None:
        """Compute ``_filled`` and ``_occupied`` for every node, bottom up, in O(n)."""
        nodes, filled, occupied = self._nodes, self._filled, self._occupied
        width = len(nodes)
        for x in range(0, width, 2):
            filled[x] = occupied[x] = int(nodes[x] is not None)
        k = 1
        while (1 << k) - 1 < width:
            half = 1 << (k - 1)
            for p in range((1 << k) - 1, width, 1 << (k + 1)):
                filled[p] = filled[p - half] + filled[p + half] + int(nodes[p] is not None)
                occupied[p] = occupied[p - half] + occupied[p + half]
            k += 1

    def _extend(self) -> None:
        """Double the number of leaves (RFC 9420 §7.7): a new blank root whose
        left subtree is the old tree and right subtree is blank."""
        n = self._n_leaves
        old_root = n - 1
        self._nodes.extend([None] * (2 * n))
        self._hashes.extend([None] * (2 * n))
        self._filled.extend([0] * (2 * n))
        self._occupied.extend([0] * (2 * n))
        self._n_leaves = 2 * n
        self._filled[2 * n - 1] = self._filled[old_root]
        self._occupied[2 * n - 1] = self._occupied[old_root]

    def _truncate(self) -> None:
        """Halve the tree while the right subtree is blank (RFC 9420 §7.7, §12.1.3)."""
        while self._n_leaves > 1:
            n = self._n_leaves
            root = n - 1
            right = root + (n >> 1)
            if self._filled[right]:
                return
            self._set(root, None)
            width = n - 1  # 2 * (n // 2) - 1
            del self._nodes[width:]
            del self._hashes[width:]
            del self._filled[width:]
            del self._occupied[width:]
            self._n_leaves = n >> 1
