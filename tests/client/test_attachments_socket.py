"""An attachment over a real socket: uvicorn on 127.0.0.1, plain HTTP (loopback).

The in-process tests do not exercise the HTTP server's handling of raw
bodies and raw answers of several MiB; this sends a file of a few MiB
through uvicorn and back, and checks what arrives.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from messenger.client import ClientOptions, MessageKind, MessengerClient
from messenger.client.net import Backoff
from messenger.client.store import Keychain
from messenger.client.store.attachments import TransferState
from messenger.server import ServerConfig, create_app

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring

pytestmark = pytest.mark.anyio

WAIT = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def server_url(tmp_path: Path) -> AsyncIterator[str]:
    config = ServerConfig(
        data_dir=tmp_path / "server",
        pow_difficulty=4,
        ip_requests_per_minute=1_000_000,
        account_requests_per_minute=1_000_000,
        registrations_per_ip_per_hour=1_000_000,
    )
    app = create_app(config, run_sweeper=False)
    # IPPROTO_TCP, as uvicorn's own listener: asyncio then sets TCP_NODELAY on what it
    # accepts (with protocol 0, each answer waited ~40 ms for a delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="on", ws="websockets-sansio"
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped during start-up")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _client(tmp_path: Path, name: str, url: str) -> MessengerClient:
    client = await MessengerClient.create(
        name,
        PASSPHRASE,
        data_dir=tmp_path / name,
        keychain=Keychain(backend=MemoryKeyring()),
        kdf=FAST_KDF,
        options=ClientOptions(timeout=20.0, backoff=Backoff(base=0.05, maximum=0.5)),
    )
    await client.create_account(url, f"{name}sock")
    return client


async def test_a_few_mib_through_uvicorn(server_url: str, tmp_path: Path) -> None:
    alice = await _client(tmp_path, "alice", server_url)
    bob = await _client(tmp_path, "bob", server_url)
    try:
        contact = await alice.add_contact("bobsock")
        chat = await alice.create_conversation(contact.account_id)
        await alice.start()
        await bob.start()
        data = os.urandom(6 * 1024 * 1024 + 17)
        await alice.send_file(chat.id, data, name="socket.bin")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while True:
            views = await bob.conversations()
            files = [
                v
                for c in views
                for v in await bob.messages(c.id)
                if v.message.kind is MessageKind.FILE
            ]
            if (
                files
                and files[0].attachment
                and files[0].attachment.state is TransferState.DOWNLOADED
            ):
                break
            assert loop.time() < deadline, "Bob did not download the file over the socket"
            await asyncio.sleep(0.05)
        assert await bob.attachment_bytes(files[0].id) == data
    finally:
        await alice.close()
        await bob.close()
