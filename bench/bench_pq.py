"""The post-quantum hybrid suite next to suite 1: sizes and times by group size.

Run from the repository root::

    python bench/bench_pq.py            # N = 10, 100, 1,000
    python bench/bench_pq.py --quick    # N = 10, 100: a CI smoke test

Suites: 1 (MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519) and 0xF001
(MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519, draft-ietf-mls-pq-ciphersuites,
private-use code point; docs/pq-suites.md). For each group size N, A creates a
group and adds N - 1 members in one Commit; B (leaf 1) joins from the Welcome.

* ``KeyPackage``: one KeyPackage as an MLSMessage, in bytes.
* ``commit adding N-1``: A's Commit adding everyone (time, Commit bytes) and
  its ``Welcome`` (bytes; the GroupInfo carries the tree inline).
* ``join``: B joining from that Welcome (decoding, validating the tree and
  every leaf signature, decrypting its GroupSecrets).
* ``add 1``: A's Commit adding one more member (no path), its bytes.
* ``update commit``: A's empty Commit with a path on the tree left sparse by
  the big add (it encrypts a path secret to every other leaf: the worst case
  for the KEM's ciphertext size), time to create, bytes, B's time to process.

Times are the best of a few runs in milliseconds (one run at N = 1,000).
Randomness is ``os.urandom``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from messenger.mls.ciphersuite import CipherSuite, get_cipher_suite
from messenger.mls.credentials import Credential
from messenger.mls.events import StagedCommit
from messenger.mls.group import Group
from messenger.mls.key_package_bundle import KeyPackageBundle, generate_key_package

T = TypeVar("T")
NOW = int(time.time())
SUITES = (1, 0xF001)


def timed(op: Callable[[], T], runs: int) -> tuple[float, T]:
    """The lowest wall time of ``runs`` calls of ``op``, in ms, and its last result."""
    best = float("inf")
    result: T
    for _ in range(max(1, runs)):
        gc.collect()
        start = time.perf_counter()
        result = op()
        best = min(best, time.perf_counter() - start)
    return best * 1000, result


def key_packages(suite: CipherSuite, n: int, start: int = 0) -> list[KeyPackageBundle]:
    out = []
    for i in range(start, start + n):
        private, _ = suite.generate_signature_key_pair(os.urandom)
        credential = Credential.basic(b"member %d" % i)
        out.append(generate_key_package(suite, credential, private, os.urandom, now=NOW))
    return out


def bench(suite_id: int, n: int) -> dict[str, float]:
    suite = get_cipher_suite(suite_id)
    runs = 1 if n >= 1000 else 3
    out: dict[str, float] = {}
    creator, *others = key_packages(suite, n)
    (extra,) = key_packages(suite, 1, start=n)
    out["KeyPackage bytes"] = len(creator.message())
    a = Group.create(creator, os.urandom)
    kps = [b.key_package for b in others]
    ms, result = timed(lambda: a.commit(os.urandom, add=kps, group_info=False), runs)
    assert result.welcome is not None
    welcome = result.welcome
    out["commit adding N-1 ms"] = ms
    out["commit adding N-1 bytes"] = len(result.message)
    out["Welcome bytes"] = len(welcome)
    a.merge(result.staged)
    ms, b = timed(lambda: Group.join_from_welcome(welcome, others[0]), runs)
    out["join ms"] = ms
    assert b.epoch_authenticator == a.epoch_authenticator

    ms, result = timed(
        lambda: a.commit(os.urandom, add=[extra.key_package], group_info=False), runs
    )
    out["add 1 ms"] = ms
    out["add 1 bytes"] = len(result.message)
    staged = b.process(result.message)
    assert isinstance(staged, StagedCommit)
    a.merge(result.staged)
    b.merge(staged)

    ms, result = timed(lambda: a.commit(os.urandom, group_info=False), runs)
    out["update commit ms"] = ms
    out["update commit bytes"] = len(result.message)
    ms, staged = timed(lambda: b.process(result.message), runs)
    out["update commit, process ms"] = ms
    assert isinstance(staged, StagedCommit)
    a.merge(result.staged)
    b.merge(staged)
    assert a.epoch_authenticator == b.epoch_authenticator
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="N = 10, 100 only")
    parser.add_argument("--sizes", type=int, nargs="*", help="group sizes (default 10 100 1000)")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([10, 100] if args.quick else [10, 100, 1000])
    for n in sizes:
        rows = {s: bench(s, n) for s in SUITES}
        print(f"\nN = {n}")
        header = "".join(f"{f'suite 0x{s:04x}':>16}" for s in SUITES)
        print(f"{'':30}{header}{'ratio':>8}")
        for row in rows[SUITES[0]]:
            values = [rows[s][row] for s in SUITES]
            fmt = "{:>16.1f}" if row.endswith("ms") else "{:>16,.0f}"
            ratio = values[1] / values[0] if values[0] else float("nan")
            print(f"{row:30}" + "".join(fmt.format(v) for v in values) + f"{ratio:>8.1f}")


if __name__ == "__main__":
    main()
