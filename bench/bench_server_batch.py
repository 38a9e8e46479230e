"""Batch sends against single sends, through the home server on loopback.

Run from the repository root::

    python bench/bench_server_batch.py            # 2,000 messages per case (about 20 s)
    python bench/bench_server_batch.py --quick    # 300 messages per case: a smoke test
    python bench/bench_server_batch.py --database-url postgresql://user:pw@127.0.0.1/db

It starts ``python -m messenger.server`` as a separate process on a free
loopback port (SQLite in a temporary directory unless ``--database-url`` is
given; the sender budgets raised so that only speed is measured), makes a
one-to-one group, connects the receiver to the push WebSocket, and sends
MLS application messages (opaque PrivateMessages) from one client through
the client's own :class:`messenger.client.net.Transport`, as the outbox
does:

* **single, 1 in flight**: ``POST /v1/groups/{id}/messages``, one after another;
* **single, 8 in flight**: the same with eight requests at a time;
* **batch of B, 1 in flight**: ``POST /v1/groups/{id}/messages/batch`` with B
  messages per request, one request after another (B = 20, 100).

For each case it prints messages/s from the first send to the last answer
(accepted) and to the last push received by the other member (delivered).
Every loop is bounded, and only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server import Member, _message, _register, _server, _start_group, send_token

from messenger.api import models as m
from messenger.api import routes as r
from messenger.client.net import Signer, Transport


async def _pair(base: str) -> tuple[bytes, Member, Member]:
    """A one-to-one group: (its ID, the sender, the receiver)."""
    group_id = os.urandom(32)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        sender, receiver = await _register(http), await _register(http)
        await _start_group(http, group_id, [sender, receiver])
    return group_id, sender, receiver


async def _receive(ws: ClientConnection, wanted: set[bytes], done: asyncio.Event) -> float:
    """Read pushes until every message of ``wanted`` came; the time of the last one."""
    last = 0.0
    async for raw in ws:
        frame = json.loads(raw)
        if frame.get("type") != "messages":
            continue
        for item in m.PushMessages.from_json(frame).messages:
            if item.data in wanted:
                wanted.discard(item.data)
                last = time.perf_counter()
        if not wanted:
            done.set()
            return last
    return last


async def _case(base: str, count: int, batch: int, in_flight: int) -> tuple[float, float]:
    """(accepted messages/s, delivered messages/s) for one way of sending."""
    group_id, sender, receiver = await _pair(base)
    payloads = [_message(group_id, os.urandom(24) + b"%d" % i) for i in range(count)]
    token = send_token(group_id)
    bodies = [m.SendRequest(p, os.urandom(16), token).dumps() for p in payloads]
    target = f"{r.QUEUE_WEBSOCKET}?after=0"
    headers = receiver.headers("GET", target, b"")
    headers.pop("content-type")
    ws = await connect(
        base.replace("http", "ws", 1) + target, additional_headers=headers, compression=None
    )
    done = asyncio.Event()
    listener = asyncio.create_task(_receive(ws, set(payloads), done))
    transport = Transport(base, signer=Signer(sender.client_id, sender.key.private_bytes_raw()))
    try:
        chunks = [bodies[i : i + batch] for i in range(0, count, batch)]
        queue: asyncio.Queue[list[bytes]] = asyncio.Queue()
        for chunk in chunks:
            queue.put_nowait(chunk)

        async def worker() -> None:
            while not queue.empty():
                chunk = queue.get_nowait()
                if batch == 1:
                    await transport.send(group_id, chunk[0])
                else:
                    await transport.send_batch(group_id, list(chunk))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        accepted = time.perf_counter() - started
        await asyncio.wait_for(done.wait(), 120)
        delivered = await listener - started
    finally:
        await transport.aclose()
        await ws.close()
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    return count / accepted, count / delivered


async def main_async(args: argparse.Namespace) -> int:
    count = 300 if args.quick else 2000
    cases = [("single, 1 in flight", 1, 1), ("single, 8 in flight", 1, 8)]
    cases += [("batch of 20, 1 in flight", 20, 1), ("batch of 100, 1 in flight", 100, 1)]
    async with _server(args.database_url) as base:
        backend = "postgresql" if args.database_url else "sqlite"
        print(f"home server on {backend}, loopback; {count} messages per case, one sender")
        figures: dict[str, float] = {}
        for name, batch, in_flight in cases:
            accepted, delivered = await _case(base, count, batch, in_flight)
            figures[name] = accepted
            print(f"  {name:<26} {accepted:8.0f} msg/s accepted  {delivered:8.0f} msg/s delivered")
        ratio = figures["batch of 100, 1 in flight"] / figures["single, 1 in flight"]
        print(f"  batch of 100 / single (1 in flight): {ratio:.1f}x")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 messages per case")
    parser.add_argument("--database-url", default=None, help="PostgreSQL instead of SQLite")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
