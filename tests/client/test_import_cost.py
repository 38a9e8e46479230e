"""What importing the client costs: the machinery stays out of the read path.

The desktop app shows its first window from the store (issue 10: a cold
start under a second); MLS, the API's models, httpx and the OS keyring take
most of a second to import and are loaded only when the client starts
syncing (:mod:`messenger.client.machinery`). These tests look at
``sys.modules`` of a fresh interpreter -- a structural guard, not a
stopwatch: a top-level import of the machinery anywhere on the path makes
them fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import messenger.client
from messenger.client import Profiles
from messenger.client.store import Keychain, Store
from messenger.client.store.identity import Identity

from .helpers import FAST_KDF, ME, PASSPHRASE, MemoryKeyring, add_text, direct_conversation

#: Modules that must not be loaded by ``import messenger.client``.
MACHINERY = (
    "messenger.mls",
    "messenger.api.models",
    "httpx",
    "httpx_ws",
    "keyring",
    "messenger.client.sync",
    "messenger.client.session",
)
#: The same for reading an open profile (the store's key goes through the keyring).
READ_PATH_MACHINERY = tuple(name for name in MACHINERY if name != "keyring")

_REPORT = "import json, sys; print(json.dumps(sorted(m for m in {names!r} if m in sys.modules)))"


def _run(script: str, *args: str) -> list[str]:
    """Run ``script`` in a fresh interpreter; the JSON list its last line prints."""
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_importing_the_package_loads_no_machinery() -> None:
    script = "import messenger.client\n" + _REPORT.format(names=MACHINERY)
    assert _run(script) == []


def test_the_facade_class_loads_no_machinery() -> None:
    """What the app imports before its window: the facade, the local server's starter."""
    script = (
        "from messenger.client import ClientOptions, ConversationView, MessengerClient\n"
        "from messenger.client import default_data_dir, start_local_server\n"
        "import messenger.client.addresses, messenger.client.net.backoff\n"
        "ClientOptions()\n" + _REPORT.format(names=MACHINERY)
    )
    assert _run(script) == []


def test_the_guard_sees_the_machinery() -> None:
    """The check itself: once the machinery is loaded, it is reported."""
    script = "import messenger.client.machinery as m\nm.load()\n" + _REPORT.format(names=MACHINERY)
    assert _run(script) == sorted(READ_PATH_MACHINERY)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A profile with an account, a conversation and messages (written directly)."""
    profile = Profiles(tmp_path).create("alice")
    keychain = Keychain(backend=MemoryKeyring())
    with Store.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF) as store:
        store.identity.save(
            Identity(
                server_url="https://messenger.example",
                account_id=ME,
                client_id="client-me",
                queue_id="queue-me",
                cipher_suite=1,
                signature_private_key=bytes(32),
                signature_public_key=bytes(32),
                credential=b"credential",
                created_at=1_000,
                handle="alice",
            )
        )
        conversation = direct_conversation(store)
        for n in range(3):
            add_text(store, conversation.id, f"hello {n}", at=2_000 + n)
    return tmp_path


def test_reading_a_profile_loads_no_machinery(data_dir: Path) -> None:
    """What the app's first window reads, without MLS, the API's models or httpx."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from messenger.client import MessengerClient

        async def read() -> None:
            client = await MessengerClient.open(
                "alice", {PASSPHRASE!r}, data_dir=Path(sys.argv[1])
            )
            try:
                assert client.has_account
                views = await client.conversations()
                assert len(views) == 1, views
                page = await client.messages(views[0].id, limit=10)
                assert [v.message.body for v in page] == ["hello 0", "hello 1", "hello 2"]
                assert (await client.conversation(views[0].id)).id == views[0].id
                assert (await client.message(page[-1].id)).message.body == "hello 2"
                info = await client.account()
                assert info is not None and info.account_id == {ME!r}
                assert info.address == "alice@messenger.example", info.address
                assert await client.unread_count() == 3
                assert len(await client.search("hello")) == 3
                await client.contacts(include_blocked=True)
                await client.preferences()
            finally:
                await client.close()

        asyncio.run(read())
        """
    ) + _REPORT.format(names=READ_PATH_MACHINERY)
    assert _run(script, str(data_dir)) == []


def test_every_export_resolves() -> None:
    """Each name of ``__all__`` is reachable through the lazy ``__getattr__``."""
    for name in messenger.client.__all__:
        assert getattr(messenger.client, name) is not None, name
    assert set(messenger.client.__all__) <= set(dir(messenger.client))
    with pytest.raises(AttributeError):
        _ = messenger.client.NoSuchName  # type: ignore[attr-defined]
