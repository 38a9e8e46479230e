"""``messenger-cli`` against a real server: a profile driven only from the command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import WAIT, Clients, ServerProcess, eventually

pytestmark = pytest.mark.anyio

PASSPHRASE = "cli passphrase 1"


async def cli(
    data_dir: Path, *args: str, passphrase: str = PASSPHRASE, check: bool = True
) -> tuple[int, str, str]:
    env = dict(os.environ, MESSENGER_PASSPHRASE=passphrase)
    command = [
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
    proc = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, timeout=WAIT * 2, check=False
    )
    out, err = proc.stdout.decode(), proc.stderr.decode()
    if check:
        assert proc.returncode == 0, (args, out, err)
    return proc.returncode, out, err


async def test_the_command_line_does_it_all(
    clients: Clients, server: ServerProcess, tmp_path: Path
) -> None:
    data = tmp_path / "cli"
    _, out, _ = await cli(data, "create-account", server.url, "--handle", "alicecli")
    assert f"Address: alicecli@{server.host}" in out
    bob = await clients.new("bob", handle="bobcli")
    bob_account = await bob.account()
    assert bob_account is not None

    _, out, _ = await cli(data, "add-contact", f"bobcli@{server.host}")
    assert "Added bobcli" in out
    _, out, _ = await cli(data, "send", "bobcli", "Hello", "from", "the", "CLI")
    assert out.strip().startswith("#")

    async def bob_got_it() -> bool:
        views = await bob.conversations()
        return bool(views) and any(
            v.message.body == "Hello from the CLI" for v in await bob.messages(views[0].id)
        )

    await eventually(bob_got_it, "Bob to receive the CLI's message")
    conversation = (await bob.conversations())[0]
    assert conversation.name == "alicecli"  # the name travelled inside the group
    await bob.send_text(conversation.id, "Hi CLI")
    await bob.flush(WAIT)

    _, out, _ = await cli(data, "listen", "--count", "1", "--timeout", str(WAIT))
    assert "bobcli" in out and "Hi CLI" in out
    _, out, _ = await cli(data, "history", "bobcli")
    lines = [line for line in out.splitlines() if line.startswith("#")]
    assert "Hello from the CLI" in lines[0] and "Hi CLI" in lines[1]
    _, out, _ = await cli(data, "search", "cli")
    assert "[CLI]" in out
    _, out, _ = await cli(data, "conversations")
    assert "bobcli" in out and "1:1" in out

    _, out, _ = await cli(data, "safety-number", "bobcli")
    alice_id = next(c.account_id for c in await bob.contacts() if c.display_name == "alicecli")
    theirs = await bob.safety_number(alice_id)
    assert out.splitlines()[:3] == str(theirs.number).splitlines()

    _, out, _ = await cli(data, "whoami")
    assert "messenger://add?" in out
    code, _, err = await cli(data, "whoami", passphrase="not the passphrase", check=False)
    assert code == 1 and "passphrase is wrong" in err
