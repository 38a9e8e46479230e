"""Ratchet tree and TreeKEM costs by group size (RFC 9420 §7, suite 1).

Run from the repository root::

    python bench/bench_tree.py            # N = 10, 100, 1,000, 10,000
    python bench/bench_tree.py --quick    # N = 10, 100: a CI smoke test
    python bench/bench_tree.py --sizes 1000,5000

For each group size N it

* builds a sparse tree by adding N members one by one (no parent nodes),
  and reports the mean cost of one ``add_leaf`` and of adding one more
  member to the N-member tree (copy, add, new tree hash);
* times the tree hash from scratch (a tree freshly built from its nodes)
  and after a single leaf changes (incremental: O(log N) nodes rehashed);
* fills every parent node by having every other member commit (public
  part only: random X25519 keys, real parent hashes and leaf signatures),
  then times ``create_update_path`` for one member and
  ``process_update_path`` for another, with real HPKE;
* times what a joiner does with that full tree: decode the
  ``ratchet_tree`` extension, then validate it (tree hash, parent hashes,
  N leaf signatures, RFC 9420 §12.4.3.1); and validate it again with the
  signatures checked by two worker processes (not with ``--quick``), as an
  application can through ``verify_signatures``.

Figures are the best of a few runs (the most repeatable figure on a shared
machine), in milliseconds. Randomness is a seeded generator.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from messenger.mls.ciphersuite import CipherSuite, get_cipher_suite
from messenger.mls.credentials import Credential
from messenger.mls.group_context import GroupContext
from messenger.mls.leaf_node import Capabilities, LeafNode, LeafNodeSource, LeafNodeTBS, Lifetime
from messenger.mls.nodes import RatchetTree
from messenger.mls.ratchet_tree import (
    LeafNodePolicy,
    PublicTree,
    verify_signatures_sequentially,
)
from messenger.mls.treekem import create_update_path, process_update_path

T = TypeVar("T")

GROUP_ID = b"bench group"
CAPABILITIES = Capabilities(versions=(1,), cipher_suites=(1,), credentials=(1,))
POLICY = LeafNodePolicy(validate_credential=lambda credential, key: True)


def best(op: Callable[[], T], runs: int) -> tuple[float, T]:
    """The lowest wall time of ``runs`` calls, in seconds, and the last result."""
    times = []
    result = op()  # warm caches
    for _ in range(runs):
        start = time.perf_counter()
        result = op()
        times.append(time.perf_counter() - start)
    return min(times), result


def best_of_last(setup: Callable[[], T], op: Callable[[T], object], runs: int) -> float:
    """The lowest wall time of ``op(setup())`` over ``runs``, timing ``op`` only."""
    times = []
    for _ in range(runs + 1):
        value = setup()
        start = time.perf_counter()
        op(value)
        times.append(time.perf_counter() - start)
    return min(times[1:])


class Members:
    """N members' signature keys and KeyPackage leaf nodes."""

    def __init__(self, suite: CipherSuite, n: int, rng: Callable[[int], bytes]) -> None:
        self.suite = suite
        self.signature_keys: list[bytes] = []
        self.leaves: list[LeafNode] = []
        for i in range(n):
            signature_private, signature_public = suite.generate_signature_key_pair(rng)
            _, encryption_public = suite.generate_hpke_key_pair(rng)
            self.signature_keys.append(signature_private)
            self.leaves.append(
                LeafNodeTBS(
                    encryption_key=encryption_public,
                    signature_key=signature_public,
                    credential=Credential.basic(b"member %d" % i),
                    capabilities=CAPABILITIES,
                    leaf_node_source=LeafNodeSource.KEY_PACKAGE,
                    lifetime=Lifetime(0, 2**64 - 1),
                ).sign(suite, signature_private)
            )


def synthetic_commit(
    tree: PublicTree, members: Members, i: int, rng: Callable[[int], bytes]
) -> None:
    """Member ``i`` commits: random keys on its path, real hashes and signature."""
    suite = tree.suite
    keys = [rng(32) for _ in tree.filtered_direct_path(i)]  # any 32 bytes: X25519 keys
    old = tree.leaf(i)
    assert old is not None
    leaf = LeafNodeTBS(
        encryption_key=rng(32),
        signature_key=old.signature_key,
        credential=old.credential,
        capabilities=old.capabilities,
        leaf_node_source=LeafNodeSource.COMMIT,
        parent_hash=tree.path_parent_hash(i, keys),
        group_id=GROUP_ID,
        leaf_index=i,
    ).sign(suite, members.signature_keys[i])
    tree.apply_update_path(i, leaf, keys)


def bench_size(n: int, runs: int, pool: ProcessPoolExecutor | None) -> dict[str, float]:
    suite = get_cipher_suite(1)
    rng = random.Random(n).randbytes
    members = Members(suite, n, rng)
    out: dict[str, float] = {}

    # -- sparse tree by bulk add --------------------------------------------------
    start = time.perf_counter()
    tree = PublicTree.create(suite, members.leaves[0])
    for leaf in members.leaves[1:]:
        tree.add_leaf(leaf)
    out["add_leaf (mean)"] = (time.perf_counter() - start) / n
    tree.tree_hash()
    extra = Members(suite, 1, random.Random(f"extra {n}").randbytes).leaves[0]

    def add_one() -> bytes:
        staged = tree.copy()
        staged.add_leaf(extra)
        return staged.tree_hash()

    out["add 1 member (copy+add+hash)"], _ = best(add_one, runs)
    out["copy"], _ = best(tree.copy, runs)

    nodes = [tree.node(x) for x in range(tree.width)]
    out["build from nodes"], fresh = best(lambda: PublicTree.from_nodes(suite, nodes), runs)
    out["tree hash, from scratch"] = best_of_last(
        lambda: PublicTree.from_nodes(suite, nodes), PublicTree.tree_hash, runs
    )
    fresh.tree_hash()
    target = n // 2
    old = fresh.leaf(target)
    assert old is not None

    def one_leaf_changed() -> PublicTree:
        staged = fresh.copy()
        staged.update_leaf(target, replace(old, encryption_key=rng(32)))
        return staged

    out["tree hash, 1 leaf changed"] = best_of_last(one_leaf_changed, PublicTree.tree_hash, runs)

    # -- full tree: every other member commits --------------------------------
    for i in range(0, n, 2):
        synthetic_commit(tree, members, i, rng)
    sender, near, far = 0, 1, n - 1
    context = GroupContext(
        cipher_suite=1,
        group_id=GROUP_ID,
        epoch=1,
        tree_hash=b"",
        confirmed_transcript_hash=bytes(32),
    )
    # Two receivers commit for real, so that they hold the keys on their
    # paths: the sender's sibling (it derives every key of the path) and
    # the last member (it derives only the root's).
    made = create_update_path(
        tree,
        far,
        group_context=context,
        signature_private_key=members.signature_keys[far],
        random=rng,
    )
    tree, far_private = made.tree, made.private
    made = create_update_path(
        tree,
        near,
        group_context=context,
        signature_private_key=members.signature_keys[near],
        random=rng,
    )
    far_private = process_update_path(
        tree,
        far_private,
        sender=near,
        update_path=made.update_path,
        group_context=context,
        policy=POLICY,
    ).private
    tree, near_private = made.tree, made.private
    filled = sum(1 for x in range(1, tree.width, 2) if tree.node(x) is not None)
    out["parent nodes filled (count)"] = filled

    out["create update path"], created = best(
        lambda: create_update_path(
            tree,
            sender,
            group_context=context,
            signature_private_key=members.signature_keys[sender],
            random=rng,
        ),
        runs,
    )
    for label, private in (("sibling", near_private), ("last leaf", far_private)):
        process = partial(
            process_update_path,
            tree,
            private,
            sender=sender,
            update_path=created.update_path,
            group_context=context,
            policy=POLICY,
        )
        out[f"process update path ({label})"], processed = best(process, runs)
        assert processed.commit_secret == created.commit_secret

    # -- joining: decode and validate the full tree ----------------------------
    tree_hash = tree.tree_hash()
    encoded = tree.to_ratchet_tree().to_bytes()
    join_runs = 1 if n >= 10_000 else runs
    out["ratchet_tree encode"], _ = best(lambda: tree.to_ratchet_tree().to_bytes(), join_runs)
    out["ratchet_tree decode"], body = best(lambda: RatchetTree.from_bytes(encoded), join_runs)
    out["validate (join)"], joined = best(
        lambda: PublicTree.from_ratchet_tree(
            suite, body, group_id=GROUP_ID, tree_hash=tree_hash, policy=POLICY
        ),
        join_runs,
    )
    assert joined == tree
    if pool is not None:
        out["validate (join), 2 processes"], joined = best(
            lambda: PublicTree.from_ratchet_tree(
                suite,
                body,
                group_id=GROUP_ID,
                tree_hash=tree_hash,
                policy=POLICY,
                verify_signatures=lambda s, checks: verify_in(pool, s, checks),
            ),
            join_runs,
        )
        assert joined == tree
    return out


def _verify_chunk(suite_id: int, checks: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    return verify_signatures_sequentially(get_cipher_suite(suite_id), checks)


def verify_in(
    pool: ProcessPoolExecutor, suite: CipherSuite, checks: Sequence[tuple[bytes, bytes, bytes]]
) -> list[bool]:
    """A SignatureBatchVerifier that splits the work over the pool's processes."""
    workers = 2
    size = -(-len(checks) // workers)
    chunks = [list(checks[i : i + size]) for i in range(0, len(checks), size)]
    results = pool.map(_verify_chunk, [suite.suite_id] * len(chunks), chunks)
    return [ok for chunk in results for ok in chunk]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 10 and 100 only (CI smoke)")
    parser.add_argument("--sizes", help="comma-separated group sizes")
    args = parser.parse_args(argv)
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = [10, 100] if args.quick else [10, 100, 1_000, 10_000]
    runs = 2 if args.quick else 5

    with ProcessPoolExecutor(2) as pool:
        pool.submit(_verify_chunk, 1, []).result()  # start the workers
        results = {n: bench_size(n, runs, None if args.quick else pool) for n in sizes}
    names = list(next(iter(results.values())))
    width = max(len(name) for name in names)
    header = f"{'suite 1, ms':<{width}}" + "".join(f"  {'N=' + format(n, ','):>10}" for n in sizes)
    print(header)
    print("-" * len(header))
    for name in names:
        if name.endswith("(count)"):
            cells = "".join(f"  {int(results[n][name]):>10}" for n in sizes)
        else:
            cells = "".join(f"  {results[n][name] * 1e3:>10.3f}" for n in sizes)
        print(f"{name:<{width}}{cells}")
    if args.quick:
        print("(--quick: 2 runs per figure, figures are rough)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
