"""Removing a device from the account, or signing this one out (docs/devices.md §5).

Removing another device: the server revokes it first (``DELETE
/v1/clients/{id}``: its queue, KeyPackages and memberships go, and it is
answered ``device_removed`` from then on), then a commit removing its
leaves is queued, durably, in every group of the account, the devices group
included (RFC 9420 §12.1.3; intent ``remove_clients``), so that it cannot
decrypt anything sent after (RFC 9420 §16.4: removed members lose the
epoch secrets). A commit built in an epoch another device moved on from is
built again in the new one, and is moot once another device removed the
same leaves.

Signing this device out: MLS does not let a member commit its own removal
(RFC 9420 §12.4), so this device first tells its other devices, with a
``signed_out`` sync record in the devices group, to remove it; once that
was sent it revokes itself on the server and stops. The account's last
device can be neither removed nor signed out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..errors import NotAllowedError
from ..events import DevicesChanged
from ..queue_keys import contact_kill_of, queue_kill_of
from ..session import Session
from ..store.store import Store
from .records import SignedOut
from .sync import queue_records, queue_removal

__all__ = ["remove_device"]


async def remove_device(
    session: Session, client_id: str, *, flush: Callable[[], Awaitable[None]]
) -> bool:
    """Remove ``client_id`` from the account; whether it was this device (signed out).

    ``flush`` sends everything queued (for a sign-out: the record telling
    the other devices), raising if it cannot.
    """
    me = session.account
    store = session.store
    active = {d.client_id for d in await store.run(lambda s: s.devices.all())}
    if client_id not in active:
        raise NotAllowedError(
            "not a device of this account",
            user_message="This is not one of your devices.",
        )
    if not active - {client_id}:
        raise NotAllowedError(
            "the last device",
            user_message="This is your account's only device: it cannot be removed.",
        )
    now = session.now_ms()
    if client_id == me.client_id:

        def tell(s: Store) -> None:
            queue_records(
                s, [SignedOut(client_id)], client_id=client_id, new_uid=session.new_uid, now=now
            )

        await store.transaction(tell)
        session.outbox_queued()
        await flush()
        await session.transport.remove_client(
            client_id, queue_kill_of(session, client_id), contact_kill_of(session, client_id)
        )
        return True
    await session.transport.remove_client(
        client_id, queue_kill_of(session, client_id), contact_kill_of(session, client_id)
    )
    group_ids = await store.transaction(lambda s: queue_removal(s, [client_id], now=now))
    for group_id in group_ids:
        session.outbox_queued(group_id)
    session.events.publish(DevicesChanged())
    return False
