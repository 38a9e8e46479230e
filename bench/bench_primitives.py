"""Per-operation cost of the MLS cryptographic primitives (RFC 9420 §5.1).

Run from the repository root::

    python bench/bench_primitives.py            # suites 1, 2 and 4
    python bench/bench_primitives.py --quick    # a few iterations: a CI smoke test
    python bench/bench_primitives.py --suites 1,3,5,6,7

For every suite it times ExpandWithLabel, AEAD seal/open of 100 bytes,
signing and verifying (with labels), HPKE EncryptWithLabel/DecryptWithLabel,
DeriveKeyPair, and OpenBase along the RFC 9180 code path of
``messenger.mls.hpke`` next to the ``cryptography`` native path that
``open_base`` uses where it can. Each figure is the best (lowest) over
several rounds of the mean time per call, in microseconds: on a shared
machine the minimum is the most repeatable figure. Randomness is
``os.urandom``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from messenger.mls.ciphersuite import CipherSuite, get_cipher_suite

Op = Callable[[], object]


def time_op(op: Op, *, quick: bool, budget: float = 0.5, rounds: int = 7) -> float:
    """The lowest, over ``rounds``, of the mean seconds per call of ``op``."""
    op()  # warm caches and lazy imports
    if quick:
        iterations, rounds = 3, 1
    else:
        iterations = 1
        while True:  # calibrate: enough calls to fill about budget/rounds seconds
            start = time.perf_counter()
            for _ in range(iterations):
                op()
            elapsed = time.perf_counter() - start
            if elapsed >= budget / rounds / 4:
                iterations = max(1, int(iterations * (budget / rounds) / elapsed))
                break
            iterations *= 4
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iterations):
            op()
        samples.append((time.perf_counter() - start) / iterations)
    return min(samples)


def operations(cs: CipherSuite) -> dict[str, Op]:
    """The operations to time, bound to fresh keys of ``cs``."""
    rnd = os.urandom
    secret = rnd(cs.hash_len)
    key, nonce = rnd(cs.key_len), rnd(cs.nonce_len)
    pt100 = rnd(100)
    aead_ct = cs.aead_seal(key, nonce, b"aad", pt100)
    sig_priv, sig_pub = cs.generate_signature_key_pair(rnd)
    content = rnd(200)
    signature = cs.sign_with_label(sig_priv, b"LeafNodeTBS", content)
    hpke_priv, hpke_pub = cs.generate_hpke_key_pair(rnd)
    path_secret = rnd(cs.hash_len)
    hpke_ct = cs.encrypt_with_label(hpke_pub, b"UpdatePathNode", b"ctx", path_secret, rnd)
    info = b"open-base info"
    enc, ct = cs.hpke.seal_base(hpke_pub, info, b"", path_secret, rnd)
    ikm = rnd(cs.hpke.Nsk)

    def rfc_open() -> bytes:
        return cs.hpke.setup_base_r(enc, hpke_priv, info).open(b"", ct)

    ops: dict[str, Op] = {
        "expand_with_label (32 B)": lambda: cs.expand_with_label(secret, b"key", b"", 32),
        "aead_seal (100 B)": lambda: cs.aead_seal(key, nonce, b"aad", pt100),
        "aead_open (100 B)": lambda: cs.aead_open(key, nonce, b"aad", aead_ct),
        "sign_with_label (200 B)": lambda: cs.sign_with_label(sig_priv, b"LeafNodeTBS", content),
        "verify_with_label (200 B)": lambda: cs.verify_with_label(
            sig_pub, b"LeafNodeTBS", content, signature
        ),
        "encrypt_with_label": lambda: cs.encrypt_with_label(
            hpke_pub, b"UpdatePathNode", b"ctx", path_secret, rnd
        ),
        "decrypt_with_label": lambda: cs.decrypt_with_label(
            hpke_priv, b"UpdatePathNode", b"ctx", hpke_ct.kem_output, hpke_ct.ciphertext
        ),
        "derive_key_pair": lambda: cs.derive_hpke_key_pair(ikm),
        "open_base, RFC 9180 path": rfc_open,
    }
    if cs.hpke._native_suite is not None:
        ops["open_base, native path"] = lambda: cs.hpke.open_base(enc, hpke_priv, info, b"", ct)
    return ops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations only (CI smoke)")
    parser.add_argument(
        "--suites", default="1,2,4", help="comma-separated suite ids (default: 1,2,4)"
    )
    args = parser.parse_args(argv)
    suites = [get_cipher_suite(int(s)) for s in args.suites.split(",")]

    results: dict[int, dict[str, float]] = {}
    for cs in suites:
        results[cs.suite_id] = {
            name: time_op(op, quick=args.quick) for name, op in operations(cs).items()
        }

    names: list[str] = []
    for per_suite in results.values():
        names += [n for n in per_suite if n not in names]
    width = max(len(n) for n in names)
    header = f"{'operation (µs per call)':<{width}}" + "".join(
        f"  {'suite ' + str(cs.suite_id):>10}" for cs in suites
    )
    print(header)
    print("-" * len(header))
    for name in names:
        cells = "".join(
            f"  {results[cs.suite_id][name] * 1e6:>10.1f}"
            if name in results[cs.suite_id]
            else f"  {'-':>10}"
            for cs in suites
        )
        print(f"{name:<{width}}{cells}")
    print()
    for cs in suites:
        print(f"suite {cs.suite_id}: {cs.name}")
    if args.quick:
        print("(--quick: 3 iterations per operation, figures are rough)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
