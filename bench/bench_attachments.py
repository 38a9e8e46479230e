"""Attachments: upload and download throughput of one large file, and peak memory.

Run from the repository root::

    python bench/bench_attachments.py            # a 100 MB file (about a minute)
    python bench/bench_attachments.py --quick    # an 8 MB file: a CI smoke test

It starts ``python -m messenger.server`` on a free loopback port (SQLite in
a temporary directory, flood limits raised: ``bench_client.local_server``)
and runs two clients in this process (one event loop, over a real socket):

1. **upload**: Alice sends a file of random bytes from disk; the time from
   :meth:`MessengerClient.send_file` until its attachment is ``sent``
   (encrypted into her profile, reserved, uploaded in parts of 4 MiB, the
   MLS message queued) -- target >= 50 MB/s;
2. **download**: Bob (auto-download off) asks for it; the time from
   :meth:`MessengerClient.download` until it is ``downloaded`` (every part
   checked chunk by chunk, the digest matched) -- target >= 50 MB/s; then
   the file he saves is compared with the original.

Memory: the clients' peak of Python allocations during each transfer
(tracemalloc; the file is never held whole: it should stay within a few
parts of 4 MiB), and the server's peak resident size (VmHWM of its
process, Linux) against its size before the transfers. Every wait is
bounded, and only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import filecmp
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_client import FAST_KDF, OPTIONS, PASSPHRASE, keychain, local_server

from messenger.client import MessageKind, MessengerClient
from messenger.client.store.attachments import TransferState

#: The longest any one step may take.
TIMEOUT = 600.0
TARGET_MB_S = 50.0
MB = 1_000_000


async def new_client(root: Path, name: str, url: str) -> MessengerClient:
    client = await MessengerClient.create(
        name, PASSPHRASE, data_dir=root / name, keychain=keychain(), kdf=FAST_KDF, options=OPTIONS
    )
    await client.create_account(url, f"{name}{os.getpid()}")
    return client


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)


def state_of(
    client: MessengerClient, message_id: int, *states: TransferState
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        view = await client.message(message_id)
        if (
            view.attachment is not None
            and view.attachment.error
            and view.attachment.state
            in (
                TransferState.UPLOAD_FAILED,
                TransferState.FAILED,
                TransferState.GONE,
            )
        ):
            raise RuntimeError(f"the transfer failed: {view.attachment.error}")
        return view.attachment is not None and view.attachment.state in states

    return check


def peak_rss_kib(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of a process in KiB (Linux; (0, 0) elsewhere)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0, 0
    found: dict[str, int] = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found.get("VmRSS", 0), found.get("VmHWM", 0)


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 20))
            f.write(block)
            left -= len(block)


def verdict(rate: float, size: int) -> str:
    if size < 100 * MB:
        return "(small file: fixed costs dominate; the target is for 100 MB)"
    return "ok" if rate >= TARGET_MB_S else f"BELOW the {TARGET_MB_S:.0f} MB/s target"


async def run(size: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-attachments-") as tmp:
        root = Path(tmp)
        source = root / "file.bin"
        write_random(source, size)
        async with local_server(root / "server") as (url, server_pid):
            alice = await new_client(root, "alice", url)
            bob = await new_client(root, "bob", url)
            try:
                await bob.set_auto_download_bytes(0)
                contact = await alice.add_contact(f"bob{os.getpid()}")
                chat = await alice.create_conversation(contact.account_id)
                await alice.start()
                await bob.start()
                await alice.send_text(chat.id, "warm-up")

                async def bob_has_chat() -> bool:
                    return bool(await bob.conversations())

                await until(bob_has_chat, "Bob joined the conversation")
                server_before, _ = peak_rss_kib(server_pid)

                tracemalloc.start()
                started = time.perf_counter()
                message = await alice.send_file(chat.id, source)
                await until(state_of(alice, message.id, TransferState.SENT), "uploaded")
                up_s = time.perf_counter() - started
                _, up_peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()

                (bob_chat,) = await bob.conversations()

                async def bob_has_file() -> bool:
                    views = await bob.messages(bob_chat.id)
                    return any(v.message.kind is MessageKind.FILE for v in views)

                await until(bob_has_file, "Bob received the file message")
                received = [
                    v for v in await bob.messages(bob_chat.id) if v.message.kind is MessageKind.FILE
                ][-1]
                tracemalloc.start()
                started = time.perf_counter()
                await bob.download(received.id)
                await until(state_of(bob, received.id, TransferState.DOWNLOADED), "downloaded")
                down_s = time.perf_counter() - started
                _, down_peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                _, server_peak = peak_rss_kib(server_pid)

                saved = await bob.save_attachment(received.id, root / "saved.bin")
                same = await asyncio.to_thread(filecmp.cmp, source, saved, False)
            finally:
                await alice.close()
                await bob.close()
    up_rate, down_rate = size / MB / up_s, size / MB / down_s
    print(f"  upload:   {up_rate:7.1f} MB/s ({up_s:.2f} s)  {verdict(up_rate, size)}")
    print(f"  download: {down_rate:7.1f} MB/s ({down_s:.2f} s)  {verdict(down_rate, size)}")
    print(
        f"  client peak (tracemalloc): upload {up_peak / 2**20:.1f} MiB, "
        f"download {down_peak / 2**20:.1f} MiB"
    )
    if server_peak:
        print(
            f"  server peak RSS: {server_peak / 1024:.1f} MiB "
            f"(+{max(0, server_peak - server_before) / 1024:.1f} MiB over its size before)"
        )
    print(f"  saved file identical: {same}")
    if not same:
        raise SystemExit("the downloaded file differs from the original")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="an 8 MB file: a smoke test")
    parser.add_argument("--mb", type=int, help="file size in MB (default 100)")
    args = parser.parse_args()
    size = (args.mb or (8 if args.quick else 100)) * MB
    print(f"attachments: one file of {size / MB:.0f} MB over loopback", flush=True)
    asyncio.run(run(size))
    print("(shared cores: server and both clients compete; figures are noisy)")


if __name__ == "__main__":
    main()
