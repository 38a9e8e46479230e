"""The store for async code: one worker thread that owns the connection.

A SQLite connection belongs to the thread that opened it, and the client's
event loop must not block on disk or on scrypt. :class:`AsyncStore` opens a
:class:`~.store.Store` on a dedicated single-thread executor and runs every
piece of database work there, in submission order::

    store = await AsyncStore.open(profile, passphrase=passphrase)
    page = await store.run(lambda s: s.messages.latest(conversation_id, 50))
    await store.transaction(persist_commit, group_id, new_state, messages)
    await store.close()

A function given to :meth:`AsyncStore.run` receives the sync store and must
not keep references to it after it returns. Cancelling the awaiting task
does not stop a function that has started: it runs to completion (or
rollback) on the worker thread, so a transaction is never cut in half.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

from ..errors import StoreError
from ..profiles import Profile
from .kdf import DEFAULT_SCRYPT, ScryptParams
from .keychain import Keychain
from .store import Store, UnlockMethod

__all__ = ["AsyncStore"]

T = TypeVar("T")
P = ParamSpec("P")


class AsyncStore:
    """A :class:`Store` driven from asyncio through its own worker thread."""

    def __init__(self, store: Store, executor: ThreadPoolExecutor) -> None:
        self._store = store
        self._executor = executor
        self._closed = False
        self.profile = store.profile
        self.unlocked_with: UnlockMethod = store.unlocked_with

    @classmethod
    async def open(
        cls,
        profile: Profile,
        *,
        passphrase: str | None = None,
        keychain: Keychain | None = None,
    ) -> AsyncStore:
        """:meth:`Store.open` on a new worker thread."""
        return await cls._start(
            functools.partial(Store.open, profile, passphrase=passphrase, keychain=keychain)
        )

    @classmethod
    async def create(
        cls,
        profile: Profile,
        passphrase: str,
        *,
        keychain: Keychain | None = None,
        kdf: ScryptParams = DEFAULT_SCRYPT,
    ) -> AsyncStore:
        """:meth:`Store.create` on a new worker thread."""
        return await cls._start(
            functools.partial(Store.create, profile, passphrase, keychain=keychain, kdf=kdf)
        )

    @classmethod
    async def _start(cls, opener: Callable[[], Store]) -> AsyncStore:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="messenger-store")
        try:
            store = await asyncio.get_running_loop().run_in_executor(executor, opener)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(store, executor)

    @property
    def key_in_keyring(self) -> bool:
        return self._store.key_in_keyring

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(
        self, fn: Callable[Concatenate[Store, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(store, *args, **kwargs)`` on the worker thread."""
        if self._closed:
            raise StoreError("the store is closed")
        call = functools.partial(fn, self._store, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def transaction(
        self, fn: Callable[Concatenate[Store, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like :meth:`run`, inside one transaction: all of ``fn``'s writes or none."""

        def in_transaction(store: Store) -> T:
            with store.transaction():
                return fn(store, *args, **kwargs)

        return await self.run(in_transaction)

    async def local_transaction(
        self, fn: Callable[Concatenate[Store, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like :meth:`transaction`, for a change of this device's alone (a message
        queued, a send accepted): committed without waiting for the disk.

        It survives the process being killed; a power cut may lose it, and
        only it and other such commits since the last durable one
        (:meth:`~.database.Database.transaction`).
        """

        def in_transaction(store: Store) -> T:
            with store.transaction(durable=False):
                return fn(store, *args, **kwargs)

        return await self.run(in_transaction)

    async def close(self) -> None:
        """Close the database, then let the worker thread end."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._store.close)
        finally:
            self._executor.shutdown(wait=False)
