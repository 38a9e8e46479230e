"""Home-server delivery through WebSocket push on loopback.

Run from the repository root::

    python bench/bench_server.py                 # the full measurement (about a minute)
    python bench/bench_server.py --quick         # a few seconds: a CI smoke test
    python bench/bench_server.py --database-url postgresql://user:pw@127.0.0.1/db
    python bench/bench_server.py --database-url postgresql://... --processes 2
    python bench/bench_server.py --database-url postgresql://... --scale-out [--quick]

It starts ``python -m messenger.server`` as a separate process on a free
loopback port (SQLite in a temporary directory unless ``--database-url`` is
given), registers the members of one group, connects every member to the
push WebSocket, and sends MLS application messages (opaque PrivateMessages)
over sealed HTTP requests (the send token, docs/metadata.md §3). Every
message is delivered to every member's queue, the sender's included, so a
group of R members means R deliveries per message.

With ``--processes N`` (PostgreSQL only) it starts N server processes on
the same database and the same secret key file, each on its own loopback
port, and spreads the load over them the way a reverse proxy would without
sticky sessions: the send connections round-robin over the ports, and the
members' push WebSockets too, so most pushes cross processes through
``NOTIFY``. ``--scale-out`` measures the 2-recipient throughput with one
process and with two, three runs each, and prints the medians and their
ratio with the load average seen.

Every run checks that each member received every message exactly once, in
consecutive sequence numbers, and in the same order as every other member;
a run that does not is reported as FAILED and the exit status is 1. The
server processes' CPU time per message is printed too (from
``/proc/<pid>/stat``): on a machine shared with other work it is steadier
than the rates.

Two measurements per group size R:

* **throughput**: as many messages as possible with a fixed number in
  flight; deliveries/s = pushed messages received over all sockets, divided
  by the time from the first send to the last receipt;
  then every member acks its whole queue at once (the members of a group
  release the same stored messages together): entries deleted per second;
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
import hashlib
import json
import os
import socket
import statistics
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg_schema import fresh_schema

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.fields import b64encode
from messenger.api.pow import solve_pow
from messenger.api.sealed import token_digest
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


async def _address(http: httpx.AsyncClient, member: Member) -> str:
    """A delivery address of ``member``'s queue, as its leaves carry (docs/metadata.md §1)."""
    response = await http.get(r.QUEUE_ADDRESS, headers=member.headers("GET", r.QUEUE_ADDRESS, b""))
    if response.status_code != 200:
        raise RuntimeError(f"{r.QUEUE_ADDRESS}: {response.status_code} {response.text}")
    return m.QueueAddressResponse.from_json(response.json()).address


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


async def _welcome(
    http: httpx.AsyncClient, creator: Member, others: list[Member]
) -> tuple[bytes, tuple[bytes, ...]]:
    """A Welcome the server accepts, and the claim tokens of the KeyPackages it names,
    which the creator claimed from ``others``."""
    suite = get_cipher_suite(1)
    refs = []
    claims: list[bytes] = []
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
            assert entry.claim_token is not None
            claims.append(entry.claim_token)
    secrets = tuple(
        EncryptedGroupSecrets(ref, HPKECiphertext(os.urandom(32), os.urandom(48))) for ref in refs
    )
    return MLSMessage(Welcome(1, secrets, os.urandom(64))).to_bytes(), tuple(claims)


def send_token(group_id: bytes) -> bytes:
    """The bench's epoch-1 send token of a group (real clients use the MLS exporter)."""
    return hashlib.sha256(b"bench send token\n" + group_id).digest()


def _message(group_id: bytes, body: bytes) -> bytes:
    msg = PrivateMessage(group_id, 1, ContentType.APPLICATION, b"", os.urandom(16), body)
    return MLSMessage(msg).to_bytes()


class _Http:
    """Keep-alive HTTP/1.1 connections for the send loop.

    httpx spends milliseconds per request in its connection pool at this
    concurrency, which would measure the client instead of the server; this
    is the minimum a client must do: write a request, read the response.
    """

    def __init__(self, bases: list[str], size: int) -> None:
        #: Connection i goes to server i mod N: a proxy's round robin.
        self.addresses = [base.removeprefix("http://").rsplit(":", 1) for base in bases]
        self.host, self.size = self.addresses[0][0], size
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self._all: list[asyncio.StreamWriter] = []

    async def open(self) -> None:
        for i in range(self.size):
            host, port = self.addresses[i % len(self.addresses)]
            reader, writer = await asyncio.open_connection(host, int(port))
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
    #: The group of each member (members of all groups, numbered together).
    group_of: list[int]
    #: How many messages each group is sent.
    group_messages: list[int]
    sent_at: dict[bytes, float] = field(default_factory=dict)
    #: The message number of each payload sent.
    index: dict[bytes, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    received: int = 0
    last: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: Per member: (seq, message number) of each benchmark message received.
    orders: list[list[tuple[int, int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.orders = [[] for _ in self.group_of]

    def record(self, member: int, seq: int, data: bytes, now: float) -> None:
        sent = self.sent_at.get(data)
        if sent is None:
            return
        self.orders[member].append((seq, self.index[data]))
        self.latencies.append(now - sent)
        self.received += 1
        self.last = now
        if self.received >= self.expected:
            self.done.set()

    def problems(self) -> list[str]:
        """What broke exactly-once, in-order delivery (nothing: an empty list)."""
        found: list[str] = []
        first: dict[int, list[int]] = {}
        for member, got in enumerate(self.orders):
            group = self.group_of[member]
            seqs = [seq for seq, _ in got]
            numbers = [n for _, n in got]
            if len(set(numbers)) != len(numbers):
                found.append(f"member {member}: {len(numbers) - len(set(numbers))} duplicates")
            if len(set(numbers)) != self.group_messages[group]:
                missing = self.group_messages[group] - len(set(numbers))
                found.append(f"member {member}: {missing} missing")
            if seqs and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
                found.append(f"member {member}: sequence numbers not consecutive in order")
            if numbers != first.setdefault(group, numbers):
                found.append(f"member {member}: another order than the group's first member")
        return found


async def _listen(ws: ClientConnection, member: int, receipts: Receipts) -> None:
    async for raw in ws:
        now = time.perf_counter()
        frame = json.loads(raw)
        if frame.get("type") != "messages":
            continue
        for item in m.PushMessages.from_json(frame).messages:
            receipts.record(member, item.seq, item.data, now)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_seconds() -> float:
    """CPU time of every ``postgres`` process so far (Linux; other users' work included)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@dataclass
class Servers:
    """Server processes on one database: their base URLs and process IDs."""

    bases: list[str]
    pids: list[int]

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(pid) for pid in self.pids)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_healthy(base: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(300):
            if process.returncode is not None:
                raise RuntimeError("the server exited")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(r.HEALTH)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start")


@contextlib.asynccontextmanager
async def _servers(database_url: str | None, processes: int = 1) -> AsyncIterator[Servers]:
    """``processes`` servers on one database, each on its own loopback port.

    On PostgreSQL the run gets a schema of its own (:func:`pg_schema.fresh_schema`).
    They share the data directory, so the same secret key file: the first
    one creates it, the others start once it is up.
    """
    if processes > 1 and not database_url:
        raise SystemExit("several processes need PostgreSQL (--database-url)")
    async with fresh_schema(database_url) as url, _processes(url, processes) as servers:
        yield servers


@contextlib.asynccontextmanager
async def _processes(database_url: str | None, processes: int) -> AsyncIterator[Servers]:
    """:func:`_servers` on the database ``database_url`` as given."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "MESSENGER_HOST": "127.0.0.1",
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
        command = [sys.executable, "-m", "messenger.server"]
        started: list[asyncio.subprocess.Process] = []
        bases: list[str] = []
        try:
            for _ in range(processes):
                port = _free_port()
                process = await asyncio.create_subprocess_exec(
                    *command, env={**env, "MESSENGER_PORT": str(port)}, cwd=REPO
                )
                started.append(process)
                bases.append(f"http://127.0.0.1:{port}")
                await _wait_healthy(bases[-1], process)
            yield Servers(bases, [p.pid for p in started])
        finally:
            for process in started:
                if process.returncode is None:
                    process.terminate()
            for process in started:
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


@contextlib.asynccontextmanager
async def _server(database_url: str | None) -> AsyncIterator[str]:
    """One server process (:func:`_servers`); its base URL."""
    async with _servers(database_url, 1) as servers:
        yield servers.bases[0]


@dataclass
class Result:
    members: int
    messages: int
    deliveries: int
    seconds: float
    latencies: list[float]
    problems: list[str] = field(default_factory=list)
    server_cpu: float = float("nan")
    client_cpu: float = float("nan")
    database_cpu: float = float("nan")
    #: Queue entries every member's ack then deleted, and how long that took.
    acked: int = 0
    ack_seconds: float = float("nan")

    @property
    def deliveries_per_second(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _group(http: httpx.AsyncClient, members: int) -> tuple[bytes, list[Member]]:
    """A new group of ``members`` registered clients (the first one created it)."""
    group_id = os.urandom(16)
    group = [await _register(http) for _ in range(members)]
    await _start_group(http, group_id, group)
    return group_id, group


async def _start_group(http: httpx.AsyncClient, group_id: bytes, group: list[Member]) -> None:
    """``group[0]`` creates ``group_id`` and adds the others (epoch 1)."""
    creator = group[0]
    await _post(http, creator, r.GROUPS, m.CreateGroupRequest(group_id))
    commit = MLSMessage(
        PrivateMessage(group_id, 0, ContentType.COMMIT, b"", os.urandom(16), os.urandom(64))
    ).to_bytes()
    queues = tuple([await _address(http, x) for x in group])  # the server opens them
    welcome, claims = await _welcome(http, creator, group[1:])
    await _post(
        http,
        creator,
        r.group_path(r.GROUP_COMMITS, group_id),
        m.CommitRequest(
            0,
            commit,
            queues,
            welcome,
            queues[1:],
            send_token_hash=token_digest(send_token(group_id)),
            claims=claims,
        ),
    )


async def _run(
    servers: Servers,
    members: int,
    messages: int,
    *,
    rate: float | None,
    in_flight: int,
    timeout: float,
    groups: int = 1,
) -> Result:
    """Send ``messages`` over ``groups`` groups of ``members`` (message i to group i mod G)."""
    limits = httpx.Limits(max_connections=in_flight + 4, max_keepalive_connections=in_flight + 4)
    async with httpx.AsyncClient(base_url=servers.bases[0], limits=limits, timeout=30) as http:
        made = [await _group(http, members) for _ in range(groups)]
    counts = [len(range(g, messages, groups)) for g in range(groups)]
    receipts = Receipts(
        expected=messages * members,
        group_of=[g for g in range(groups) for _ in range(members)],
        group_messages=counts,
    )
    sockets: list[ClientConnection] = []
    listeners: list[asyncio.Task[None]] = []
    # From the start of each queue: the commit is pushed too, and ignored.
    # Member i listens on server i mod N, so with N > 1 most pushes cross
    # processes (NOTIFY).
    everyone = [member for _, group in made for member in group]
    for i, member in enumerate(everyone):
        ws_url = servers.bases[i % len(servers.bases)].replace("http", "ws", 1)
        target = f"{r.QUEUE_WEBSOCKET}?after=0"
        headers = member.headers("GET", target, b"")
        headers.pop("content-type")
        ws = await connect(ws_url + target, additional_headers=headers, compression=None)
        sockets.append(ws)
        listeners.append(asyncio.create_task(_listen(ws, i, receipts)))
    await asyncio.sleep(0.2)

    paths = [r.group_path(r.GROUP_MESSAGES, group_id) for group_id, _ in made]
    payloads = [_message(made[i % groups][0], os.urandom(24) + b"%d" % i) for i in range(messages)]
    receipts.index = {p: i for i, p in enumerate(payloads)}
    requests = [
        m.SendRequest(p, token=send_token(made[i % groups][0])).dumps()
        for i, p in enumerate(payloads)
    ]
    pool = _Http(servers.bases, in_flight)
    await pool.open()
    cpu_before = servers.cpu_seconds()
    client_before = time.process_time()
    database_before = _postgres_cpu_seconds()
    started = time.perf_counter()

    async def send(i: int) -> None:
        path = paths[i % groups]
        receipts.sent_at[payloads[i]] = time.perf_counter()
        body = requests[i]
        # Sealed (docs/metadata.md §3): the token, no signature.
        status, data = await pool.post(path, {"content-type": "application/json"}, body)
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
    server_cpu = servers.cpu_seconds() - cpu_before
    client_cpu = time.process_time() - client_before
    database_cpu = _postgres_cpu_seconds() - database_before
    for ws in sockets:
        await ws.close()
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    acked, ack_seconds = await _ack_everything(servers, everyone, in_flight)
    return Result(
        members,
        messages,
        receipts.received,
        elapsed,
        receipts.latencies,
        receipts.problems(),
        server_cpu,
        client_cpu,
        database_cpu,
        acked,
        ack_seconds,
    )


async def _ack_everything(
    servers: Servers, everyone: list[Member], in_flight: int
) -> tuple[int, float]:
    """Every member acks its whole queue at once; (entries deleted, seconds).

    The members of a group ack the same messages together, so their acks
    meet on the same stored messages' counts of holders (server migrations 15, 18).
    """
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=servers.bases[0], limits=limits, timeout=60) as http:
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(_post(http, member, r.ACK, m.AckRequest(1 << 62)) for member in everyone)
        )
        seconds = time.perf_counter() - started
    return sum(int(a["deleted"]) for a in answers), seconds


def _throughput_line(result: Result, processes: int = 1) -> str:
    on = f" on {processes} processes" if processes > 1 else ""
    line = (
        f"  {result.members:>2} recipients/message{on}: "
        f"{result.deliveries_per_second:8.0f} deliveries/s ({result.deliveries} deliveries "
        f"of {result.messages} messages in {result.seconds:.2f} s, max throughput; "
        f"CPU ms/message: server {result.server_cpu / result.messages * 1000:.2f}, "
        f"this client {result.client_cpu / result.messages * 1000:.2f}, "
        f"postgres {result.database_cpu / result.messages * 1000:.2f})"
    )
    line += (
        f"\n     then every member acks at once: {result.acked} entries in "
        f"{result.ack_seconds:.2f} s ({result.acked / result.ack_seconds:.0f} entries/s)"
    )
    if result.problems:
        line += "\n    FAILED: " + "; ".join(result.problems)
    return line


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


async def _scale_out(args: argparse.Namespace) -> int:
    """One process against two on the same PostgreSQL: medians of three runs, and the ratio."""
    count = 600 if args.quick else 6000
    runs = 1 if args.quick else 3
    medians: dict[int, float] = {}
    ok = True
    print(
        f"scale-out: 2 recipients/message, {args.groups} group(s), max throughput, "
        "PostgreSQL, loopback"
    )
    for processes in (1, 2):
        async with _servers(args.database_url, processes) as servers:
            rates = []
            for run in range(runs):
                print(f"  {_load()}")
                result = await _run(
                    servers,
                    2,
                    count,
                    rate=None,
                    in_flight=args.in_flight,
                    timeout=60,
                    groups=args.groups,
                )
                ok = ok and not result.problems and result.deliveries == 2 * count
                rates.append(result.deliveries_per_second)
                print(f"  run {run + 1}:" + _throughput_line(result, processes)[1:])
            medians[processes] = statistics.median(rates)
            print(f"  {processes} process(es): median {medians[processes]:.0f} deliveries/s")
    ratio = medians[2] / medians[1] if medians[1] else float("nan")
    print(f"  two processes / one process: {ratio:.2f}x ({_load()})")
    if args.strict and ratio < 1.5:
        ok = False
    return 0 if ok else 1


async def main_async(args: argparse.Namespace) -> int:
    if args.scale_out:
        return await _scale_out(args)
    if args.quick:
        plan = [(2, 200, None, 400.0), (5, 60, None, 100.0)]
    else:
        plan = [(2, 6000, None, 500.0), (50, 400, None, 100.0)]
    async with _servers(args.database_url, args.processes) as servers:
        backend = "postgresql" if args.database_url else "sqlite"
        print(f"home server on {backend}, loopback, push over WebSocket ({_load()})")
        ok = True
        for members, count, _, rate in plan:
            throughput = await _run(
                servers,
                members,
                count,
                rate=None,
                in_flight=args.in_flight,
                timeout=60,
            )
            print(_throughput_line(throughput, args.processes))
            ok = ok and not throughput.problems
            latency_count = int(rate * (2 if args.quick else 10))
            latency = await _run(
                servers, members, latency_count, rate=rate, in_flight=256, timeout=60
            )
            print(
                f"  {members:>2} recipients/message at {rate:.0f} messages/s: "
                f"send->receive p50 {latency.percentile(0.50):6.1f} ms, "
                f"p99 {latency.percentile(0.99):6.1f} ms "
                f"({latency.deliveries} deliveries in {latency.seconds:.1f} s)"
            )
            if latency.problems:
                print("    FAILED: " + "; ".join(latency.problems))
                ok = False
            if args.strict and not args.quick and members == 2 and latency.percentile(0.99) >= 100:
                ok = False
        return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: a smoke test")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--processes", type=int, default=1, help="server processes on one PostgreSQL"
    )
    parser.add_argument(
        "--scale-out", action="store_true", help="one process against two (PostgreSQL)"
    )
    parser.add_argument("--in-flight", type=int, default=32, help="sends in flight (throughput)")
    parser.add_argument(
        "--groups", type=int, default=1, help="--scale-out: spread the sends over this many groups"
    )
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
