"""How long the client's heavy work stalls the event loop (issue 9).

Run from the repository root::

    python bench/bench_event_loop.py            # 100 adds, a 1,000-member join, 10,000 messages
    python bench/bench_event_loop.py --quick    # well under a minute: a CI smoke test

The UI runs on the same event loop as the client (qasync), so any stretch
of work that does not yield freezes the window. A ticker coroutine sleeps
1 ms at a time and records the largest gap between its wake-ups while the
client does, through its real code paths:

* **commit**: ``create_group`` with 100 members, then ``flush``: claiming
  the KeyPackages, building the commit that adds them (and its Welcome),
  sending it, and applying it;
* **join**: ``sync`` of a client whose queue holds a Welcome to a group of
  1,000 members: opening the Welcome and building the ratchet tree;
* **catch-up**: ``sync`` of a client whose queue holds 10,000 messages of a
  one-to-one chat: fetching, decrypting and storing each. Alice sends
  them first, one by one through her outbox, which takes many minutes for
  10,000 (``--messages 2000`` for a shorter full run).

The server runs in this process (``create_app`` through httpx's ASGI
transport), so its request handling shares the loop and is in the figures
too; the members other than the two clients are bare accounts (registered,
two KeyPackages uploaded) made by the bench. Target: the longest stall at
most 20 ms in each case. While MLS work runs, the client lowers the
interpreter's switch interval to 0.1 ms (``messenger/client/thread_switching.py``):
with the default 5 ms, the MLS thread releasing and retaking the GIL around
each ``cryptography`` call kept the loop waiting 20-45 ms during the commit,
with no callback of its own running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import keyring.backends.fail
from httpx_ws.transport import ASGIWebSocketTransport

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from messenger.api.credential import encode_credential
from messenger.client import ClientOptions, MessengerClient
from messenger.client.groups import new_key_package
from messenger.client.identity import CIPHER_SUITE, Account, register_account
from messenger.client.net import Backoff
from messenger.client.net.http import Transport
from messenger.client.net.signing import Signer
from messenger.client.store import Keychain, ScryptParams
from messenger.client.store.identity import Identity
from messenger.server import ServerConfig, create_app

FAST_KDF = ScryptParams(n=2**10, r=8, p=1, allow_weak=True)
URL = "http://benchserver"
TARGET_MS = 20.0


class GcPauses:
    """The longest garbage collection of each generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.longest = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            took = time.perf_counter() - self._started
            generation = info["generation"]
            self.longest[generation] = max(self.longest[generation], took)

    def line(self) -> str:
        return "longest GC pause per generation: " + ", ".join(
            f"gen {g} {ms * 1000:.1f} ms" for g, ms in enumerate(self.longest)
        )


class Ticker:
    """Sleeps 1 ms at a time and records the largest gap between wake-ups."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None
        self.gc = GcPauses()

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            self.ticks += 1
            last = now

    async def measure(self, work: Awaitable[object]) -> tuple[float, float]:
        """Run ``work`` with the ticker on; (longest gap in ms, elapsed s)."""
        self.longest, self.ticks = 0.0, 0
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.01)
        self.longest = 0.0
        self.gc = GcPauses()
        gc.callbacks.append(self.gc)
        started = time.perf_counter()
        try:
            await work
        finally:
            elapsed = time.perf_counter() - started
            gc.callbacks.remove(self.gc)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.longest * 1000, elapsed


class Bench:
    def __init__(self, root: Path, app: object, stack: contextlib.AsyncExitStack) -> None:
        self.root = root
        self.app = app
        self.stack = stack
        self.keychain = Keychain(backend=keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]

    async def asgi(self) -> ASGIWebSocketTransport:
        return await self.stack.enter_async_context(ASGIWebSocketTransport(self.app))  # type: ignore[arg-type]

    async def client(self, name: str) -> MessengerClient:
        options = ClientOptions(
            http_transport=await self.asgi(),
            backoff=Backoff(base=0.01, maximum=0.05),
            timeout=120.0,
        )
        client = await MessengerClient.create(
            name,
            "bench passphrase",
            data_dir=self.root / name,
            keychain=self.keychain,
            kdf=FAST_KDF,
            options=options,
        )
        self.stack.push_async_callback(client.close)
        await client.create_account(URL, handle=name)
        return client

    async def bare_members(self, count: int) -> list[str]:
        """``count`` accounts with two KeyPackages each on the server (no client)."""
        inner = await self.asgi()
        now = int(time.time())
        accounts = []
        for _ in range(count):
            anonymous = Transport(URL, transport=inner)
            registration = await register_account(anonymous, os.urandom)
            response = registration.response
            identity = Identity(
                server_url=URL,
                account_id=response.account_id,
                client_id=response.client_id,
                queue_id=response.queue_id,
                cipher_suite=CIPHER_SUITE,
                signature_private_key=registration.signature_private_key,
                signature_public_key=registration.signature_public_key,
                credential=encode_credential(response.credential),
                created_at=now * 1000,
                handle=None,
                server_key=registration.server_info.server_key,
            )
            signer = Signer(identity.client_id, identity.signature_private_key)
            account = Account.load(identity, signer)
            bundles = [new_key_package(account, os.urandom, now=now) for _ in range(2)]
            signed = Transport(URL, signer=signer, transport=inner)
            await signed.upload_key_packages(tuple(b.message() for b in bundles))
            accounts.append(response.account_id)
        return accounts


@contextlib.asynccontextmanager
async def bench_server(root: Path) -> AsyncIterator[Bench]:
    data = root / "server"
    config = ServerConfig(
        data_dir=data,
        database_url=f"sqlite:///{data / 'messenger.db'}",
        pow_difficulty=4,
        ip_requests_per_minute=10_000_000,
        account_requests_per_minute=10_000_000,
        registrations_per_ip_per_hour=10_000_000,
        lookups_per_account_per_minute=10_000_000,
        lookups_per_ip_per_minute=10_000_000,
        key_package_claims_per_hour=10_000_000,
        # The catch-up's sender floods one queue: no sender budget (as in bench_client.py).
        sender_messages_per_queue_per_minute=100_000_000,
        sender_bytes_per_queue_per_minute=100_000_000_000,
        max_queue_length=1_000_000,
    )
    app = create_app(config, run_sweeper=False)
    async with app.router.lifespan_context(app), contextlib.AsyncExitStack() as stack:
        yield Bench(root, app, stack)


def line(name: str, stall_ms: float, elapsed: float, pauses: GcPauses | None = None) -> None:
    verdict = "ok" if stall_ms <= TARGET_MS else f"over {TARGET_MS:.0f} ms"
    print(
        f"{name:<34} longest stall {stall_ms:7.1f} ms   ({elapsed:6.2f} s in all)  {verdict}",
        flush=True,
    )
    if pauses is not None:
        print(f"    {pauses.line()}", flush=True)


async def run(adds: int, join_size: int, messages: int) -> None:
    ticker = Ticker()
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        async with bench_server(Path(tmp)) as bench:
            setup = time.perf_counter()
            alice = await bench.client("alice")
            bob = await bench.client("bob")
            # By handle: the lookup gives Bob's contact token (docs/metadata.md §1).
            bob_id = (await alice.add_contact("bob")).account_id
            assert bob_id == (await bob.account()).account_id  # type: ignore[union-attr]
            others = await bench.bare_members(max(adds, join_size - 2))
            print(f"(set-up: {time.perf_counter() - setup:.1f} s)", flush=True)

            # (a) a commit adding `adds` members, built and sent by Alice.
            async def commit() -> None:
                await alice.create_group("big", others[:adds])
                await alice.flush(timeout=600)

            line(f"commit adding {adds} members", *await ticker.measure(commit()), ticker.gc)

            # (b) Bob joins a group of `join_size` members (processing the Welcome).
            await alice.create_group("huge", [*others[: join_size - 2], bob_id])
            await alice.flush(timeout=600)
            line(
                f"join to a {join_size}-member group", *await ticker.measure(bob.sync()), ticker.gc
            )

            # (c) Bob catches up on `messages` messages of a one-to-one chat.
            chat = await alice.create_conversation(bob_id)
            await alice.flush(timeout=600)
            await bob.sync()
            for start in range(0, messages, 1000):  # handed over a thousand at a time
                end = min(start + 1000, messages)
                await asyncio.gather(
                    *(alice.send_text(chat.id, f"message {i}") for i in range(start, end))
                )
            await alice.flush(timeout=3600)
            line(f"catch-up of {messages} messages", *await ticker.measure(bob.sync()), ticker.gc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="well under a minute: a smoke test")
    parser.add_argument("--adds", type=int, help="members the commit adds (100; quick 50)")
    parser.add_argument("--join", type=int, help="members of the group joined (1000; quick 200)")
    parser.add_argument("--messages", type=int, help="messages caught up on (10000; quick 1000)")
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="without the client's heap freezing (messenger/client/heap.py): the figures before",
    )
    args = parser.parse_args()
    if args.no_freeze:
        import messenger.client.client
        import messenger.client.groups

        for module in (messenger.client.client, messenger.client.groups):
            setattr(module, "settle", lambda: None)  # noqa: B010 -- a name the module imported
    adds, join_size, messages = (100, 1000, 10_000) if not args.quick else (50, 200, 1000)
    adds, join_size, messages = args.adds or adds, args.join or join_size, args.messages or messages
    print(
        f"longest event-loop stall (switch interval {sys.getswitchinterval() * 1000:.0f} ms,"
        f" target {TARGET_MS:.0f} ms)",
        flush=True,
    )
    asyncio.run(run(adds, join_size, messages))


if __name__ == "__main__":
    main()
