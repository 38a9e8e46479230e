"""What the parts of a running client share: store, transport, account, groups.

One :class:`Session` per open profile with an account. Its
:class:`~.epochs.GroupEpochs` (:attr:`Session.epochs`) owns the groups:
the cache, one lock per group (:meth:`Session.group_lock`) that serialises
every use and change of its MLS state -- the inbound pipeline, the outbox
sender and the facade's operations -- and every change of epoch (stage,
persist, merge: architecture guide, convention 4). Locks are per group and
never held across a network call. The MLS work itself runs in the
:class:`~.groups.MLSWorker` thread (:meth:`Session.mls`), off the event
loop. :meth:`Session.outbox_queued` tells the outbox sender that something
was queued (the inbound pipeline queues commits and profile messages)
without either knowing the other; :meth:`Session.rejoin_boxes_changed`
tells the rejoin box uploader (:mod:`.rejoin_boxes`) the same way. The clock and the randomness are
injected, as in the MLS core.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from messenger.api.errors import ErrorCode
from messenger.mls.ciphersuite import RandomSource

from .content import Content, Profile, encode_content
from .errors import ServerRejectedError
from .events import EventBus
from .groups import GroupCache
from .identity import Account
from .net.http import Transport
from .net.signing import QueueSigner
from .store.async_store import AsyncStore

if TYPE_CHECKING:
    from .epochs import GroupEpochs

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
    outbox_signal: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    """Set when something was queued for the outbox sender (it clears it)."""
    outbox_hints: set[bytes] | None = field(default_factory=set, repr=False)
    """The groups that had items queued since the sender last looked (None: any)."""
    rejoin_signal: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    """Set when a group's rejoin box may have become due, or a group was left whose
    box is to be deleted (the uploader, :mod:`.rejoin_boxes`, clears it)."""
    contact: QueueSigner | None = field(default=None, repr=False)
    """This client's contact queue, once it has one (:mod:`.contact_queue`)."""
    _contact_address: tuple[str, str] | None = field(default=None, repr=False)
    _epochs: GroupEpochs | None = field(default=None, repr=False)

    @property
    def epochs(self) -> GroupEpochs:
        """The owner of the groups' transitions (made on first use)."""
        if self._epochs is None:
            # Imported here: epochs uses sync.effects, whose package imports this module.
            from .epochs import GroupEpochs

            self._epochs = GroupEpochs(self)
        return self._epochs

    async def leaf_account(self) -> Account:
        """The account, with a delivery address for the leaves it makes next.

        The address is asked of the server once per session
        (:mod:`messenger.api.delivery_address`), so no new leaf shows the
        queue ID to those who read it. A server from before addresses
        (``not_found``) gets leaves with the queue ID, as before.
        """
        account = self.account
        if account.delivery_address is not None:
            return account
        try:
            address = await self.transport.queue_address()
        except ServerRejectedError as exc:
            if exc.code != ErrorCode.NOT_FOUND.value:
                raise
            address = account.queue_id
        if self.account.queue_id == account.queue_id:  # not restored meanwhile
            self.account = self.account.with_address(address)
        return self.account

    async def key_package_account(self) -> Account:
        """The account as its next KeyPackages show it: with an address of its
        contact queue once it has one (asked once per session, with a queue
        request of that queue), else as :meth:`leaf_account`."""
        contact = self.contact
        if contact is None:
            return await self.leaf_account()
        known = self._contact_address
        if known is None or known[0] != contact.queue_id:
            known = (contact.queue_id, await self.transport.queue_address(contact))
            self._contact_address = known
        return self.account.with_address(known[1])

    def names_contact_queue(self, address: str | None) -> bool:
        """Whether ``address`` is this session's address of the contact queue."""
        known = self._contact_address
        return known is not None and address == known[1]

    def group_lock(self, group_id: bytes) -> asyncio.Lock:
        """The lock of a group's MLS state (made on first use; kept while the session lives)."""
        return self.epochs.lock(group_id)

    def outbox_queued(self, group_id: bytes | None = None) -> None:
        """Wake the outbox sender: an item was queued (for ``group_id``) or became due."""
        if group_id is None:
            self.outbox_hints = None
        elif self.outbox_hints is not None:
            self.outbox_hints.add(group_id)
        self.outbox_signal.set()

    def rejoin_boxes_changed(self) -> None:
        """Tell the rejoin box uploader that a box may be due or is to be deleted."""
        self.rejoin_signal.set()

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
