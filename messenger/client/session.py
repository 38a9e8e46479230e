"""What the parts of a running client share: store, transport, account, groups.

One :class:`Session` per open profile with an account. Each group has a
lock (:meth:`Session.group_lock`) that serialises every use and change of
its MLS state -- the inbound pipeline, the outbox sender and the facade's
operations -- so that a group is never staged from two places at once
(stage, persist, merge: architecture guide, convention 4). Locks are per
group, so a change in one conversation (a commit waiting for the server's
answer) never holds up another conversation. The MLS work itself runs in
the :class:`~.groups.MLSWorker` thread (:meth:`Session.mls`), off the event
loop. The clock and the randomness are injected, as in the MLS core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from messenger.mls.ciphersuite import RandomSource

from .content import Content, Profile, encode_content
from .events import EventBus
from .groups import GroupCache
from .identity import Account
from .net.http import Transport
from .store.async_store import AsyncStore

__all__ = ["Session"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(eq=False)
class Session:
    store: AsyncStore
    transport: Transport
    account: Account
    groups: GroupCache
    events: EventBus
    clock: Callable[[], float]
    random: RandomSource
    _group_locks: dict[bytes, asyncio.Lock] = field(default_factory=dict, repr=False)

    def group_lock(self, group_id: bytes) -> asyncio.Lock:
        """The lock of a group's MLS state (made on first use; kept while the session lives)."""
        lock = self._group_locks.get(group_id)
        if lock is None:
            lock = self._group_locks[group_id] = asyncio.Lock()
        return lock

    async def mls(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run MLS work off the event loop, in the client's MLS thread."""
        return await self.groups.worker.run(fn, *args, **kwargs)

    def close(self) -> None:
        """Stop the MLS thread."""
        self.groups.worker.close()

    def now_ms(self) -> int:
        """The clock in Unix milliseconds (the store's unit)."""
        return int(self.clock() * 1000)

    def now_s(self) -> int:
        """The clock in Unix seconds (MLS lifetimes)."""
        return int(self.clock())

    def new_uid(self) -> bytes:
        """A fresh 16-byte message uid."""
        return self.random(16)

    def profile_content(self) -> bytes | None:
        """This user's name as a profile message for a group (None if it has none)."""
        identity = self.account.identity
        name = identity.display_name or identity.handle
        if not name:
            return None
        return encode_content(Content(self.new_uid(), self.now_ms(), Profile(name[:64])))
