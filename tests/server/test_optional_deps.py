"""The server without the home server's extra: no asyncpg, no prometheus-client.

The desktop app installs ``messenger`` without ``[server]`` and still runs "a
server on this computer" (SQLite). Here a real server process runs
:func:`messenger.server.create_app` on SQLite with every import of
``asyncpg`` and ``prometheus_client`` refused (a ``sys.meta_path`` finder
installed before anything else is imported); two clients sign up against it
and one message goes from one to the other. ``/metrics`` answers 404 with a
sentence naming the extra, and a ``postgresql://`` URL is refused with one.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import keyring
import pytest

from messenger.client import MessengerClient
from tests.client.helpers import FAST_KDF, PASSPHRASE, MemoryKeyring

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = "sent by a server without asyncpg and prometheus-client"

#: Installed first by each child: importing a blocked package raises ImportError.
BLOCKER = """
import importlib.abc, sys
BLOCKED = {"asyncpg", "prometheus_client"}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked by the test", name=name)
        return None
sys.meta_path.insert(0, Blocker())
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
"""

SERVE = """
import sys
from pathlib import Path
import uvicorn
from messenger.server import ServerConfig, create_app
host, port, data_dir = "127.0.0.1", int(sys.argv[1]), Path(sys.argv[2])
config = ServerConfig(host=host, port=port, data_dir=data_dir, pow_difficulty=12)
app = create_app(config)
assert not {"asyncpg", "prometheus_client"} & set(sys.modules), "a blocked module was loaded"
uvicorn.run(app, host=host, port=port, log_level="warning")
"""

POSTGRES_URL = """
from messenger.server.storage import StorageError, open_database
try:
    open_database("postgresql://nobody@127.0.0.1:1/none")
except StorageError as exc:
    print(exc)
else:
    raise SystemExit("a postgresql:// URL was accepted without asyncpg")
"""


def _child(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", BLOCKER + code, *args]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def memory_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESSENGER_")}
    process = subprocess.Popen(
        _child(SERVE, str(port), str(tmp_path / "server")),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2) as http:
            while True:
                try:
                    if http.get(url + "/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass  # not listening yet
                assert time.monotonic() < deadline, "the server did not start"
                try:  # wait a little for the port, and notice if the child died
                    process.wait(0.05)
                except subprocess.TimeoutExpired:
                    continue
                raise AssertionError(process.communicate()[0].decode())
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def _chat(url: str, tmp_path: Path) -> None:
    alice = await MessengerClient.create(
        "alice", PASSPHRASE, data_dir=tmp_path / "alice", kdf=FAST_KDF
    )
    bob = await MessengerClient.create("bob", PASSPHRASE, data_dir=tmp_path / "bob", kdf=FAST_KDF)
    try:
        await alice.create_account(url, "alice")
        bob_info = await bob.create_account(url, "bob")
        assert bob_info.address is not None
        await alice.start()
        await bob.start()
        contact = await alice.add_contact(bob_info.address)
        conversation = await alice.create_conversation(contact.account_id)
        await alice.send_text(conversation.id, MESSAGE)
        await alice.flush(60)

        deadline = asyncio.get_running_loop().time() + 60
        received: list[str] = []
        while MESSAGE not in received:
            assert asyncio.get_running_loop().time() < deadline, received
            await asyncio.sleep(0.05)
            received = [
                view.message.body or ""
                for chat in await bob.conversations()
                for view in await bob.messages(chat.id)
                if not view.message.outgoing
            ]
    finally:
        await alice.close()
        await bob.close()


def test_sign_up_and_send_without_server_extras(
    server_url: str, tmp_path: Path, memory_keyring: None
) -> None:
    asyncio.run(_chat(server_url, tmp_path))

    metrics = httpx.get(server_url + "/metrics", timeout=10)
    assert metrics.status_code == 404
    assert "prometheus-client" in metrics.text
    assert "messenger[server]" in metrics.text


def test_postgresql_url_names_the_extra() -> None:
    result = subprocess.run(
        _child(POSTGRES_URL), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "asyncpg" in result.stdout
    assert "messenger[server]" in result.stdout


def test_metrics_and_postgres_work_with_the_extra() -> None:
    # In this process the extra is installed: the real registry and backend.
    from messenger.server.metrics import AVAILABLE, Metrics
    from messenger.server.storage import PostgresDatabase, open_database

    assert AVAILABLE
    metrics = Metrics()
    metrics.registrations.inc()
    assert b"messenger_registrations_total 1.0" in metrics.render()
    assert isinstance(open_database("postgresql://nobody@127.0.0.1:1/none"), PostgresDatabase)


SERVER_WITHOUT_APP = """
import sys
from pathlib import Path
from messenger.server import ServerConfig, create_app
from messenger.server.cli import main
create_app(ServerConfig(data_dir=Path(sys.argv[1])), run_sweeper=False)
try:
    main(["status", "--data-dir", sys.argv[1]])
except SystemExit as exc:
    assert not exc.code, exc.code
gui = {"PySide6", "shiboken6", "qasync", "segno", "desktop_notifier", "ui"}
assert not gui & {name.split(".")[0] for name in sys.modules}, "a GUI module was loaded"
print("server ran without the app's extra")
"""


def test_the_home_server_needs_nothing_from_the_desktop_apps_extra(tmp_path: Path) -> None:
    """``pip install 'messenger[server]'`` carries no Qt: the server never imports it."""
    blocker = BLOCKER.replace(
        '{"asyncpg", "prometheus_client"}',
        '{"PySide6", "shiboken6", "qasync", "segno", "desktop_notifier", "ui"}',
    )
    assert blocker != BLOCKER
    result = subprocess.run(
        [sys.executable, "-c", blocker + SERVER_WITHOUT_APP, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server ran without the app's extra" in result.stdout
