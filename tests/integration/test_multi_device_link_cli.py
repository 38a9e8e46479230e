"""``messenger-cli link``, ``link --join``, ``devices`` and ``unlink`` against a real server."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from .conftest import WAIT, ServerProcess

pytestmark = pytest.mark.anyio

PASSPHRASE = "cli passphrase 1"


def command(data_dir: Path, profile: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "messenger.client",
        "--data-dir",
        str(data_dir),
        "--profile",
        profile,
        "--no-keyring",
        *args,
    ]


async def run(data_dir: Path, profile: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *command(data_dir, profile, *args),
        env=dict(os.environ, MESSENGER_PASSPHRASE=PASSPHRASE),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT * 2)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def read_until(stream: asyncio.StreamReader, pattern: str) -> str:
    """Output up to and including the first chunk that matches ``pattern``."""
    seen = ""
    while not re.search(pattern, seen):
        chunk = await asyncio.wait_for(stream.read(4096), WAIT)
        if not chunk:
            raise AssertionError(f"the output ended before {pattern!r}: {seen!r}")
        seen += chunk.decode()
    return seen


async def start_link(data_dir: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *command(data_dir, "laptop", "link", *args),
        env=dict(os.environ, MESSENGER_PASSPHRASE=PASSPHRASE),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_link_devices_unlink(server: ServerProcess, tmp_path: Path) -> None:
    data = tmp_path / "cli"
    status, _, err = await run(data, "laptop", "create-account", server.url, "--handle", "lcli")
    assert status == 0, err

    laptop = await start_link(data)
    assert laptop.stdout is not None and laptop.stdin is not None
    shown = await read_until(laptop.stdout, r"Waiting for the new device")
    code = re.search(r"Link code: ([0-9A-Z-]{29})", shown)
    assert code is not None
    assert "messenger://link?server=" in shown

    desktop = asyncio.create_task(
        run(
            data,
            "desktop",
            "link",
            "--join",
            code.group(1),
            "--server",
            server.url,
            "--name",
            "Desktop",
        )
    )
    asked = await read_until(laptop.stdout, r"\[y/N\]")
    assert "Link Desktop? [y/N]" in asked
    laptop.stdin.write(b"y\n")
    await laptop.stdin.drain()
    rest, _ = await asyncio.wait_for(laptop.communicate(), WAIT * 2)
    assert laptop.returncode == 0, rest
    assert "Linked Desktop." in rest.decode()
    status, out, err = await desktop
    assert status == 0, err
    assert "Linked to account" in out

    status, out, err = await run(data, "desktop", "whoami")
    assert status == 0, err
    assert "lcli@" in out
    for profile in ("desktop", "laptop"):  # the desktop's name reaches the laptop
        status, _, err = await run(data, profile, "sync")
        assert status == 0, err
    status, out, err = await run(data, "laptop", "devices")
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert "(this device)" in lines[0] and "Desktop" not in lines[0]
    assert "Desktop" in lines[1] and "(this device)" not in lines[1]
    desktop_id = lines[1].split()[0]

    status, out, err = await run(data, "laptop", "unlink", desktop_id)
    assert status == 0, err
    assert f"Removed device {desktop_id}." in out
    status, _, err = await run(data, "desktop", "sync")
    assert status == 1
    assert "removed" in err


async def test_declining_on_the_command_line(server: ServerProcess, tmp_path: Path) -> None:
    data = tmp_path / "cli"
    status, _, err = await run(data, "laptop", "create-account", server.url, "--handle", "dcli")
    assert status == 0, err
    laptop = await start_link(data, "--no-history")
    assert laptop.stdout is not None and laptop.stdin is not None
    shown = await read_until(laptop.stdout, r"Waiting for the new device")
    code = re.search(r"Link code: ([0-9A-Z-]{29})", shown)
    assert code is not None
    desktop = asyncio.create_task(
        run(
            data,
            "desktop",
            "link",
            "--join",
            code.group(1).lower(),
            "--server",
            server.url,
            "--name",
            "Desktop",
        )
    )
    await read_until(laptop.stdout, r"\[y/N\]")
    laptop.stdin.write(b"n\n")
    await laptop.stdin.drain()
    await asyncio.wait_for(laptop.communicate(), WAIT * 2)
    assert laptop.returncode == 1
    status, _, err = await desktop
    assert status == 1
    assert "declined" in err

    status, _, err = await run(data, "desktop", "link", "--join", "not a code", "--name", "D")
    assert status == 1
    assert "link code" in err
