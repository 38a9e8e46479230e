"""Array-based tree math on node indices (RFC 9420 §4.1, Appendix C).

Every MLS tree is a perfect binary tree with ``2**d`` leaves (RFC 9420 §4.1).
Nodes are numbered left to right in one array: leaf ``i`` is node ``2*i``
and parent nodes hold the odd indices (RFC 9420 Appendix C). Relationships
follow from the bits of the index alone:

* the *level* of ``x`` is its number of trailing one bits;
* the ancestor of ``x`` at level ``L`` is ``x`` with its low ``L + 1`` bits
  replaced by ``0`` followed by ``L`` ones;
* two nodes at level ``k`` are siblings iff they differ only in bit ``k + 1``.

Functions that take ``n_leaves`` check that it is a power of two and that the
node lies in the tree, raising :class:`~messenger.mls.errors.UsageError`
otherwise: a bad index is always the caller's bug. Path functions return
tuples and are cached, because tree operations ask for the same paths over
and over.
"""

from __future__ import annotations

from functools import lru_cache

from .errors import UsageError

__all__ = [
    "common_ancestor",
    "copath",
    "direct_path",
    "is_ancestor",
    "is_leaf",
    "leaf_range",
    "leaf_to_node",
    "left",
    "level",
    "n_leaves_for_width",
    "node_to_leaf",
    "node_width",
    "parent",
    "right",
    "root",
    "root_level",
    "sibling",
]


def _check_tree(n_leaves: int) -> None:
    if n_leaves <= 0 or n_leaves & (n_leaves - 1):
        raise UsageError(f"tree size {n_leaves} is not a power of two (RFC 9420 §4.1)")


def _bad_node(x: int, n_leaves: int) -> UsageError:
    _check_tree(n_leaves)
    return UsageError(f"node {x} is outside a tree of {n_leaves} leaves")


def _check_node(x: int, n_leaves: int) -> None:
    # Hot path: one combined test, the message is built only on failure.
    if n_leaves & (n_leaves - 1) or not 0 <= x < 2 * n_leaves - 1:
        raise _bad_node(x, n_leaves)


def _check_index(x: int) -> None:
    if x < 0:
        raise UsageError(f"negative node index {x}")


# -- single nodes (no tree size needed) ---------------------------------------


def level(x: int) -> int:
    """The level of node ``x``: 0 for leaves, ``k`` for ``k`` trailing ones."""
    _check_index(x)
    y = x + 1
    return (y & -y).bit_length() - 1


def is_leaf(x: int) -> bool:
    """Leaves are the even node indices (RFC 9420 Appendix C)."""
    _check_index(x)
    return not x & 1


def leaf_to_node(leaf: int) -> int:
    """The node index of leaf index ``leaf``: ``2 * leaf``."""
    if leaf < 0:
        raise UsageError(f"negative leaf index {leaf}")
    return leaf << 1


def node_to_leaf(x: int) -> int:
    """The leaf index of leaf node ``x``; :class:`UsageError` for parents."""
    _check_index(x)
    if x & 1:
        raise UsageError(f"node {x} is a parent node, not a leaf")
    return x >> 1


def left(x: int) -> int:
    """The left child of parent node ``x``."""
    k = level(x)
    if k == 0:
        raise UsageError(f"leaf node {x} has no children")
    return x ^ (1 << (k - 1))


def right(x: int) -> int:
    """The right child of parent node ``x``."""
    k = level(x)
    if k == 0:
        raise UsageError(f"leaf node {x} has no children")
    return x ^ (3 << (k - 1))


def leaf_range(x: int) -> range:
    """The leaf indices in the subtree headed by node ``x``."""
    k = level(x)
    first = (x - (1 << k) + 1) >> 1
    return range(first, first + (1 << k))


def is_ancestor(ancestor: int, x: int) -> bool:
    """Whether ``x`` is in the subtree headed by ``ancestor`` (or is it)."""
    k = level(ancestor)
    _check_index(x)
    half = (1 << k) - 1
    return ancestor - half <= x <= ancestor + half


def common_ancestor(x: int, y: int) -> int:
    """The lowest node whose subtree holds both ``x`` and ``y`` (Appendix C)."""
    lvl = max(level(x), level(y), (x ^ y).bit_length() - 1)
    return ((x >> (lvl + 1)) << (lvl + 1)) | ((1 << lvl) - 1)


# -- tree shape ---------------------------------------------------------------


def node_width(n_leaves: int) -> int:
    """The number of nodes in a tree with ``n_leaves`` leaves: ``2n - 1``."""
    if n_leaves < 0:
        raise UsageError(f"negative leaf count {n_leaves}")
    return 2 * n_leaves - 1 if n_leaves else 0


def n_leaves_for_width(width: int) -> int:
    """The number of leaves in a tree of ``width`` nodes."""
    if width < 0 or (width and not width & 1):
        raise UsageError(f"{width} is not a valid node width")
    return (width + 1) >> 1


def root_level(n_leaves: int) -> int:
    """The level of the root: ``d`` for ``2**d`` leaves."""
    _check_tree(n_leaves)
    return n_leaves.bit_length() - 1


def root(n_leaves: int) -> int:
    """The root node of a tree with ``n_leaves`` leaves: ``n_leaves - 1``."""
    _check_tree(n_leaves)
    return n_leaves - 1


def parent(x: int, n_leaves: int) -> int:
    """The parent of node ``x``; :class:`UsageError` for the root."""
    if n_leaves & (n_leaves - 1) or not 0 <= x < 2 * n_leaves - 1:
        raise _bad_node(x, n_leaves)
    if x == n_leaves - 1:
        raise UsageError("the root node has no parent")
    y = x + 1
    k = (y & -y).bit_length()  # level(x) + 1
    return ((x >> (k + 1)) << (k + 1)) | ((1 << k) - 1)


def sibling(x: int, n_leaves: int) -> int:
    """The other child of the parent of ``x``; :class:`UsageError` for the root."""
    if n_leaves & (n_leaves - 1) or not 0 <= x < 2 * n_leaves - 1:
        raise _bad_node(x, n_leaves)
    if x == n_leaves - 1:
        raise UsageError("the root node has no sibling")
    y = x + 1
    return x ^ ((y & -y) << 1)  # bit level(x) + 1


# The path functions are cached; a failed check raises, so only valid
# arguments ever reach the cache and a hit needs no re-check.


@lru_cache(maxsize=1 << 16)
def direct_path(x: int, n_leaves: int) -> tuple[int, ...]:
    """The ancestors of ``x``, from its parent up to the root (RFC 9420 §4.1).

    Empty for the root itself.
    """
    _check_node(x, n_leaves)
    d = n_leaves.bit_length() - 1
    return tuple(
        ((x >> (lvl + 1)) << (lvl + 1)) | ((1 << lvl) - 1) for lvl in range(level(x) + 1, d + 1)
    )


@lru_cache(maxsize=1 << 16)
def copath(x: int, n_leaves: int) -> tuple[int, ...]:
    """The siblings of ``x`` and of each node on its direct path but the root.

    Ordered from ``x``'s sibling up (RFC 9420 §4.1); empty for the root.
    """
    _check_node(x, n_leaves)
    d = n_leaves.bit_length() - 1
    return tuple(
        (((x >> (lvl + 1)) << (lvl + 1)) | ((1 << lvl) - 1)) ^ (1 << (lvl + 1))
        for lvl in range(level(x), d)
    )
