"""Cost of the encrypted local store (SQLCipher) with many messages.

Run from the repository root::

    python bench/bench_store.py            # 100,000 messages
    python bench/bench_store.py --quick    # 2,000 messages: a CI smoke test
    python bench/bench_store.py --messages 250000

It creates a profile in a temporary directory with the default scrypt cost,
fills it with messages spread over 20 conversations (half of them in one
conversation), closes it, and then times:

* opening and unlocking the store with the key from the keyring (an
  in-memory keyring backend: the OS keyring's own latency is not measured);
* opening and unlocking it with the recovery passphrase (scrypt N=2**17);
* loading the newest 50 messages of the big conversation, right after
  opening (cold: SQLCipher has to decrypt every page it reads) and again
  (warm); paging 50 further back from the middle of the history;
* a full-text search (50 newest hits) for a common and for a rare word.

Figures are the lowest (best) and the median of several rounds, in
milliseconds. The target for "newest 50" is under 100 ms. The OS page cache
is warm throughout: the database was just written.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keyring.backend

from messenger.client import Profile, Profiles
from messenger.client.store import ConversationKind, Keychain, Store

PASSPHRASE = "benchmark recovery passphrase"
CONVERSATIONS = 20
BATCH = 1000
TARGET_MS = 100.0

_VOCABULARY = (
    "the a to and of in is it you that for on was with he she they we this be at have "
    "not are but what all were when can there an your which their said if do will each "
    "about how up out them then many some so these would other into has more her two like "
    "him see time could no make than first been its who now people my made over did down "
    "only way find use may water long little very after words called just where most know "
    "meeting tomorrow lunch project deadline coffee weekend photo call later thanks sure"
)
WORDS = tuple(_VOCABULARY.split())
RARE_WORD = "xylophone"


class _MemoryKeyring(keyring.backend.KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._passwords.pop((service, username), None)


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 25)))


def populate(profile: Profile, keychain: Keychain, count: int) -> tuple[int, float, float]:
    """Create the store and fill it; the big conversation's id, create and fill seconds."""
    rng = random.Random(7)
    start = time.perf_counter()
    store = Store.create(profile, PASSPHRASE, keychain=keychain)
    created = time.perf_counter() - start
    with store:
        conversations = [
            store.conversations.create(
                i.to_bytes(16, "big"),
                ConversationKind.DIRECT,
                peer_account_id=f"peer-{i}",
                now=0,
            ).id
            for i in range(CONVERSATIONS)
        ]
        big = conversations[0]
        start = time.perf_counter()
        for first in range(0, count, BATCH):
            with store.transaction():
                for n in range(first, min(first + BATCH, count)):
                    conversation = big if n % 2 == 0 else rng.choice(conversations[1:])
                    outgoing = rng.random() < 0.4
                    body = _sentence(rng)
                    if n % 997 == 0:
                        body += f" {RARE_WORD}"
                    store.messages.add(
                        conversation,
                        uid=n.to_bytes(16, "big"),
                        sender_account_id="me" if outgoing else f"peer-{conversation}",
                        sender_client_id="client",
                        outgoing=outgoing,
                        body=body,
                        sent_at=1_700_000_000_000 + n * 1000,
                        received_at=1_700_000_000_000 + n * 1000,
                        server_seq=n + 1,
                    )
        filled = time.perf_counter() - start
    return big, created, filled


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 messages, few rounds")
    parser.add_argument("--messages", type=int, default=None, help="how many messages")
    args = parser.parse_args()
    count = args.messages or (2_000 if args.quick else 100_000)
    rounds = 3 if args.quick else 15

    keychain = Keychain(backend=_MemoryKeyring())
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        profile = Profiles(Path(tmp)).create("bench")
        big, created, filled = populate(profile, keychain, count)
        size = sum(p.stat().st_size for p in profile.db_files if p.exists())

        def open_close() -> None:
            Store.open(profile, keychain=keychain).close()

        rows.append(("open + unlock (keyring)", timed(open_close, rounds)))

        def open_passphrase() -> None:
            Store.open(profile, passphrase=PASSPHRASE, keychain=keychain).close()

        rows.append(("open + unlock (passphrase, scrypt)", timed(open_passphrase, 3)))

        cold: list[float] = []
        open_and_load: list[float] = []
        for _ in range(rounds):
            start = time.perf_counter()
            with Store.open(profile, keychain=keychain) as store:
                opened = time.perf_counter()
                page = store.messages.latest(big, 50)
                done = time.perf_counter()
            assert len(page) == 50
            cold.append((done - opened) * 1000)
            open_and_load.append((done - start) * 1000)
        rows.append(("newest 50, first query after open", cold))
        rows.append(("open + unlock + newest 50", open_and_load))

        with Store.open(profile, keychain=keychain) as store:
            store.messages.latest(big, 50)
            rows.append(
                ("newest 50, warm", timed(lambda: store.messages.latest(big, 50), rounds * 10))
            )
            middle = store.messages.latest(big, 50, before_id=count // 2)[0].id
            rows.append(
                (
                    "50 older, from mid-history",
                    timed(lambda: store.messages.latest(big, 50, before_id=middle), rounds * 10),
                )
            )
            rows.append(
                (
                    "search common word (50 hits)",
                    timed(lambda: store.messages.search("lunch"), rounds),
                )
            )
            rows.append(
                ("search rare word", timed(lambda: store.messages.search(RARE_WORD), rounds))
            )
            total = store.db.query_value("SELECT count(*) FROM messages")

    print(f"store: {total:,} messages in {CONVERSATIONS} conversations ({total // 2:,} in one)")
    print(f"database size {size / 2**20:.1f} MiB; created in {created * 1000:.0f} ms (scrypt)")
    print(f"filled in {filled:.1f} s ({count / filled:,.0f} messages/s, batches of {BATCH})")
    print()
    print(f"{'operation':<38} {'best ms':>9} {'median ms':>10}")
    print("-" * 59)
    for name, samples in rows:
        print(f"{name:<38} {min(samples):>9.2f} {statistics.median(samples):>10.2f}")
    worst = max(statistics.median(s) for n, s in rows if "newest 50," in n)
    verdict = "meets" if worst < TARGET_MS else "MISSES"
    print(f"\nnewest 50: median {worst:.2f} ms, {verdict} the {TARGET_MS:.0f} ms target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
