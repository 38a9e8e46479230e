"""Home-server delivery through WebSocket push on loopback.

Run from the repository root::

    python bench/bench_server.py                 # the full measurement (about a minute)
    python bench/bench_server.py --quick         # a few seconds: a CI smoke test
    python bench/bench_server.py --database-url postgresql://user:pw@127.0.0.1/db

It starts ``python -m messenger.server`` as a separate process on a free
loopback port (SQLite in a temporary directory unless ``--database-url`` is
given), registers the members of one group, connects every member to the
push WebSocket, and sends MLS application messages (opaque PrivateMessages)
over signed HTTP requests. Every message is delivered to every member's
queue, the sender's included, so a group of R members means R deliveries
per message.

Two measurements per group size R:

* **throughput**: as many messages as possible with a fixed number in
  flight; deliveries/s = pushed messages received over all sockets, divided
  by the time from the first send to the last receipt;
* **latency** at a fixed offered rate (open loop): send -> receive time of
  every delivery (send start to WebSocket receipt), p50 and p99.

Targets on the 2-core machine (the server and this client share it):
>= 5,000 deliveries/s on SQLite; p99 < 100 ms at 500 messages/s. Every loop
is bounded in count and time, and only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.fields import b64encode
from messenger.api.pow import solve_pow
from messenger.api.signing import (
    HEADER_CLIENT,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    canonical_request,
    possession_message,
)
from messenger.client.identity import encode_credential
from messenger.mls.ciphersuite import HPKECiphertext, get_cipher_suite
from messenger.mls.content import ContentType, PrivateMessage
from messenger.mls.credentials import Credential
from messenger.mls.key_package_bundle import generate_key_package
from messenger.mls.messages import MLSMessage
from messenger.mls.welcome import EncryptedGroupSecrets, Welcome

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Member:
    key: Ed25519PrivateKey
    client_id: str = ""
    queue_id: str = ""
    account_id: str = ""
    credential: m.Credential | None = None

    def headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        ts = int(time.time() * 1000)
        nonce = b64encode(os.urandom(16))
        message = canonical_request(method, target, self.client_id, ts, nonce, body)
        return {
            HEADER_CLIENT: self.client_id,
            HEADER_TIMESTAMP: str(ts),
            HEADER_NONCE: nonce,
            HEADER_SIGNATURE: b64encode(self.key.sign(message)),
            "content-type": "application/json",
        }


async def _post(http: httpx.AsyncClient, member: Member, path: str, model: m.Model) -> dict:
    body = model.dumps()
    response = await http.post(path, content=body, headers=member.headers("POST", path, body))
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.text}")
    return response.json()


async def _register(http: httpx.AsyncClient) -> Member:
    challenge = m.Challenge.from_json((await http.post(r.REGISTER_CHALLENGE)).json())
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    request = m.RegisterRequest(
        pub,
        challenge.challenge,
        solve_pow(challenge.challenge, pub, challenge.difficulty),
        key.sign(possession_message(challenge.challenge, pub)),
    )
    response = await http.post(
        r.REGISTER, content=request.dumps(), headers={"content-type": "application/json"}
    )
    reg = m.RegisterResponse.from_json(response.json())
    return Member(key, reg.client_id, reg.queue_id, reg.account_id, reg.credential)


async def _welcome(http: httpx.AsyncClient, creator: Member, others: list[Member]) -> bytes:
    """A Welcome the server accepts: it names KeyPackages the creator claimed from ``others``."""
    suite = get_cipher_suite(1)
    refs = []
    for other in others:
        assert other.credential is not None
        bundle = generate_key_package(
            suite,
            Credential.basic(encode_credential(other.credential)),
            other.key.private_bytes_raw(),
            os.urandom,
            now=int(time.time()),
        )
        key_package = MLSMessage(bundle.key_package).to_bytes()
        await _post(http, other, r.KEY_PACKAGES, m.UploadKeyPackagesRequest((key_package,)))
        claimed = await _post(
            http, creator, r.CLAIM_KEY_PACKAGES, m.ClaimKeyPackagesRequest(other.account_id)
        )
        for entry in m.ClaimKeyPackagesResponse.from_json(claimed).key_packages:
            kp = MLSMessage.from_bytes(entry.key_package).key_package
            refs.append(kp.ref(suite))
    secrets = tuple(
        EncryptedGroupSecrets(ref, HPKECiphertext(os.urandom(32), os.urandom(48))) for ref in refs
    )
    return MLSMessage(Welcome(1, secrets, os.urandom(64))).to_bytes()


def _message(group_id: bytes, body: bytes) -> bytes:
    msg = PrivateMessage(group_id, 1, ContentType.APPLICATION, b"", os.urandom(16), body)
    return MLSMessage(msg).to_bytes()


class _Http:
    """Keep-alive HTTP/1.1 connections for the send loop.

    httpx spends milliseconds per request in its connection pool at this
    concurrency, which would measure the client instead of the server; this
    is the minimum a client must do: write a request, read the response.
    """

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self._all: list[asyncio.StreamWriter] = []

    async def open(self) -> None:
        for _ in range(self.size):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self._all.append(writer)
            self._idle.put_nowait((reader, writer))

    async def close(self) -> None:
        for writer in self._all:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        reader, writer = await self._idle.get()
        try:
            head = f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\ncontent-length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(head.encode() + b"\r\n" + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            data = await reader.readexactly(length)
            return int(status_line.split()[1]), data
        finally:
            self._idle.put_nowait((reader, writer))


@dataclass
class Receipts:
    expected: int
    sent_at: dict[bytes, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    received: int = 0
    last: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, data: bytes, now: float) -> None:
        sent = self.sent_at.get(data)
        if sent is None:
            return
        self.latencies.append(now - sent)
        self.received += 1
        self.last = now
        if self.received >= self.expected:
            self.done.set()


async def _listen(ws: ClientConnection, receipts: Receipts) -> None:
    async for raw in ws:
        now = time.perf_counter()
        frame = json.loads(raw)
        if frame.get("type") != "messages":
            continue
        for item in m.PushMessages.from_json(frame).messages:
            receipts.record(item.data, now)


@contextlib.asynccontextmanager
async def _server(database_url: str | None) -> AsyncIterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "MESSENGER_HOST": "127.0.0.1",
            "MESSENGER_PORT": str(port),
            "MESSENGER_DATA_DIR": tmp,
            "MESSENGER_POW_DIFFICULTY": "1",
            "MESSENGER_IP_REQUESTS_PER_MINUTE": "100000000",
            "MESSENGER_ACCOUNT_REQUESTS_PER_MINUTE": "100000000",
            "MESSENGER_REGISTRATIONS_PER_IP_PER_HOUR": "100000000",
            "MESSENGER_KEY_PACKAGE_CLAIMS_PER_HOUR": "100000000",
            "MESSENGER_SENDER_MESSAGES_PER_QUEUE_PER_MINUTE": "100000000",
            "MESSENGER_SENDER_BYTES_PER_QUEUE_PER_MINUTE": "100000000000",
            "MESSENGER_MAX_CONNECTIONS_PER_ADDRESS": "0",
            "MESSENGER_LOG_LEVEL": "WARNING",
        }
        if database_url:
            env["MESSENGER_DATABASE_URL"] = database_url
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "messenger.server", env=env, cwd=REPO
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base) as http:
                for _ in range(300):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(r.HEALTH)).status_code == 200:
                            break
                    await asyncio.sleep(0.1)
                else:
                    raise RuntimeError("the server did not start")
            yield base
        finally:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@dataclass
class Result:
    members: int
    messages: int
    deliveries: int
    seconds: float
    latencies: list[float]

    @property
    def deliveries_per_second(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _run(
    base: str,
    members: int,
    messages: int,
    *,
    rate: float | None,
    in_flight: int,
    senders: int,
    timeout: float,
) -> Result:
    group_id = os.urandom(16)
    limits = httpx.Limits(max_connections=in_flight + 4, max_keepalive_connections=in_flight + 4)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        group = [await _register(http) for _ in range(members)]
        creator = group[0]
        await _post(http, creator, r.GROUPS, m.CreateGroupRequest(group_id))
        commit = MLSMessage(
            PrivateMessage(group_id, 0, ContentType.COMMIT, b"", os.urandom(16), os.urandom(64))
        ).to_bytes()
        queues = tuple(x.queue_id for x in group)
        await _post(
            http,
            creator,
            r.group_path(r.GROUP_COMMITS, group_id),
            m.CommitRequest(
                0, commit, queues, await _welcome(http, creator, group[1:]), queues[1:]
            ),
        )
        receipts = Receipts(expected=messages * members)
        ws_url = base.replace("http", "ws", 1)
        sockets: list[ClientConnection] = []
        listeners: list[asyncio.Task[None]] = []
        # From the start of each queue: the commit is pushed too, and ignored.
        for member in group:
            target = f"{r.QUEUE_WEBSOCKET}?after=0"
            headers = member.headers("GET", target, b"")
            headers.pop("content-type")
            ws = await connect(ws_url + target, additional_headers=headers, compression=None)
            sockets.append(ws)
            listeners.append(asyncio.create_task(_listen(ws, receipts)))
        await asyncio.sleep(0.2)

        path = r.group_path(r.GROUP_MESSAGES, group_id)
        payloads = [_message(group_id, os.urandom(24) + b"%d" % i) for i in range(messages)]
        requests = [m.SendRequest(p).dumps() for p in payloads]
        host, port = base.removeprefix("http://").rsplit(":", 1)
        pool = _Http(host, int(port), in_flight)
        await pool.open()
        started = time.perf_counter()

        async def send(i: int) -> None:
            sender = group[i % min(senders, members)]
            receipts.sent_at[payloads[i]] = time.perf_counter()
            body = requests[i]
            status, data = await pool.post(path, sender.headers("POST", path, body), body)
            if status != 200:
                raise RuntimeError(f"send: {status} {data[:200]!r}")

        tasks = []
        for i in range(messages):
            if rate is not None:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
        await pool.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receipts.done.wait(), timeout)
        elapsed = (receipts.last or time.perf_counter()) - started
        for ws in sockets:
            await ws.close()
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
    if receipts.received < receipts.expected:
        print(f"  warning: {receipts.expected - receipts.received} deliveries missing")
    return Result(members, messages, receipts.received, elapsed, receipts.latencies)


async def main_async(args: argparse.Namespace) -> int:
    if args.quick:
        plan = [(2, 200, None, 400.0), (5, 60, None, 100.0)]
    else:
        plan = [(2, 6000, None, 500.0), (50, 400, None, 100.0)]
    async with _server(args.database_url) as base:
        backend = "postgresql" if args.database_url else "sqlite"
        print(f"home server on {backend}, loopback, push over WebSocket")
        ok = True
        for members, count, _, rate in plan:
            throughput = await _run(
                base, members, count, rate=None, in_flight=32, senders=4, timeout=60
            )
            print(
                f"  {members:>2} recipients/message: {throughput.deliveries_per_second:8.0f} "
                f"deliveries/s ({throughput.deliveries} deliveries of {throughput.messages} "
                f"messages in {throughput.seconds:.2f} s, max throughput)"
            )
            latency_count = int(rate * (2 if args.quick else 10))
            latency = await _run(
                base, members, latency_count, rate=rate, in_flight=256, senders=4, timeout=60
            )
            print(
                f"  {members:>2} recipients/message at {rate:.0f} messages/s: "
                f"send->receive p50 {latency.percentile(0.50):6.1f} ms, "
                f"p99 {latency.percentile(0.99):6.1f} ms "
                f"({latency.deliveries} deliveries in {latency.seconds:.1f} s)"
            )
            if not args.quick and members == 2 and latency.percentile(0.99) >= 100:
                ok = False
        return 0 if ok or not args.strict else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: a smoke test")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
