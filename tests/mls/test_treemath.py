"""RFC 9420 Appendix C tree math (tree-math.json) plus a cross-check against
the RFC's reference Python for every node of trees up to 2**10 leaves."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.mls import treemath as tm
from messenger.mls.errors import UsageError
from tests.mls.vectors import assert_eq, cases


def _optional(fn: Any, *args: int) -> int | None:
    try:
        result: int = fn(*args)
    except UsageError:
        return None
    return result


@pytest.mark.parametrize("tc", cases("tree-math", key="n_leaves"))
def test_tree_math_vector(tc: dict[str, Any]) -> None:
    n = tc["n_leaves"]
    assert_eq("n_nodes", tm.node_width(n), tc["n_nodes"])
    assert_eq("root", tm.root(n), tc["root"])
    for i in range(tc["n_nodes"]):
        assert_eq(f"left[{i}]", _optional(tm.left, i), tc["left"][i])
        assert_eq(f"right[{i}]", _optional(tm.right, i), tc["right"][i])
        assert_eq(f"parent[{i}]", _optional(tm.parent, i, n), tc["parent"][i])
        assert_eq(f"sibling[{i}]", _optional(tm.sibling, i, n), tc["sibling"][i])


# -- the reference code of RFC 9420 Appendix C, verbatim in spirit ------------


def _ref_level(x: int) -> int:
    if x & 1 == 0:
        return 0
    k = 0
    while (x >> k) & 1 == 1:
        k += 1
    return k


def _ref_parent(x: int) -> int:
    k = _ref_level(x)
    b = (x >> (k + 1)) & 1
    return (x | (1 << k)) ^ (b << (k + 1))


def _ref_sibling(x: int) -> int:
    p = _ref_parent(x)
    k = _ref_level(p)
    return p ^ (3 << (k - 1)) if x < p else p ^ (1 << (k - 1))


def _ref_direct_path(x: int, n: int) -> list[int]:
    r = n - 1
    d = []
    while x != r:
        x = _ref_parent(x)
        d.append(x)
    return d


def _ref_copath(x: int, n: int) -> list[int]:
    if x == n - 1:
        return []
    d = [x, *_ref_direct_path(x, n)]
    d.pop()
    return [_ref_sibling(y) for y in d]


def _ref_common_ancestor(x: int, y: int, n: int) -> int:
    dx = {x, *_ref_direct_path(x, n)}
    dy = {y, *_ref_direct_path(y, n)}
    return min(dx & dy, key=_ref_level)


@pytest.mark.parametrize("n", [1 << d for d in range(11)])
def test_paths_match_reference(n: int) -> None:
    for x in range(tm.node_width(n)):
        assert_eq(f"n={n} level({x})", tm.level(x), _ref_level(x))
        assert_eq(f"n={n} direct_path({x})", list(tm.direct_path(x, n)), _ref_direct_path(x, n))
        assert_eq(f"n={n} copath({x})", list(tm.copath(x, n)), _ref_copath(x, n))


@given(
    st.integers(0, 12).flatmap(
        lambda d: st.tuples(
            st.just(1 << d), st.integers(0, (2 << d) - 2), st.integers(0, (2 << d) - 2)
        )
    )
)
def test_common_ancestor_matches_reference(args: tuple[int, int, int]) -> None:
    n, x, y = args
    want = _ref_common_ancestor(x, y, n)
    assert tm.common_ancestor(x, y) == want
    assert tm.common_ancestor(y, x) == want
    assert tm.is_ancestor(want, x)
    assert tm.is_ancestor(want, y)


@given(
    st.integers(0, 12).flatmap(lambda d: st.tuples(st.just(1 << d), st.integers(0, (2 << d) - 2)))
)
def test_leaf_range_and_ancestry(args: tuple[int, int]) -> None:
    n, x = args
    leaves = tm.leaf_range(x)
    assert len(leaves) == 1 << tm.level(x)
    for leaf in (leaves[0], leaves[-1]):
        node = tm.leaf_to_node(leaf)
        assert node == x or x in tm.direct_path(node, n)
    if leaves[0] > 0:
        assert not tm.is_ancestor(x, tm.leaf_to_node(leaves[0] - 1))
    if leaves[-1] + 1 < n:
        assert not tm.is_ancestor(x, tm.leaf_to_node(leaves[-1] + 1))


def test_leaf_node_conversions() -> None:
    assert tm.leaf_to_node(5) == 10
    assert tm.node_to_leaf(10) == 5
    assert tm.is_leaf(10)
    assert not tm.is_leaf(7)
    assert tm.n_leaves_for_width(tm.node_width(16)) == 16
    assert tm.n_leaves_for_width(0) == 0
    assert tm.node_width(0) == 0
    assert tm.root_level(1) == 0
    assert tm.root_level(16384) == 14


def test_large_tree_paths() -> None:
    n = 16384  # a group of 10,000 members lives in a tree of 2**14 leaves
    x = tm.leaf_to_node(9999)
    path = tm.direct_path(x, n)
    assert len(path) == 14
    assert path[-1] == tm.root(n)
    assert [tm.parent(a, n) for a in (x, *path[:-1])] == list(path)
    assert [tm.sibling(a, n) for a in (x, *path[:-1])] == list(tm.copath(x, n))


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (tm.left, (4,)),
        (tm.right, (0,)),
        (tm.parent, (7, 8)),
        (tm.sibling, (7, 8)),
        (tm.parent, (15, 8)),
        (tm.parent, (-1, 8)),
        (tm.direct_path, (15, 8)),
        (tm.copath, (0, 6)),
        (tm.root, (0,)),
        (tm.root, (12,)),
        (tm.node_to_leaf, (3,)),
        (tm.node_to_leaf, (-2,)),
        (tm.leaf_to_node, (-1,)),
        (tm.level, (-1,)),
        (tm.node_width, (-1,)),
        (tm.n_leaves_for_width, (4,)),
    ],
)
def test_out_of_range_raises_usage_error(fn: Any, args: tuple[int, ...]) -> None:
    with pytest.raises(UsageError):
        fn(*args)


def test_root_has_empty_paths() -> None:
    assert tm.direct_path(7, 8) == ()
    assert tm.copath(7, 8) == ()
    assert tm.direct_path(0, 1) == ()
