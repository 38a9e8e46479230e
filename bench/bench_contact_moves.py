"""What contact queues cost a new group: every joiner moves with one commit.

Run from the repository root::

    python bench/bench_contact_moves.py           # groups of 8 and 24 (a minute or two)
    python bench/bench_contact_moves.py --quick   # a group of 6: a CI smoke test

A client's KeyPackages name its contact queue, so a Welcome arrives there,
and right after joining the client commits a self-update that moves its
leaf to its own queue (docs/metadata.md §1). When one commit adds N - 1
members at once, the N - 1 moves would race for the epochs that follow (the
server takes one commit per epoch, the others are answered ``stale_epoch``
and built again after catching up), so the members move in turns, in leaf
order (messenger/client/sync/move_turns.py). This measures what the moves
cost on a local server
(``python -m messenger.server``, SQLite, flood limits raised as in
bench_client.py) with N real clients in this process (2 cores: the clients
share one interpreter, so times are an upper bound):

* **moved**: the time from ``create_group`` until every member's leaf names
  its own queue and everyone is at the same epoch (1 + N - 1);
* **commits**: accepted and refused as stale, from the server's
  ``/metrics`` (``messenger_commits_total``), for the whole run;
* **first message**: the time from Alice's first message (sent right
  after ``create_group``) until every member has it.

No target: the figures say what the moves cost, for docs/metadata.md §1.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_client import FAST_KDF, OPTIONS, PASSPHRASE, keychain, local_server

from messenger.client import MessengerClient

#: The longest wait for the moves of one group.
TIMEOUT = 600.0


async def _wait(check: Callable[[], Awaitable[bool]], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``check`` until it holds (RuntimeError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _commits(url: str) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(url + "/metrics")).text
    found: dict[str, float] = {}
    for outcome, value in re.findall(
        r'^messenger_commits_total\{outcome="(\w+)"\} ([0-9.e+]+)$', text, re.MULTILINE
    ):
        found[outcome] = float(value)
    return found


async def one_group(size: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-moves-") as tmp:
        root = Path(tmp)
        async with local_server(root / "server") as (url, _pid):
            clients: list[MessengerClient] = []
            try:
                for i in range(size):
                    client = await MessengerClient.create(
                        f"c{i}",
                        PASSPHRASE,
                        data_dir=root / f"c{i}",
                        keychain=keychain(),
                        kdf=FAST_KDF,
                        options=OPTIONS,
                    )
                    clients.append(client)
                    await client.create_account(url, f"member{i}bench")
                    await client.start()
                for client in clients:
                    await client.wait_online(TIMEOUT)

                async def contact_queues_ready() -> bool:
                    # Each has its contact queue, and its KeyPackages name it.
                    return all(c._require().contact is not None for c in clients)

                await _wait(contact_queues_ready, "every contact queue")
                for client in clients:
                    await client.sync()  # the fresh KeyPackages are up
                alice, members = clients[0], clients[1:]
                ids = []
                for member in members:
                    account = await member.account()
                    assert account is not None and account.address is not None
                    ids.append((await alice.add_contact(account.address)).account_id)
                before = await _commits(url)
                started = time.monotonic()
                chat = await alice.create_group("moves", ids)
                await alice.send_text(chat.id, "first")

                async def everyone_has_it() -> bool:
                    for member in members:
                        views = await member.conversations()
                        found = [v for v in views if v.name == "moves"]
                        if not found:
                            return False
                        texts = [v.message.body for v in await member.messages(found[0].id)]
                        if "first" not in texts:
                            return False
                    return True

                await _wait(everyone_has_it, "the first message to reach everyone")
                first = time.monotonic() - started

                async def all_moved() -> bool:
                    epochs = set()
                    for client in clients:
                        views = await client.conversations()
                        found = [v for v in views if v.name == "moves"]
                        if not found:
                            return False
                        epochs.add(await client.group_epoch(found[0].id))
                    return epochs == {size}  # the add, then one move per member

                await _wait(all_moved, "every member to move")
                moved = time.monotonic() - started
                after = await _commits(url)
                accepted = after.get("accepted", 0) - before.get("accepted", 0)
                stale = after.get("stale", 0) - before.get("stale", 0)
                print(
                    f"N={size:>3}: first message to all {first:6.2f} s; all moved "
                    f"{moved:6.2f} s; commits accepted {accepted:.0f} "
                    f"(the add + {size - 1} moves), refused stale {stale:.0f}"
                )
            finally:
                for client in clients:
                    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small group: a smoke test")
    args = parser.parse_args()
    sizes = [6] if args.quick else [8, 24]
    print(
        "contact queue moves: N members added by one commit" + (" (--quick)" if args.quick else "")
    )
    for size in sizes:
        asyncio.run(one_group(size))


if __name__ == "__main__":
    sys.exit(main())
