"""The async wrapper: one worker thread owns the connection."""

from __future__ import annotations

import asyncio
import threading

import pytest

from messenger.client import PassphraseRequiredError, Profile, StoreError
from messenger.client.store import AsyncStore, Keychain, Store, UnlockMethod

from .helpers import FAST_KDF, PASSPHRASE, add_text, direct_conversation


def test_async_store_runs_everything_on_one_worker_thread(
    profile: Profile, keychain: Keychain
) -> None:
    async def main() -> None:
        store = await AsyncStore.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF)
        assert store.unlocked_with is UnlockMethod.CREATED and store.key_in_keyring
        conversation = await store.run(direct_conversation)
        threads = await asyncio.gather(
            *(store.run(lambda s: threading.get_ident()) for _ in range(10))
        )
        assert len(set(threads)) == 1 and threads[0] != threading.get_ident()
        await asyncio.gather(*(store.run(add_text, conversation.id, f"m{i}") for i in range(20)))
        page = await store.run(lambda s: s.messages.latest(conversation.id, 50))
        assert [m.body for m in page] == [f"m{i}" for i in range(20)]
        await store.close()
        await store.close()  # idempotent
        assert store.closed
        with pytest.raises(StoreError):
            await store.run(lambda s: None)

    asyncio.run(main())


def test_async_transaction_is_atomic(profile: Profile, keychain: Keychain) -> None:
    class Boom(Exception):
        pass

    def persist_then_fail(store: Store, conversation_id: int) -> None:
        store.groups.save(b"g", 1, b"state", now=1)
        add_text(store, conversation_id, "lost")
        raise Boom

    async def main() -> None:
        store = await AsyncStore.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF)
        try:
            conversation = await store.run(direct_conversation)
            with pytest.raises(Boom):
                await store.transaction(persist_then_fail, conversation.id)
            assert await store.run(lambda s: s.groups.get(b"g")) is None
            assert await store.run(lambda s: s.messages.count(conversation.id)) == 0
            result = await store.transaction(lambda s: add_text(s, conversation.id, "kept").body)
            assert result == "kept"
        finally:
            await store.close()

    asyncio.run(main())


def test_async_open_errors_are_typed(profile: Profile, no_keyring: None) -> None:
    async def main() -> None:
        store = await AsyncStore.create(profile, PASSPHRASE, keychain=Keychain(), kdf=FAST_KDF)
        await store.close()
        with pytest.raises(PassphraseRequiredError):
            await AsyncStore.open(profile)
        reopened = await AsyncStore.open(profile, passphrase=PASSPHRASE)
        assert reopened.unlocked_with is UnlockMethod.PASSPHRASE
        await reopened.close()

    asyncio.run(main())
