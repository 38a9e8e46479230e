"""Linking a new device: joining N groups, and a history of 100,000 messages.

Run from the repository root::

    python bench/bench_linking.py            # the full measurement (a few minutes)
    python bench/bench_linking.py --quick    # well under a minute: a CI smoke test

It starts ``python -m messenger.server`` on a free loopback port (SQLite in a
temporary directory, flood limits and the hourly one-time KeyPackage
allowances raised: ``bench_client.local_server``) and
measures, with both devices' clients in this process (one event loop, the
machine's 2 cores shared with the server):

1. **joining** (N = 50 groups of 10 members; ``--quick``: 3 groups of 4):
   Alice's laptop is in N groups, each with the same 9 other accounts (they
   need not be online: the server queues for them). A desktop is linked
   without history; the time from :meth:`DeviceLink.approve` to
   :meth:`MessengerClient.link_account` returning -- the desktop then has
   joined every group from its Welcome and can send in each (target < 10 s).
   Printed too: the laptop's side alone (registration, claims, the durable
   Adds; its outbox commits them meanwhile).
2. **history** (100,000 messages; ``--quick``: 2,000): another account with
   one conversation holding that many messages (written straight into its
   store); a desktop is linked with history: the time from ``approve`` to
   ``link_account`` returning with the history imported (target < 60 s),
   the compressed snapshot's size, and the rate.

Every wait is bounded, and only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_client import FAST_KDF, OPTIONS, PASSPHRASE, keychain, local_server

from messenger.api.models import MAX_KEY_PACKAGES_PER_UPLOAD
from messenger.client import LinkProgress, LinkStage, MessengerClient
from messenger.client.sync.key_packages import KeyPackagePool

#: The longest any one step may take.
TIMEOUT = 600.0
TARGET_JOIN_S = 10.0
TARGET_HISTORY_S = 60.0


async def new_client(root: Path, name: str, url: str | None) -> MessengerClient:
    client = await MessengerClient.create(
        name, PASSPHRASE, data_dir=root / name, keychain=keychain(), kdf=FAST_KDF, options=OPTIONS
    )
    if url is not None:
        await client.create_account(url, name)
    return client


def verdict(value: float, target: float) -> str:
    return "OK" if value < target else "OVER TARGET"


async def link(
    laptop: MessengerClient, desktop: MessengerClient, *, history: bool
) -> tuple[float, float, dict[LinkStage, float]]:
    """Link ``desktop``; seconds from approve to the creator's end and to the desktop's."""
    device_link = await laptop.start_link()
    stages: dict[LinkStage, float] = {}
    start = 0.0

    def seen(progress: LinkProgress) -> None:
        if start and progress.stage not in stages:
            stages[progress.stage] = time.monotonic() - start

    joining = asyncio.create_task(
        desktop.link_account(device_link.code, device_name="Desktop", progress=seen)
    )
    await asyncio.wait_for(device_link.wait_offer(), TIMEOUT)
    start = time.monotonic()
    await asyncio.wait_for(device_link.approve(history=history), TIMEOUT)
    creator = time.monotonic() - start
    await asyncio.wait_for(joining, TIMEOUT)
    return creator, time.monotonic() - start, stages


async def joining(root: Path, url: str, groups: int, members: int) -> float:
    laptop = await new_client(root, "laptop", url)
    others = [await new_client(root, f"member{i}", url) for i in range(members - 1)]
    ids = []
    for other in others:
        info = await other.account()
        assert info is not None
        ids.append(info.account_id)
        await laptop.add_contact(info.invite_link)
        # A one-time KeyPackage per group (the server wants a claimed one for each add).
        stock = min(MAX_KEY_PACKAGES_PER_UPLOAD, groups + 2)
        await KeyPackagePool(other._require(), target=stock, low_water=stock).replenish()
        await other.close()  # offline: the server queues their Welcomes and commits
    await laptop.start()
    made = time.monotonic()
    for index in range(groups):
        await laptop.create_group(f"group {index}", ids)
    await laptop.flush(TIMEOUT)
    print(
        f"  setup: {groups} groups of {members} members made in {time.monotonic() - made:.1f} s",
        flush=True,
    )
    desktop = await new_client(root, "desktop", None)
    creator, total, stages = await link(laptop, desktop, history=False)
    joined = len(await desktop.conversations())
    print(f"  laptop's side (register, claim, queue the Adds, all confirmed): {creator:.2f} s")
    for stage, at in stages.items():
        print(f"    desktop reached {stage.value} at {at:.2f} s")
    print(
        f"  approve -> the desktop in all {joined} of {groups} groups: {total:.2f} s "
        f"(target < {TARGET_JOIN_S:.0f} s at N=50: {verdict(total, TARGET_JOIN_S)})",
        flush=True,
    )
    if joined != groups:
        raise RuntimeError(f"the desktop joined {joined} groups, not {groups}")
    await desktop.close()
    await laptop.close()
    return total


async def history(root: Path, url: str, count: int) -> float:
    laptop = await new_client(root, "hlaptop", url)
    peer = await new_client(root, "hpeer", url)
    peer_info = await peer.account()
    assert peer_info is not None
    await laptop.add_contact(peer_info.invite_link)
    await peer.close()
    await laptop.start()
    chat = await laptop.create_conversation(peer_info.account_id)
    await laptop.flush(TIMEOUT)
    me = await laptop.account()
    assert me is not None

    def fill(store: object) -> None:
        from messenger.client.store import Store

        assert isinstance(store, Store)
        rows = []
        for i in range(count):
            mine = i % 3 == 0
            rows.append(
                (
                    chat.id,
                    os.urandom(16),
                    me.account_id if mine else peer_info.account_id,
                    me.client_id if mine else "peer-client",
                    int(mine),
                    "text",
                    f"message {i}: the quick brown fox jumps over the lazy dog",
                    "sent" if mine else "received",
                    1_700_000_000_000 + i,
                    1_700_000_000_000 + i,
                )
            )
        with store.transaction():
            store.db.executemany(
                "INSERT INTO messages (conversation_id, uid, sender_account_id, "
                "sender_client_id, outgoing, kind, body, status, sent_at, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    filled = time.monotonic()
    await laptop._store.run(fill)
    print(f"  setup: {count:,} messages stored in {time.monotonic() - filled:.1f} s", flush=True)
    from messenger.client.linking.history import export_history

    snapshot = await laptop._store.run(export_history)
    desktop = await new_client(root, "hdesktop", None)
    creator, total, stages = await link(laptop, desktop, history=True)
    [conversation] = await desktop.conversations()
    views = await desktop.messages(conversation.id, limit=5)
    imported = await desktop._store.run(lambda s: s.messages.count(conversation.id))
    print(f"  snapshot: {len(snapshot) / 1e6:.1f} MB compressed; {imported:,} messages imported")
    for stage, at in stages.items():
        print(f"    desktop reached {stage.value} at {at:.2f} s")
    print(f"  laptop's side (export, transfer, confirmed): {creator:.2f} s")
    print(
        f"  approve -> the desktop linked with {count:,} messages: {total:.2f} s, "
        f"{count / total:,.0f} msg/s (target < {TARGET_HISTORY_S:.0f} s at 100,000: "
        f"{verdict(total, TARGET_HISTORY_S)})",
        flush=True,
    )
    if imported < count or not views:
        raise RuntimeError(f"{imported} of {count} messages imported")
    await desktop.close()
    await laptop.close()
    return total


async def run(groups: int, members: int, messages: int) -> None:
    # One laptop claims a KeyPackage of each member for every group: lift the hourly
    # one-time allowances (local_server passes the environment on to the server).
    for name in ("PER_TARGET", "PER_CLAIMER_PER_TARGET"):
        os.environ[f"MESSENGER_ONE_TIME_KEY_PACKAGES_{name}_PER_HOUR"] = "1000000"
    with tempfile.TemporaryDirectory(prefix="bench-linking-") as tmp:
        root = Path(tmp)
        async with local_server(root / "server") as (url, _):
            print(f"1. joining: {groups} groups of {members} members", flush=True)
            await joining(root, url, groups, members)
            print(f"2. history: {messages:,} messages", flush=True)
            await history(root, url, messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--groups", type=int, help="groups to join (default 50)")
    parser.add_argument("--members", type=int, help="members per group (default 10)")
    parser.add_argument("--messages", type=int, help="history messages (default 100,000)")
    args = parser.parse_args()
    groups = args.groups or (3 if args.quick else 50)
    members = args.members or (4 if args.quick else 10)
    messages = args.messages or (2_000 if args.quick else 100_000)
    print("linking a new device" + (" (--quick: smaller sizes)" if args.quick else ""), flush=True)
    asyncio.run(run(groups, members, messages))
    print("(2 shared cores: server and both clients compete; figures are noisy)")


if __name__ == "__main__":
    main()
