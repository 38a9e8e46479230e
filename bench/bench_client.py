"""Client to client: send -> receive latency through a local server.

Run from the repository root::

    python bench/bench_client.py             # 200 messages each way pattern (about 30 s)
    python bench/bench_client.py --quick     # a few seconds: a CI smoke test

It starts ``python -m messenger.server`` on a free loopback port (SQLite in
a temporary directory), creates two :class:`~messenger.client.MessengerClient`
profiles with separate encrypted stores, registers both (proof of work),
opens a one-to-one conversation and measures, for each message, the time
from ``send_text`` (the message is written to the sender's store and outbox)
to the moment the receiver's event stream reports it (the receiver has
decrypted it and committed it to its store). That covers the whole path: the
sender's outbox transaction, MLS encryption, the signed HTTP send, the
server's fan-out, the WebSocket push, MLS decryption and the receiver's
store transaction.

Two patterns: **sequential** (the next message is sent once the previous one
has arrived: the unloaded latency) and **burst** (``--burst`` messages sent
at once: the latency under a queue, and the messages/s it sustains).

Target on the 2-core machine (server, both clients and their SQLCipher
stores share it): p50 < 50 ms sequential. Every wait is bounded, and only
127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import keyring.backends.fail

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from messenger.client import ClientOptions, MessageReceived, MessengerClient
from messenger.client.demo import start_local_server
from messenger.client.net import Backoff
from messenger.client.store import Keychain, ScryptParams

FAST_KDF = ScryptParams(n=2**10, r=8, p=1, allow_weak=True)
TIMEOUT = 60.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(name: str, latencies: list[float], elapsed: float | None = None) -> None:
    ms = [x * 1000 for x in latencies]
    line = (
        f"{name:<11} n={len(ms):<4} p50={percentile(ms, 0.5):6.1f} ms  "
        f"p90={percentile(ms, 0.9):6.1f} ms  p99={percentile(ms, 0.99):6.1f} ms  "
        f"mean={statistics.fmean(ms):6.1f} ms"
    )
    if elapsed is not None:
        line += f"  {len(ms) / elapsed:6.1f} msg/s"
    print(line, flush=True)


class Receiver:
    """Timestamps each incoming message by its text."""

    def __init__(self, client: MessengerClient) -> None:
        self.client = client
        self.arrived: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.events = client.events()
        self.task = asyncio.create_task(self.follow())

    async def follow(self) -> None:
        async for event in self.events:
            if isinstance(event, MessageReceived):
                now = time.perf_counter()
                view = await self.client.message(event.message_id)
                if not view.message.outgoing and view.message.body:
                    self.arrived[view.message.body] = now
                    self.changed.set()

    async def wait(self, text: str) -> float:
        async def seen() -> float:
            while text not in self.arrived:
                self.changed.clear()
                await self.changed.wait()
            return self.arrived[text]

        return await asyncio.wait_for(seen(), TIMEOUT)

    async def stop(self) -> None:
        self.events.close()
        await self.task


async def run(sequential: int, burst: int) -> None:
    keychain = Keychain(backend=keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    options = ClientOptions(backoff=Backoff(base=0.05, maximum=1.0))
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        root = Path(tmp)
        async with start_local_server(root / "server", pow_difficulty=8) as url:
            clients = []
            for name in ("alice", "bob"):
                client = await MessengerClient.create(
                    name,
                    "bench passphrase",
                    data_dir=root / name,
                    keychain=keychain,
                    kdf=FAST_KDF,
                    options=options,
                )
                await client.create_account(url, f"{name}bench")
                await client.start()
                clients.append(client)
            alice, bob = clients
            receiver = Receiver(bob)
            try:
                bob_account = await bob.account()
                assert bob_account is not None and bob_account.address is not None
                contact = await alice.add_contact(bob_account.address)
                chat = await alice.create_conversation(contact.account_id)
                await alice.send_text(chat.id, "warm-up")
                await receiver.wait("warm-up")

                latencies = []
                for i in range(sequential):
                    text = f"sequential {i}"
                    started = time.perf_counter()
                    await alice.send_text(chat.id, text)
                    latencies.append(await receiver.wait(text) - started)
                report("sequential", latencies)

                sent: dict[str, float] = {}
                started = time.perf_counter()
                for i in range(burst):
                    text = f"burst {i}"
                    sent[text] = time.perf_counter()
                    await alice.send_text(chat.id, text)
                arrivals = {text: await receiver.wait(text) for text in sent}
                elapsed = max(arrivals.values()) - started
                report("burst", [arrivals[t] - sent[t] for t in sent], elapsed)
            finally:
                await receiver.stop()
                for client in clients:
                    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: a smoke test")
    parser.add_argument("--messages", type=int, default=200, help="sequential messages")
    parser.add_argument("--burst", type=int, default=200, help="messages sent at once")
    args = parser.parse_args()
    sequential, burst = (20, 20) if args.quick else (args.messages, args.burst)
    print(f"client -> server -> client, one-to-one, {sequential} + {burst} messages")
    asyncio.run(run(sequential, burst))


if __name__ == "__main__":
    main()
