"""The facade's recovery-passphrase methods, used by the desktop app's lock screen."""

from __future__ import annotations

from pathlib import Path

import pytest

from messenger.client import MessengerClient, WrongPassphraseError

from .helpers import FAST_KDF, MemoryKeyring


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_check_and_change_passphrase(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    old, new = "correct horse battery", "a new staple passphrase"
    client = await MessengerClient.create("p", old, data_dir=tmp_path, kdf=FAST_KDF)
    try:
        assert client.key_in_keyring
        assert await client.check_passphrase(old)
        assert not await client.check_passphrase("wrong horse battery")
        with pytest.raises(WrongPassphraseError):
            await client.change_passphrase("wrong horse battery", new)
        assert await client.check_passphrase(old)
        await client.change_passphrase(old, new)
        assert await client.check_passphrase(new)
        assert not await client.check_passphrase(old)
        memory_keyring.passwords.clear()
        assert await client.remember_key()
        assert memory_keyring.passwords
    finally:
        await client.close()
