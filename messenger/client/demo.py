"""``messenger-cli demo``: a local server and two clients chatting, end to end.

It starts ``python -m messenger.server`` on 127.0.0.1 (a free port, embedded
SQLite in a temporary directory), creates two profiles, Alice and Bob, in
another temporary directory -- their stores protected by the passphrase in
``MESSENGER_PASSPHRASE`` or a random one, never the OS keyring -- registers
their accounts (proof of work), and runs a short conversation through the
server: a one-to-one chat with a reply, an edit and a reaction, then both
timelines and the safety number both sides compute. Everything is removed
afterwards.

The server child does not inherit this process's environment: it gets an
allow-list (:data:`SERVER_ENV_ALLOWED`: what Python and the OS need to run,
such as ``PATH``, the locale and the temporary directory) plus its own
``MESSENGER_*`` settings, so ``MESSENGER_PASSPHRASE`` and any other secret
in the environment stay out of its ``/proc/<pid>/environ``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final, TextIO

# httpx and keyring are imported by the functions that use them: the app
# imports this module at start, before its window shows (issue 10).
from .client import MessengerClient
from .errors import ClientError, ServerUnavailableError
from .events import MessageReceived, MessageUpdated
from .store.keychain import Keychain

__all__ = ["SERVER_ENV_ALLOWED", "run_demo", "server_environment", "start_local_server"]

_PASSPHRASE_ENV: Final = "MESSENGER_PASSPHRASE"  # noqa: S105 (a variable name)
_STEP_TIMEOUT: Final = 30.0

#: The variables of this process's environment that the server child may see.
SERVER_ENV_ALLOWED: Final = frozenset(
    {
        # finding programs and libraries, and Python's own settings
        "PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSAFEPATH",
        "PYTHONUTF8",
        "PYTHONIOENCODING",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONWARNINGS",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "DYLD_LIBRARY_PATH",
        # locale and time zone
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_CTYPE",
        "LC_MESSAGES",
        "TZ",
        # temporary files
        "TMPDIR",
        "TEMP",
        "TMP",
        # Windows: Python's sockets and random numbers need these
        "SYSTEMROOT",
        "SYSTEMDRIVE",
        "WINDIR",
        "COMSPEC",
        "PATHEXT",
        # coverage of the child in the test suite
        "COVERAGE_PROCESS_START",
        "COVERAGE_RCFILE",
    }
)


def server_environment(
    settings: Mapping[str, str], parent: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The server child's environment: the allowed part of ``parent``, then ``settings``.

    ``parent`` defaults to this process's environment. Nothing outside
    :data:`SERVER_ENV_ALLOWED` is passed on; in particular no ``MESSENGER_*``
    variable but the ``settings`` given.
    """
    source = os.environ if parent is None else parent
    env = {name: value for name, value in source.items() if name in SERVER_ENV_ALLOWED}
    env.update(settings)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        if os.name == "posix":  # as the server binds: a port in TIME_WAIT is free
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise ClientError(
                f"port {port} is in use",
                user_message=(
                    f"Port {port} is already in use on 127.0.0.1. "
                    "Choose another with --port, or leave --port out for a free one."
                ),
            ) from None


def _die_with_parent() -> None:
    """In the server child (Linux): get SIGTERM when the app that started it dies.

    Without it a crashed or killed app leaves its server running, holding
    the SQLite database, and the next start fails. ``PR_SET_PDEATHSIG``
    survives the ``exec`` of the server.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


_PR_SET_PDEATHSIG: Final = 1


@contextlib.asynccontextmanager
async def start_local_server(
    data_dir: Path, *, port: int = 0, pow_difficulty: int = 16, log_level: str = "WARNING"
) -> AsyncIterator[str]:
    """``python -m messenger.server`` on 127.0.0.1 with SQLite in ``data_dir``; its URL.

    A ``port`` already in use is refused at once (ClientError), so the demo
    never talks to whatever else listens there.
    """
    import httpx

    if port:
        _check_port_free(port)
    port = port or _free_port()
    env = server_environment(
        {
            "MESSENGER_HOST": "127.0.0.1",
            "MESSENGER_PORT": str(port),
            "MESSENGER_DATA_DIR": str(data_dir),
            "MESSENGER_DATABASE_URL": "",
            "MESSENGER_POW_DIFFICULTY": str(pow_difficulty),
            "MESSENGER_LOG_LEVEL": log_level,
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "messenger.server"],
        env=env,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if process.poll() is not None:
                    raise ServerUnavailableError(f"the server exited with {process.returncode}")
                try:
                    if (await http.get(url + "/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerUnavailableError("the local server did not start")
                await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


class _Printer:
    """Prints what one client receives, and lets the script wait for it."""

    def __init__(self, name: str, client: MessengerClient, out: TextIO) -> None:
        self.name = name
        self.client = client
        self.out = out
        self.seen: list[str] = []
        self._changed = asyncio.Condition()
        self._events = client.events()
        self.task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        shown: dict[int, str | None] = {}
        async for event in self._events:
            if not isinstance(event, MessageReceived | MessageUpdated):
                continue
            view = await self.client.message(event.message_id)
            message = view.message
            if (
                message.outgoing
                or message.kind == "system"
                or shown.get(message.id) == message.body
            ):
                continue
            what = "received" if message.id not in shown else "sees an edit"
            shown[message.id] = message.body
            line = f"  [{self.name}] {what} from {view.sender_name}: {message.body}"
            print(line, file=self.out, flush=True)
            async with self._changed:
                self.seen.append(message.body or "")
                self._changed.notify_all()

    async def wait_for(self, text: str) -> None:
        async def seen() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: text in self.seen)

        await asyncio.wait_for(seen(), _STEP_TIMEOUT)

    async def stop(self) -> None:
        self._events.close()
        await self.task


async def _step(out: TextIO, text: str, action: Callable[[], Awaitable[object]]) -> None:
    print(text, file=out, flush=True)
    await asyncio.wait_for(action(), _STEP_TIMEOUT)


async def run_demo(out: TextIO = sys.stdout, *, port: int = 0) -> int:
    """Run the demo; the exit status."""
    passphrase = os.environ.get(_PASSPHRASE_ENV) or secrets.token_urlsafe(16)
    import keyring.backends.fail

    keychain = Keychain(backend=keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    root = Path(tempfile.mkdtemp(prefix="messenger-demo-"))
    try:
        async with start_local_server(root / "server", port=port) as url:
            print(f"Server: {url} (SQLite in {root / 'server'})", file=out, flush=True)
            alice = await MessengerClient.create(
                "alice", passphrase, data_dir=root / "clients", keychain=keychain
            )
            bob = await MessengerClient.create(
                "bob", passphrase, data_dir=root / "clients", keychain=keychain
            )
            try:
                return await _chat(out, url, alice, bob)
            finally:
                await alice.close()
                await bob.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _chat(out: TextIO, url: str, alice: MessengerClient, bob: MessengerClient) -> int:
    a = await alice.create_account(url, "alice")
    b = await bob.create_account(url, "bob")
    print(f"alice: {a.address}  bob: {b.address} (anonymous accounts, proof of work)", file=out)
    alice_sees = _Printer("alice", alice, out)
    bob_sees = _Printer("bob", bob, out)
    await alice.start()
    await bob.start()
    contact = await alice.add_contact(b.address or b.invite_link)
    chat = await alice.create_conversation(contact.account_id)
    hello = "Hi Bob! This travels end-to-end encrypted with MLS."
    await _step(out, f"alice → bob: {hello}", lambda: alice.send_text(chat.id, hello))
    await bob_sees.wait_for(hello)
    bob_chat = (await bob.conversations())[0].id
    first = (await bob.messages(bob_chat))[-1]
    reply = "Hi Alice, got it. The server only sees ciphertext."
    await _step(out, f"bob → alice (reply): {reply}", lambda: bob.reply(bob_chat, first.id, reply))
    await alice_sees.wait_for(reply)
    mine = (await alice.messages(chat.id))[-1]
    await _step(out, "alice reacts 👍", lambda: alice.react(chat.id, mine.id, "👍"))
    await asyncio.sleep(0.3)
    edited = "Hi Bob! This travels end-to-end encrypted with MLS (RFC 9420)."
    own = next(m for m in await alice.messages(chat.id) if m.message.outgoing)
    await _step(out, "alice edits her first message", lambda: alice.edit(chat.id, own.id, edited))
    await bob_sees.wait_for(edited)
    await alice.mark_read(chat.id)
    await bob.mark_read(bob_chat)
    await alice.flush(_STEP_TIMEOUT)
    await bob.flush(_STEP_TIMEOUT)
    await asyncio.sleep(0.3)
    from .cli import format_message

    for name, client, cid in (("alice", alice, chat.id), ("bob", bob, bob_chat)):
        print(f"\n{name}'s timeline:", file=out)
        for view in await client.messages(cid):
            print("  " + format_message(view), file=out)
    number_a = await alice.safety_number(contact.account_id)
    number_b = await bob.safety_number(a.account_id)
    print("\nSafety number (the same on both sides):", file=out)
    print(number_a.number, file=out)
    await alice_sees.stop()
    await bob_sees.stop()
    return 0 if number_a.number == number_b.number else 1
