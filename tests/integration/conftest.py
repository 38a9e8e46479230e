"""A real server process on loopback, and clients with separate stores.

The server is ``python -m messenger.server`` in a subprocess, on a free port
of 127.0.0.1 with SQLite in a temporary directory (one per test module);
each client is a :class:`~messenger.client.MessengerClient` with its own
profile directory, a cheap key-derivation function, no OS keyring, and a
short backoff so reconnects in tests are quick.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import keyring.backends.fail
import pytest

from messenger.client import ClientOptions, MessengerClient
from messenger.client.net import Backoff
from messenger.client.store import Keychain, ScryptParams

FAST_KDF = ScryptParams(n=2**10, r=8, p=1, allow_weak=True)
PASSPHRASE = "integration passphrase"
#: The longest any single wait in these tests may take.
WAIT = 20.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]

    def metric(self, name: str, **labels: str) -> float:
        """A counter of the server's /metrics (0 if it has no sample yet)."""
        text = httpx.get(self.url + "/metrics", timeout=5).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "")
        match = re.search(rf"^{pattern} ([0-9.e+]+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0


def start_server(
    data_dir: Path, port: int | None = None, *, database_url: str = ""
) -> ServerProcess:
    """A ``messenger-server`` process on 127.0.0.1: SQLite in ``data_dir``, or ``database_url``."""
    port = port or free_port()
    env = dict(
        os.environ,
        MESSENGER_HOST="127.0.0.1",
        MESSENGER_PORT=str(port),
        MESSENGER_DATA_DIR=str(data_dir),
        MESSENGER_DATABASE_URL=database_url,
        MESSENGER_POW_DIFFICULTY="8",
        MESSENGER_LOG_LEVEL="WARNING",
        MESSENGER_IP_REQUESTS_PER_MINUTE="1000000",
        MESSENGER_ACCOUNT_REQUESTS_PER_MINUTE="1000000",
        MESSENGER_REGISTRATIONS_PER_IP_PER_HOUR="1000000",
    )
    env.pop("MESSENGER_CONFIG", None)
    process = subprocess.Popen([sys.executable, "-m", "messenger.server"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return ServerProcess(url, process)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.05)


def stop_server(running: ServerProcess) -> None:
    running.process.terminate()
    try:
        running.process.wait(10)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = start_server(tmp_path_factory.mktemp("server"))
    try:
        yield running
    finally:
        stop_server(running)


def keychain() -> Keychain:
    return Keychain(backend=keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]


CLIENT_OPTIONS = ClientOptions(backoff=Backoff(base=0.05, maximum=1.0), timeout=10.0)


class Clients:
    """Makes and opens clients, each with its own data directory; closes them all."""

    def __init__(self, root: Path, server: ServerProcess) -> None:
        self.root = root
        self.server = server
        self.open_clients: list[MessengerClient] = []
        self.introduced: list[MessengerClient] = []

    def data_dir(self, name: str) -> Path:
        return self.root / name

    async def new(
        self,
        name: str,
        *,
        handle: str | None = None,
        start: bool = True,
        options: ClientOptions = CLIENT_OPTIONS,
        introduce: bool = True,
    ) -> MessengerClient:
        """A new profile with an account, started unless ``start`` is false.

        With ``introduce``, it and the other clients made here know each other's
        contact tokens (docs/metadata.md §1), as if they had exchanged invite
        links: the tests add each other by account ID.
        """
        client = await MessengerClient.create(
            name,
            PASSPHRASE,
            data_dir=self.data_dir(name),
            keychain=keychain(),
            kdf=FAST_KDF,
            options=options,
        )
        self.open_clients.append(client)
        await client.create_account(self.server.url, handle)
        if introduce:
            await self.introduce(client)
        if start:
            await client.start()
        return client

    async def introduce(self, client: MessengerClient) -> None:
        """Give ``client`` and the open clients introduced before it each other's tokens."""
        mine = _token_of(client)
        if mine is None:
            return
        for other in self.introduced:
            theirs = _token_of(other)
            if other is client or theirs is None or other not in self.open_clients:
                continue
            for to, (who, token) in ((other, mine), (client, theirs)):
                if who != to._require().account.account_id:
                    await to._store.run(lambda s, w=who, t=token: s.contact_tokens.set(w, t, now=0))
        self.introduced.append(client)

    async def open(
        self, name: str, *, start: bool = True, options: ClientOptions = CLIENT_OPTIONS
    ) -> MessengerClient:
        client = await MessengerClient.open(
            name,
            PASSPHRASE,
            data_dir=self.data_dir(name),
            keychain=keychain(),
            options=options,
        )
        self.open_clients.append(client)
        if start:
            await client.start()
            await self.introduce(client)
        return client

    async def close(self, client: MessengerClient) -> None:
        await client.close()
        if client in self.open_clients:
            self.open_clients.remove(client)

    async def close_all(self) -> None:
        for client in list(self.open_clients):
            await self.close(client)


def _token_of(client: MessengerClient) -> tuple[str, bytes] | None:
    """A client's account and its contact token (docs/metadata.md §1); None
    before it has a session, or for an account without an account key."""
    from messenger.client.contact_tokens import own_token

    session = client._session
    token = None if session is None else own_token(session.account)
    return None if session is None or token is None else (session.account.account_id, token)


@pytest.fixture
async def clients(tmp_path: Path, server: ServerProcess) -> AsyncIterator[Clients]:
    made = Clients(tmp_path, server)
    try:
        yield made
    finally:
        await made.close_all()


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT
) -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def moves_settled(
    movers: Sequence[MessengerClient], views: Sequence[tuple[MessengerClient, int]]
) -> None:
    """Until the ``movers`` (new members) have sent their move off the contact
    queue (docs/metadata.md §1) and every client of ``views`` (client,
    conversation ID) is at the same epoch of the group."""
    for mover in movers:
        await mover.flush(WAIT)

    async def settled() -> bool:
        return len({await client.group_epoch(cid) for client, cid in views}) == 1

    await eventually(settled, "the new members' moves to reach everyone")
