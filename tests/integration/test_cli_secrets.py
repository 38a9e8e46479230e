"""Secrets stay out of process metadata that other users of the machine can read.

* ``messenger-cli demo`` starts its server child with an allow-listed
  environment: ``MESSENGER_PASSPHRASE`` (and any other secret) is not in
  the child's ``/proc/<pid>/environ``.
* ``messenger-cli send`` reads the text from standard input (``-``, or no
  text with input piped in), so it is not in ``/proc/<pid>/cmdline`` (what
  ``ps`` shows).
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import messenger.client.demo as demo
from messenger.client import MessageTooLongError
from messenger.client.cli import UsageError, message_text
from messenger.client.content import MAX_TEXT_BYTES

from .conftest import WAIT, Clients, ServerProcess, eventually

PASSPHRASE = "cli secrets passphrase"
SECRET_ENV = {
    "MESSENGER_PASSPHRASE": "the demo passphrase must not leak",
    "MESSENGER_CONFIG": "/nonexistent/config.toml",
    "AWS_SECRET_ACCESS_KEY": "an unrelated secret",
    "GITHUB_TOKEN": "another unrelated secret",
}


def _proc_file(pid: int, name: str) -> list[bytes] | None:
    """The NUL-separated entries of /proc/<pid>/<name> (Linux), else None."""
    path = Path(f"/proc/{pid}/{name}")
    if not path.exists():
        return None
    return [entry for entry in path.read_bytes().split(b"\0") if entry]


# -- demo: the server child's environment ------------------------------------------------


def test_server_environment_is_an_allow_list() -> None:
    parent = {**SECRET_ENV, "PATH": "/usr/bin", "HOME": "/home/me", "LANG": "C.UTF-8"}
    env = demo.server_environment({"MESSENGER_PORT": "1234"}, parent)
    assert env == {"PATH": "/usr/bin", "LANG": "C.UTF-8", "MESSENGER_PORT": "1234"}


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    yield


@pytest.mark.anyio
async def test_demo_server_child_gets_no_passphrase(
    tmp_path: Path, secret_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned: list[tuple[subprocess.Popen[bytes], dict[str, str]]] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = real_popen(*args, **kwargs)
        spawned.append((process, dict(kwargs["env"])))
        return process

    monkeypatch.setattr(subprocess, "Popen", recording_popen)  # what demo.py calls
    async with demo.start_local_server(tmp_path / "server", pow_difficulty=4) as url:
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(url + "/health")).status_code == 200
        [(process, env)] = spawned
        # What the spawn was given...
        for name in SECRET_ENV:
            assert name not in env, name
        assert env["MESSENGER_DATA_DIR"] == str(tmp_path / "server")
        # ...and what the running child really has (Linux exposes it).
        child_environ = _proc_file(process.pid, "environ")
        if child_environ is not None:
            names = {entry.split(b"=", 1)[0].decode() for entry in child_environ}
            assert not names & set(SECRET_ENV), names & set(SECRET_ENV)
            blob = b"\0".join(child_environ)
            for value in SECRET_ENV.values():
                assert value.encode() not in blob


# -- send: the text comes from standard input ------------------------------------------------


def _command(data_dir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "messenger.client",
        "--data-dir",
        str(data_dir),
        "--profile",
        "alice",
        "--no-keyring",
        *args,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ, MESSENGER_PASSPHRASE=PASSPHRASE)
    return env


async def _cli(data_dir: Path, *args: str) -> str:
    proc = await asyncio.to_thread(
        subprocess.run,
        _command(data_dir, *args),
        env=_env(),
        capture_output=True,
        timeout=WAIT * 2,
        check=False,
    )
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout.decode()


def _exec_cmdline(proc: subprocess.Popen[bytes]) -> list[bytes] | None:
    """The argv of the running child as the OS shows it (Linux), else None.

    Popen may return while the kernel is still setting up the new program,
    when /proc/<pid>/cmdline reads empty: wait until it is there.
    """
    deadline = time.monotonic() + WAIT
    while (cmdline := _proc_file(proc.pid, "cmdline")) == []:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("could not read the child's command line")
        time.sleep(0.001)
    return cmdline


def _send_from_stdin(data_dir: Path, text: str, *args: str) -> tuple[list[bytes] | None, str]:
    """Run ``send`` with ``text`` on stdin; the child's /proc cmdline (if any) and stdout."""
    command = _command(data_dir, "send", *args)
    assert not any(text in arg for arg in command)
    with subprocess.Popen(
        command, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        # The child waits for its standard input, which is still open.
        cmdline = _exec_cmdline(proc)
        out, err = proc.communicate(text.encode() + b"\n", timeout=WAIT * 2)
    assert proc.returncode == 0, (out, err)
    return cmdline, out.decode()


@pytest.mark.anyio
async def test_send_reads_the_text_from_stdin(
    clients: Clients, server: ServerProcess, tmp_path: Path
) -> None:
    data = tmp_path / "cli"
    await _cli(data, "create-account", server.url, "--handle", "alicestdin")
    bob = await clients.new("bob", handle="bobstdin")
    await _cli(data, "add-contact", f"bobstdin@{server.host}")

    first = "a confidential message on stdin"
    cmdline, out = await asyncio.to_thread(_send_from_stdin, data, first, "bobstdin", "-")
    assert out.strip().startswith("#")
    if cmdline is not None:
        assert cmdline[-2:] == [b"bobstdin", b"-"]
        assert not any(first.encode() in arg for arg in cmdline)
    second = "another one, with the text simply left out"
    cmdline, _ = await asyncio.to_thread(_send_from_stdin, data, second, "bobstdin")
    if cmdline is not None:
        assert cmdline[-1] == b"bobstdin"

    async def bob_got_both() -> bool:
        views = await bob.conversations()
        if not views:
            return False
        bodies = [v.message.body for v in await bob.messages(views[0].id)]
        return first in bodies and second in bodies  # the final newline was dropped

    await eventually(bob_got_both, "Bob to receive the messages sent from stdin")


# -- message_text: the rules ------------------------------------------------------------------


class _Terminal(io.BytesIO):
    def isatty(self) -> bool:
        return True


def test_message_text_rules() -> None:
    assert message_text(["hello", "there"], None) == "hello there"
    assert message_text(["-"], io.BytesIO(b"from stdin\n")) == "from stdin"
    assert message_text([], io.BytesIO(b"\xef\xbb\xbfwindows\r\n")) == "windows"
    assert message_text([], io.BytesIO(b"two lines\nkept\n\n")) == "two lines\nkept\n"
    assert message_text(["-"], _Terminal(b"typed at a terminal")) == "typed at a terminal"
    with pytest.raises(UsageError):
        message_text([], _Terminal(b""))  # nothing given, nothing piped
    with pytest.raises(UsageError):
        message_text(["-"], None)
    with pytest.raises(UsageError):
        message_text(["-"], io.BytesIO(b"\n"))
    with pytest.raises(UsageError):
        message_text(["-"], io.BytesIO(b"\xff\xfe not utf-8"))
    with pytest.raises(MessageTooLongError):
        message_text(["-"], io.BytesIO(b"x" * (MAX_TEXT_BYTES + 100)))
