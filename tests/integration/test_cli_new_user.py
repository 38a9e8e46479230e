"""``messenger-cli`` and ``messenger-server`` tried as a new user would (issue 9, item 8).

Every test drives the real commands in subprocesses, against a real server on
127.0.0.1 where a server matters. Waits poll a condition against a deadline.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import httpx
import pytest

from messenger.client.cli import CLI_BACKOFF, EXIT_PROFILE_BUSY

from .conftest import WAIT, Clients, ServerProcess, free_port, start_server, stop_server

PASSPHRASE = "new user passphrase"
BACKUP_PASSPHRASE = "new user backup passphrase"
LATER = "sent later"  # the promise that only a queued change may make


def _env() -> dict[str, str]:
    return dict(
        os.environ,
        MESSENGER_PASSPHRASE=PASSPHRASE,
        MESSENGER_BACKUP_PASSPHRASE=BACKUP_PASSPHRASE,
    )


def _command(data: Path, profile: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "messenger.client",
        "--data-dir",
        str(data),
        "--profile",
        profile,
        "--no-keyring",
        *args,
    ]


def run_cli(
    data: Path, profile: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    proc = subprocess.run(
        _command(data, profile, *args),
        env=env or _env(),
        capture_output=True,
        timeout=WAIT * 3,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert "Traceback" not in err, err
    return proc.returncode, out, err


def ok(data: Path, profile: str, *args: str) -> str:
    code, out, err = run_cli(data, profile, *args)
    assert code == 0, (args, out, err)
    return out


def server_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "messenger.server", *args],
        env=env or dict(os.environ),
        capture_output=True,
        timeout=WAIT * 3,
        check=False,
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def wait_until(check: object, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Lines:
    """The lines a running process writes to one stream, collected by a thread."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            self.lines.append(raw.decode().rstrip("\n"))

    def close(self) -> None:
        """After the process ended: the rest of the lines, then close the stream."""
        self._thread.join(WAIT)
        self._stream.close()  # type: ignore[attr-defined]

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A data directory and port for a server a test starts and stops itself."""
    yield tmp_path / "server", free_port()


# -- the server's command line ----------------------------------------------------------------


def test_serve_help_shows_host_port_and_data_dir() -> None:
    code, out, _ = server_cli("serve", "--help")
    assert code == 0
    for flag in ("--host", "--port", "--data-dir"):
        assert flag in out
    assert "messenger-data" in " ".join(out.split())  # the default data directory


def test_serve_flags_win_over_the_environment(tmp_path: Path) -> None:
    port, env_port = free_port(), free_port()
    env = dict(
        os.environ,
        MESSENGER_HOST="localhost",
        MESSENGER_PORT=str(env_port),
        MESSENGER_DATA_DIR=str(tmp_path / "from-env"),
        MESSENGER_DATABASE_URL="",
        MESSENGER_LOG_LEVEL="WARNING",
    )
    env.pop("MESSENGER_CONFIG", None)
    data = tmp_path / "from-flag"
    command = [sys.executable, "-m", "messenger.server", "serve"]
    flags = ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)]
    process = subprocess.Popen([*command, *flags], env=env)

    def healthy() -> bool:
        assert process.poll() is None, "the server exited"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, "the server on the --port port")
        assert (data / "messenger.db").exists()
        assert not (tmp_path / "from-env").exists()
    finally:
        stop_server(ServerProcess("", process))


def test_an_invite_only_server_can_be_joined(tmp_path: Path, own_server: tuple[Path, int]) -> None:
    server_dir, port = own_server
    with mock.patch.dict(os.environ, {"MESSENGER_SIGNUP_POLICY": "invite"}):
        server = start_server(server_dir, port)
    try:
        # Admin commands work beside the running server (it holds the lock file).
        code, out, err = server_cli("mint-invite", "--count", "2", "--data-dir", str(server_dir))
        assert code == 0, err
        first, second = out.split()
        code, out, err = server_cli("migrate", "--data-dir", str(server_dir))
        assert code == 0 and "schema at version" in out, err

        data = tmp_path / "clients"
        code, _, err = run_cli(data, "bob", "create-account", server.url, "--handle", "bobinv")
        assert code == 1 and "invite" in err
        ok(data, "bob", "create-account", server.url, "--handle", "bobinv", f"--invite={first}")
        out = ok(data, "bob", "whoami", f"--invite={second}")  # a code may start with -
        link = next(line for line in out.splitlines() if line.startswith("Invite link: "))
        link = link.removeprefix("Invite link: ")
        assert f"invite={second}" in link
        # The link carries the server, the invite code and Bob, the contact.
        out = ok(data, "alice", "create-account", link, "--handle", "aliceinv")
        assert "Added bobinv" in out
        code, _, err = run_cli(data, "carol", "create-account", link)
        assert code == 1 and "invite" in err  # the code was for one sign-up
    finally:
        stop_server(server)


# -- offline: send queues, listen shows the connection ---------------------------------------------


def test_send_offline_queues_and_listen_follows_the_connection(
    tmp_path: Path, own_server: tuple[Path, int]
) -> None:
    assert CLI_BACKOFF.maximum <= 2.0  # reconnects within about 2 s of the server's return
    server_dir, port = own_server
    server = start_server(server_dir, port)
    data = tmp_path / "clients"
    ok(data, "alice", "create-account", server.url, "--handle", "aliceoff")
    ok(data, "bob", "create-account", server.url, "--handle", "boboff")
    ok(data, "alice", "add-contact", "boboff")
    ok(data, "alice", "send", "boboff", "before the outage")

    listener = subprocess.Popen(
        _command(data, "bob", "listen", "--timeout", str(WAIT * 6)),
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = Lines(listener.stdout), Lines(listener.stderr)
    try:
        wait_until(lambda: err.count("connected") >= 1, "listen to say connected")
        wait_until(lambda: out.count("before the outage") == 1, "the first message")

        # One process per profile: a second one on Bob's profile is told so.
        code, _, second_err = run_cli(data, "bob", "whoami")
        assert code == EXIT_PROFILE_BUSY and "another Messenger process" in second_err

        stop_server(server)
        wait_until(lambda: err.count("offline, retrying") == 1, "listen to say it is offline")
        code, sent, queued = run_cli(data, "alice", "send", "boboff", "during the outage")
        assert code == 0 and sent.startswith("#")
        assert "queued" in queued
        code, _, sync_err = run_cli(data, "alice", "sync")
        assert code == 1 and "cannot be reached" in sync_err and LATER not in sync_err

        server = start_server(server_dir, port)
        wait_until(lambda: err.count("connected") == 2, "listen to reconnect")
        assert err.count("offline, retrying") == 1  # one line per change, not per retry
        ok(data, "alice", "sync")
        wait_until(lambda: out.count("during the outage") == 1, "the queued message")
    finally:
        listener.terminate()
        listener.wait(WAIT)
        out.close()
        err.close()
        stop_server(server)
    assert not any("Traceback" in line for line in err.lines), err.lines


def test_errors_say_only_what_is_true(tmp_path: Path) -> None:
    data = tmp_path / "clients"
    code, _, err = run_cli(data, "alice", "create-account", "not a url")
    assert code == 1 and "not valid" in err and LATER not in err
    nobody = f"http://127.0.0.1:{free_port()}"
    code, _, err = run_cli(data, "alice", "create-account", nobody)
    assert code == 1 and "cannot be reached" in err and LATER not in err
    assert len(err.strip().splitlines()) == 1


# -- contacts, messages, groups -----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_made_up_invite_link_is_refused(
    clients: Clients, server: ServerProcess, tmp_path: Path
) -> None:
    data = tmp_path / "cli"
    await asyncio.to_thread(ok, data, "alice", "create-account", server.url)
    bob = await clients.new("bob", handle="boblink")
    info = await bob.account()
    assert info is not None
    made_up = [
        f"messenger://add?server={server.url}&account=AAAA",
        f"messenger://add?server={server.url}&account={'A' * 22}",
        f"messenger://add?server={server.url}&account={info.account_id}&handle=notbob",
    ]
    for link in made_up:
        code, _, err = await asyncio.to_thread(run_cli, data, "alice", "add-contact", link)
        assert code == 1 and "does not match any account" in err, (link, err)
    out = await asyncio.to_thread(ok, data, "alice", "add-contact", info.invite_link)
    assert "Added boblink" in out


@pytest.mark.anyio
async def test_small_things_a_new_user_trips_on(
    clients: Clients, server: ServerProcess, tmp_path: Path
) -> None:
    data = tmp_path / "cli"
    await asyncio.to_thread(ok, data, "alice", "create-account", server.url)
    await clients.new("bob", handle="bobsmall")
    await asyncio.to_thread(ok, data, "alice", "add-contact", f"bobsmall@{server.host}")

    # An empty message is not sent.
    for text in ("", "   "):
        code, _, err = await asyncio.to_thread(run_cli, data, "alice", "send", "bobsmall", text)
        assert code == 2 and "empty" in err

    # Search says when it shows only some of the hits.
    for n in range(3):
        await asyncio.to_thread(ok, data, "alice", "send", "bobsmall", f"needle {n}")
    code, out, err = await asyncio.to_thread(
        run_cli, data, "alice", "search", "needle", "--limit", "2"
    )
    assert code == 0 and len(out.splitlines()) == 2
    assert "showing 2 of 3" in err and "--limit" in err
    out = await asyncio.to_thread(ok, data, "alice", "search", "needle")
    assert len(out.splitlines()) == 3

    # Removing someone who is not in the group fails with a sentence.
    await asyncio.to_thread(ok, data, "alice", "create-group", "lonely")
    code, _, err = await asyncio.to_thread(
        run_cli, data, "alice", "remove-member", "lonely", "bobsmall"
    )
    assert code == 1 and "not a member" in err

    # A reader that goes away (``| head``) gets no traceback.
    def closed_pipe(buffered: bool) -> tuple[int, str]:
        env = _env()
        if buffered:  # the output is written at the end, not at each print
            env.pop("PYTHONUNBUFFERED", None)
        else:
            env["PYTHONUNBUFFERED"] = "1"
        read, write = os.pipe()
        with subprocess.Popen(
            _command(data, "alice", "history", "bobsmall"),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=subprocess.PIPE,
        ) as proc:
            os.close(write)
            os.close(read)  # before the child has written anything
            _, stderr = proc.communicate(timeout=WAIT * 3)
        return proc.returncode, stderr.decode()

    for buffered in (False, True):
        code, err = await asyncio.to_thread(closed_pipe, buffered)
        assert "Traceback" not in err and "Broken" not in err
        assert code == 141  # like a process ended by SIGPIPE


def test_demo_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run_cli(tmp_path, "alice", "demo", "--port", str(port))
    assert code == 1 and "in use" in err
    assert "Server:" not in out


# -- backups -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_backup_and_restore(clients: Clients, server: ServerProcess, tmp_path: Path) -> None:
    data = tmp_path / "cli"
    await asyncio.to_thread(ok, data, "alice", "create-account", server.url)
    await clients.new("bob", handle="bobbackup")
    await asyncio.to_thread(ok, data, "alice", "add-contact", "bobbackup")
    await asyncio.to_thread(ok, data, "alice", "send", "bobbackup", "kept in the backup")
    backup = tmp_path / "alice.backup"
    out = await asyncio.to_thread(ok, data, "alice", "backup", str(backup))
    assert "Backed up" in out and backup.exists()

    elsewhere = tmp_path / "other-machine"
    out = await asyncio.to_thread(ok, elsewhere, "alice", "restore", str(backup))
    assert "Restored" in out
    out = await asyncio.to_thread(ok, elsewhere, "alice", "history", "bobbackup")
    assert "kept in the backup" in out

    code, _, err = await asyncio.to_thread(run_cli, elsewhere, "alice", "restore", str(backup))
    assert code == 2 and "exists" in err
    wrong = dict(_env(), MESSENGER_BACKUP_PASSPHRASE="not the backup passphrase")
    code, _, err = await asyncio.to_thread(
        run_cli, elsewhere, "alice2", "restore", str(backup), env=wrong
    )
    assert code == 1 and "passphrase is wrong" in err
