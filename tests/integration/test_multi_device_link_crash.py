"""Kill -9 during linking leaves both devices usable (docs/devices.md §2).

One side of the link runs in a process of its own (``link_process.py``)
and is killed with SIGKILL at a chosen point; the other side, the restarted
one, and Bob must all work afterwards, and the link can be done again.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from messenger.client import (
    LinkCancelledError,
    LinkExpiredError,
    MessengerClient,
    parse_link_code,
)

from .conftest import PASSPHRASE, WAIT, Clients, eventually
from .test_multi_device_link import blank, bounded, link, texts

pytestmark = pytest.mark.anyio


def _process(
    clients: Clients, side: str, name: str, point: str, marker: Path, extra: str
) -> subprocess.Popen[bytes]:
    script = Path(__file__).with_name("link_process.py")
    command = [
        sys.executable,
        str(script),
        side,
        str(clients.data_dir(name)),
        name,
        point,
        str(marker),
        extra,
    ]
    env = dict(os.environ, MESSENGER_PASSPHRASE=PASSPHRASE)
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def _wait_file(proc: subprocess.Popen[bytes], path: Path) -> None:
    deadline = time.monotonic() + WAIT
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the link process exited early: {out!r} {err!r}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the link process did not write {path.name}")
        await asyncio.sleep(0.05)


async def _kill(proc: subprocess.Popen[bytes], marker: Path) -> None:
    await _wait_file(proc, marker)
    proc.kill()  # SIGKILL: no cleanup, no finally
    await asyncio.to_thread(proc.communicate, None, 10)


async def _alice_and_bob(
    clients: Clients, tag: str
) -> tuple[MessengerClient, MessengerClient, int, int]:
    laptop = await clients.new("laptop", handle=f"klaptop{tag}")
    bob = await clients.new("bob", handle=f"kbob{tag}")
    bob_info = await bob.account()
    assert bob_info is not None
    await laptop.add_contact(bob_info.invite_link)
    chat = await laptop.create_conversation(bob_info.account_id)
    await laptop.send_text(chat.id, "before")

    async def bob_joined() -> bool:
        return len(await bob.conversations()) == 1

    await eventually(bob_joined, "Bob to join")
    return laptop, bob, chat.id, (await bob.conversations())[0].id


async def _all_talk(
    laptop: MessengerClient, desktop: MessengerClient, bob: MessengerClient, bob_chat: int
) -> None:
    """Both of Alice's devices reach Bob, in the one conversation Bob has with her."""
    await desktop.start()

    async def desktop_joined() -> bool:
        return len(await desktop.conversations()) == 1

    await eventually(desktop_joined, "the desktop to join the conversation")
    desktop_chat = (await desktop.conversations())[0].id
    laptop_chat = (await laptop.conversations())[0].id
    await desktop.send_text(desktop_chat, "from the desktop")
    await laptop.send_text(laptop_chat, "from the laptop")

    async def bob_has_both() -> bool:
        got = await texts(bob, bob_chat)
        return "from the desktop" in got and "from the laptop" in got

    await eventually(bob_has_both, "Bob to get both devices' messages")
    assert len(await bob.conversations()) == 1
    assert len(await bob.contacts()) == 1


@pytest.mark.parametrize("point", ["registered", "adding"])
async def test_the_existing_device_killed(clients: Clients, tmp_path: Path, point: str) -> None:
    laptop, bob, _, bob_chat = await _alice_and_bob(clients, point)
    await clients.close(laptop)
    marker, code_file = tmp_path / "marker", tmp_path / "code"
    proc = _process(clients, "creator", "laptop", point, marker, str(code_file))
    try:
        await _wait_file(proc, code_file)
        desktop = await blank(clients, "desktop")
        code = parse_link_code(code_file.read_text(encoding="ascii"))
        joining = asyncio.create_task(desktop.link_account(code, device_name="Desktop"))
        await _kill(proc, marker)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    laptop = await clients.open("laptop")  # its start undoes or finishes the link

    async def recovered() -> bool:
        return await laptop._store.run(lambda s: s.pending_links.all()) == []

    await eventually(recovered, "the laptop to deal with the link it left behind")
    if point == "registered":
        # Never answered: the mailbox is closed, the client removed; the desktop starts over.
        with pytest.raises(LinkExpiredError):
            await bounded(joining)
        assert not desktop.has_account
        await laptop.flush(WAIT)
        await link(laptop, desktop)
    else:
        # The Adds were queued before the kill: the desktop is linked, its Welcomes come.
        await bounded(joining)
        assert desktop.has_account
    await _all_talk(laptop, desktop, bob, bob_chat)


@pytest.mark.parametrize("point", ["answered", "ready"])
async def test_the_new_device_killed(clients: Clients, tmp_path: Path, point: str) -> None:
    laptop, bob, _, bob_chat = await _alice_and_bob(clients, point)
    marker = tmp_path / "marker"
    device_link = await laptop.start_link()
    proc = _process(clients, "joiner", "desktop", point, marker, device_link.code.uri)
    try:
        await bounded(device_link.wait_offer())
        approving = asyncio.create_task(device_link.approve())
        await _kill(proc, marker)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # The laptop's user gives up waiting.
    await device_link.cancel()
    with pytest.raises(LinkCancelledError):
        await bounded(approving)

    desktop = await clients.open("desktop", start=False)
    if point == "answered":
        # Never ready: the identity is discarded; the profile is empty and links again.
        assert not desktop.has_account
        await link(laptop, desktop)
    else:
        # Ready: its identity stays; the Adds were queued; the Welcomes wait in its queue.
        assert desktop.has_account
    await _all_talk(laptop, desktop, bob, bob_chat)
