"""``messenger-server revoke-invite``, ``status`` and ``backup`` beside a running server.

Each test runs a real ``messenger-server`` subprocess on 127.0.0.1 (SQLite in
its data directory, or a fresh PostgreSQL schema), real clients with their
own stores, and the admin commands as separate processes, as an operator
would. The backup is taken while a client keeps sending; the server is then
stopped, the backup restored (SQLite: the file as ``messenger.db``;
PostgreSQL: ``pg_restore`` into an emptied schema) with the secret key file
copied by ``--include-key``, and a client that was offline all along gets,
from the restored server, the messages queued before the backup.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from messenger.client import ClientOptions, MessengerClient, SignupRefusedError
from messenger.client.net import Backoff
from messenger.server.admin import postgres_dump_command
from messenger.server.storage import LATEST_VERSION
from tests.integration.conftest import FAST_KDF, PASSPHRASE, free_port, keychain

from .conftest import named_postgres_schema

pytestmark = pytest.mark.anyio

WAIT = 30.0
OPTIONS = ClientOptions(backoff=Backoff(base=0.05, maximum=1.0), timeout=10.0)


@dataclass
class Setup:
    """Where a test server keeps its data, and the environment of its commands."""

    backend: str
    data_dir: Path
    database_url: str
    port: int
    schema: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(
            os.environ,
            MESSENGER_HOST="127.0.0.1",
            MESSENGER_PORT=str(self.port),
            MESSENGER_DATA_DIR=str(self.data_dir),
            MESSENGER_DATABASE_URL=self.database_url,
            MESSENGER_SIGNUP_POLICY="invite",
            MESSENGER_POW_DIFFICULTY="8",
            MESSENGER_LOG_LEVEL="WARNING",
            MESSENGER_IP_REQUESTS_PER_MINUTE="1000000",
            MESSENGER_ACCOUNT_REQUESTS_PER_MINUTE="1000000",
            MESSENGER_REGISTRATIONS_PER_IP_PER_HOUR="1000000",
        )
        env.pop("MESSENGER_CONFIG", None)
        return env


def start(setup: Setup) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "messenger.server", "serve"], env=setup.env())
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(setup.url + "/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def admin(setup: Setup, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One ``messenger-server`` admin command, as a separate process."""
    result = subprocess.run(
        [sys.executable, "-m", "messenger.server", *args],
        env=setup.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def status(setup: Setup) -> dict[str, str]:
    lines = admin(setup, "status").stdout.splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


@pytest.fixture(params=["sqlite", "postgresql"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        yield Setup("sqlite", data_dir, "", free_port())
        return
    async with named_postgres_schema("t_admin_") as (dsn, schema):
        yield Setup("postgresql", data_dir, dsn, free_port(), schema)


@pytest.fixture
def server(setup: Setup) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The running server (a list, so a test can restart it); stopped at the end."""
    running = [start(setup)]
    try:
        yield running
    finally:
        for process in running:
            stop(process)


@pytest.fixture
async def clients() -> AsyncIterator[list[MessengerClient]]:
    made: list[MessengerClient] = []
    try:
        yield made
    finally:
        for client in made:
            await client.close()


async def new_client(
    root: Path, name: str, made: list[MessengerClient], *, open_existing: bool = False
) -> MessengerClient:
    if open_existing:
        client = await MessengerClient.open(
            name, PASSPHRASE, data_dir=root / name, keychain=keychain(), options=OPTIONS
        )
    else:
        client = await MessengerClient.create(
            name,
            PASSPHRASE,
            data_dir=root / name,
            keychain=keychain(),
            kdf=FAST_KDF,
            options=OPTIONS,
        )
    made.append(client)
    return client


async def eventually_true(check: object, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + WAIT
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_status_and_revoke_need_a_database(tmp_path: Path) -> None:
    """On SQLite an admin command does not create a database where there is none."""
    setup = Setup("sqlite", tmp_path / "nothing", "", free_port())
    result = admin(setup, "status", check=False)
    assert result.returncode == 1 and "there is no database" in result.stderr
    assert not (tmp_path / "nothing" / "messenger.db").exists()


async def test_admin_commands_beside_a_running_server_and_a_restored_backup(
    setup: Setup,
    server: list[subprocess.Popen[bytes]],
    clients: list[MessengerClient],
    tmp_path: Path,
) -> None:
    # -- invites: mint two, revoke one; the server refuses the revoked one at once.
    codes = admin(setup, "mint-invite", "--count", "4").stdout.split()
    assert len(codes) == 4
    assert status(setup)["usable invites"] == "4"
    assert admin(setup, "revoke-invite", codes[0]).stdout.strip() == "invite revoked"
    again = admin(setup, "revoke-invite", codes[0], check=False)
    assert again.returncode == 1 and "no such invite code" in again.stderr
    assert status(setup)["usable invites"] == "3"

    root = tmp_path / "clients"
    mallory = await new_client(root, "mallory", clients)
    with pytest.raises(SignupRefusedError):
        await mallory.create_account(setup.url, invite_code=codes[0])
    alice = await new_client(root, "alice", clients)
    bob = await new_client(root, "bob", clients)
    alice_info = await alice.create_account(setup.url, "aliceadmin", invite_code=codes[1])
    bob_info = await bob.create_account(setup.url, "bobadmin", invite_code=codes[2])
    carol = await new_client(root, "carol", clients)
    await carol.create_account(setup.url, "caroladmin", invite_code=codes[3])

    # -- Alice writes to a group of Bob, who stays offline (the messages wait in
    # his queue), and Carol, who comes online only after the backup.
    await alice.start()
    bob_contact = await alice.add_contact("bobadmin")
    carol_contact = await alice.add_contact("caroladmin")
    chat = await alice.create_group("team", [bob_contact.account_id, carol_contact.account_id])
    before = [f"before the backup {i}" for i in range(5)]
    for text in before:
        await alice.send_text(chat.id, text)
    await alice.flush(WAIT)

    shown = admin(setup, "status").stdout
    fields = dict(line.split(": ", 1) for line in shown.splitlines() if ": " in line)
    assert fields["backend"] == setup.backend
    assert fields["schema version"] == str(LATEST_VERSION)
    assert fields["accounts"] == "3" and fields["clients"] == "3"
    # The team, and Alice's devices group (docs/devices.md §3; Bob's and Carol's
    # are queued on their computers, which have not connected).
    assert fields["groups"] == "2"
    assert int(fields["queued messages"]) >= len(before) + 1  # + the Welcome
    assert int(fields["database size"].split()[0].replace(",", "")) > 0
    if setup.backend == "sqlite":
        assert fields["server running"] == "yes"
    else:
        assert int(fields["other database connections"]) >= 1
    for private in (alice_info.account_id, bob_info.account_id, "127.0.0.1", "aliceadmin"):
        assert private not in shown

    # -- The backup, while Alice keeps sending.
    target = tmp_path / "backups" / "messenger.backup"
    target.parent.mkdir()
    sending = True
    under_way = asyncio.Event()

    async def keep_sending() -> int:
        n = 0
        while sending:
            await alice.send_text(chat.id, f"during the backup {n}")
            n += 1
            if n == 3:
                under_way.set()
            await asyncio.sleep(0.03)  # a steady trickle of writes, not a wait
        return n

    writer = asyncio.create_task(keep_sending())
    try:
        # The backup starts once the writes are under way.
        await asyncio.wait_for(under_way.wait(), WAIT)
        result = await asyncio.to_thread(
            admin, setup, "backup", "--to", str(target), "--include-key"
        )
    finally:
        sending = False
        sent_during = await writer
    assert sent_during > 0
    assert "backup written to" in result.stdout
    key_copy = Path(f"{target}.key")
    for made in (target, key_copy):
        assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert key_copy.read_bytes() == (setup.data_dir / "server-secret.key").read_bytes()
    if setup.backend == "postgresql":
        password = urlsplit(setup.database_url).password
        assert password is not None
        shown = result.stdout + result.stderr
        assert f":{password}@" not in shown and setup.database_url not in shown
    # A second backup never overwrites the first.
    refused = admin(setup, "backup", "--to", str(target), check=False)
    assert refused.returncode == 1 and "exists" in refused.stderr
    await alice.flush(WAIT)

    # Carol comes online and reads everything, past what the backup holds.
    await carol.start()
    await eventually_true(lambda: _has_conversation(carol), "Carol to get the group")
    carol_chat = (await carol.conversations())[0].id

    async def carol_read_all() -> bool:
        return f"during the backup {sent_during - 1}" in await texts(carol, carol_chat)

    await eventually_true(carol_read_all, "Carol to read every message")

    # Restoring over a live database is refused.
    busy = admin(setup, "restore", "--from", str(target), check=False)
    assert busy.returncode == 1
    expected = "stop it first" if setup.backend == "sqlite" else "already holds a Messenger schema"
    assert expected in busy.stderr

    # -- Disaster: stop the server and lose its data; restore from the backup.
    stop(server[0])
    stopped = status(setup)["server running"]
    assert stopped == ("no" if setup.backend == "sqlite" else "n/a (PostgreSQL)")
    shutil.rmtree(setup.data_dir)
    if setup.backend == "postgresql":
        await drop_schema(setup)
    restore = admin(setup, "restore", "--from", str(target), "--key", str(key_copy))
    assert "database restored" in restore.stdout
    assert (setup.data_dir / "server-secret.key").read_bytes() == key_copy.read_bytes()
    if setup.backend == "sqlite":
        database = setup.data_dir / "messenger.db"
        assert stat.S_IMODE(database.stat().st_mode) == 0o600
        with contextlib.closing(sqlite3.connect(database)) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    server.append(start(setup))

    restored = status(setup)
    assert restored["accounts"] == "3" and restored["groups"] == "2"

    # Bob, offline all along, gets the conversation from the restored server:
    # everything queued before the backup, then a prefix of what came during it.
    await bob.start()
    await eventually_true(lambda: _has_conversation(bob), "Bob to get the conversation")
    bob_chat = (await bob.conversations())[0].id

    async def bob_has_all_from_before() -> bool:
        got = await texts(bob, bob_chat)
        return all(t in got for t in before)

    await eventually_true(bob_has_all_from_before, "Bob to get the messages from the backup")
    got = await texts(bob, bob_chat)
    during = [t for t in got if t.startswith("during the backup")]
    assert during == [f"during the backup {i}" for i in range(len(during))]
    # The restored server goes on serving: Bob answers, and Alice and Carol read
    # it. Both had read their queues past the backup: without the renumbering
    # in restore, Bob's message would sit at or below their cursors, unseen.
    await bob.send_text(bob_chat, "after the restore")

    async def everyone_got_it() -> bool:
        alice_texts = await texts(alice, chat.id)
        carol_texts = await texts(carol, carol_chat)
        return "after the restore" in alice_texts and "after the restore" in carol_texts

    await eventually_true(everyone_got_it, "Alice and Carol to get Bob's message")
    # The restored entries they had already read came again above their
    # cursors; neither shows anything twice.
    for client, cid in ((alice, chat.id), (bob, bob_chat), (carol, carol_chat)):
        seen = await texts(client, cid)
        assert len(seen) == len(set(seen)), seen
        assert seen.count("after the restore") == 1


async def _has_conversation(client: MessengerClient) -> bool:
    return bool(await client.conversations())


async def texts(client: MessengerClient, conversation_id: int) -> list[str]:
    return [v.message.body or "" for v in await client.messages(conversation_id, limit=1000)]


async def drop_schema(setup: Setup) -> None:
    """Lose the PostgreSQL data, as a failed database would."""
    assert setup.schema is not None
    conn = await asyncpg.connect(setup.database_url.split("?", 1)[0])
    try:
        await conn.execute(f"DROP SCHEMA {setup.schema} CASCADE")
    finally:
        await conn.close()


def test_pg_dump_gets_the_password_in_its_environment_only(tmp_path: Path) -> None:
    command, env = postgres_dump_command(
        "postgresql://ops:s%40cret@db.internal:5433/messenger?search_path=chat&sslmode=require",
        tmp_path / "dump",
    )
    assert env == {"PGPASSWORD": "s@cret"}
    assert not any("s%40cret" in arg or "s@cret" in arg for arg in command)
    assert "--dbname=postgresql://ops@db.internal:5433/messenger?sslmode=require" in command
    assert "--schema=chat" in command and "--format=custom" in command
