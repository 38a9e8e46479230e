"""What the parts of a running client share: store, transport, account, groups.

One :class:`Session` per open profile with an account. ``lock`` serialises
every change to MLS group state -- the inbound pipeline, the outbox sender
and the facade's operations -- so that a group is never staged from two
places at once (stage, persist, merge: architecture guide, convention 4).
The clock and the randomness are injected, as in the MLS core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from messenger.mls.ciphersuite import RandomSource

from .content import Content, Profile, encode_content
from .events import EventBus
from .groups import GroupCache
from .identity import Account
from .net.http import Transport
from .store.async_store import AsyncStore

__all__ = ["Session"]


@dataclass(eq=False)
class Session:
    store: AsyncStore
    transport: Transport
    account: Account
    groups: GroupCache
    events: EventBus
    clock: Callable[[], float]
    random: RandomSource
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

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
