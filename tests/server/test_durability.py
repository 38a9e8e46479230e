"""A message the server acknowledged survives ``kill -9`` and a restart.

The server runs as a real process (``python -m messenger.server``) on a
loopback port. Senders push a bounded stream of messages; once enough have
been acknowledged (HTTP 200), the process is killed with SIGKILL in the
middle of the load, restarted on the same database, and the recipient's
queue must hold every acknowledged message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from messenger.api import routes as r
from messenger.mls.messages import MLSMessage

from . import mls_data
from .client import ApiClient
from .conftest import postgres_schema

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
GID = b"durability-group"
SENDERS = 8
PER_SENDER = 150  # at most 1,200 messages
KILL_AFTER = 200  # acknowledged messages before the kill


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _server_process(
    data_dir: Path, database_url: str, log: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    port = _free_port()
    env = {
        **os.environ,
        "MESSENGER_HOST": "127.0.0.1",
        "MESSENGER_PORT": str(port),
        "MESSENGER_DATA_DIR": str(data_dir),
        "MESSENGER_DATABASE_URL": database_url,
        "MESSENGER_POW_DIFFICULTY": "4",
        "MESSENGER_IP_REQUESTS_PER_MINUTE": "1000000",
        "MESSENGER_ACCOUNT_REQUESTS_PER_MINUTE": "1000000",
        "MESSENGER_SENDER_MESSAGES_PER_QUEUE_PER_MINUTE": "1000000",
        "MESSENGER_LOG_LEVEL": "WARNING",
    }
    with open(log, "ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "messenger.server", env=env, cwd=REPO, stderr=log_file
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            for _ in range(300):
                if process.returncode is not None:
                    raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(r.HEALTH)).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("server did not start")
        yield process, base
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def _run(data_dir: Path, database_url: str, log: Path) -> None:
    acked: list[bytes] = []
    async with (
        _server_process(data_dir, database_url, log) as (process, base),
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        alice, bob = ApiClient(http), ApiClient(http)
        await alice.register()
        await bob.register()
        await alice.create_group(GID)
        queues = [alice.me.queue_id, bob.me.queue_id]
        await alice.commit(
            GID,
            0,
            mls_data.commit(GID, 0),
            queues,
            welcome=await alice.welcome_for(bob),
            welcome_to=queues[1:],
        )
        enough = asyncio.Event()

        async def sender(k: int) -> None:
            for i in range(PER_SENDER):
                tag = b"durable %d/%d" % (k, i)
                try:
                    await alice.send(GID, mls_data.application(GID, 1, tag))
                except httpx.HTTPError:
                    return  # the server is gone
                acked.append(tag)
                if len(acked) >= KILL_AFTER:
                    enough.set()

        tasks = [asyncio.create_task(sender(k)) for k in range(SENDERS)]
        await asyncio.wait_for(enough.wait(), 60)
        process.send_signal(signal.SIGKILL)  # kill -9 under load
        await process.wait()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert len(acked) >= KILL_AFTER
    assert len(acked) < SENDERS * PER_SENDER, "the kill came after the load had finished"

    async with (
        _server_process(data_dir, database_url, log) as (_, base),
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        bob_again = ApiClient(http, bob.identity)
        received: list[bytes] = []
        seqs: list[int] = []
        after = 0
        while True:
            page = await bob_again.fetch(after=after, limit=1000)
            for message in page.messages:
                seqs.append(message.seq)
                body = MLSMessage.from_bytes(message.data).body
                ciphertext = getattr(body, "ciphertext", None)
                if ciphertext is not None:
                    received.append(mls_data.decrypt(ciphertext))
            if not page.more:
                break
            after = page.messages[-1].seq
    missing = set(acked) - set(received)
    assert not missing, f"{len(missing)} acknowledged messages were lost"
    # Consecutive from the queue's origin: nothing half-written.
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert len(received) == len(set(received))


async def test_kill_9_loses_no_acknowledged_message_sqlite(tmp_path: Path) -> None:
    await _run(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'm.db'}", tmp_path / "log")


async def test_kill_9_loses_no_acknowledged_message_postgresql(tmp_path: Path) -> None:
    async with postgres_schema() as dsn:
        await _run(tmp_path / "data", dsn, tmp_path / "log")
