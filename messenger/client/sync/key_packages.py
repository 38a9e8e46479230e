"""Keeping KeyPackages on the server, so that others can add this client.

Others add a client to a group by claiming one of its KeyPackages from the
server (RFC 9750 §5.1; RFC 9420 §10): each one-time KeyPackage is handed
out once, and a last-resort one when none is left (RFC 9420 §16.8). The
pool keeps the server stocked:

* the private keys of every KeyPackage are saved in the store *before* its
  upload, so a Welcome made for it can always be opened
  (:mod:`..store.key_packages`); bundles whose upload failed are uploaded
  first next time;
* when fewer than ``low_water`` one-time KeyPackages are left on the
  server, it uploads enough for ``target``; it also makes sure the server
  has a last-resort KeyPackage;
* all of this per cipher suite, in each of :data:`~..identity.GROUP_SUITES`
  (suite 1 and the hybrid post-quantum 0xF001, docs/pq-suites.md), so that
  others can add this client to a group in either; a server from before
  suites (its count names none) gets suite 1 only;
* expired bundles are deleted locally;
* once the client has a contact queue (:mod:`..contact_queue`), new leaves
  name it, and an upload of only such KeyPackages carries no proof of the
  client's own queue, but the contact key's ``contact_proof``;
* every leaf carries the account's contact token (:mod:`..contact_tokens`):
  the server seals such KeyPackages under it, and drops the client's others
  of the suite when they arrive; saved bundles without it are never
  uploaded.

It runs at start, after each Welcome (which uses one up) and periodically.
KeyPackages are made in the client's MLS thread (:meth:`Session.mls`), off
the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from messenger.api.delivery_address import DELIVERY_QUEUE_EXTENSION
from messenger.api.models import MAX_KEY_PACKAGES_PER_UPLOAD, KeyPackageCount
from messenger.api.signing import contact_queue_possession
from messenger.mls.extensions import find_extension
from messenger.mls.key_package_bundle import DEFAULT_LIFETIME, KeyPackageBundle

from ..contact_tokens import leaf_token, own_token
from ..groups import new_key_package
from ..identity import CIPHER_SUITE, GROUP_SUITES
from ..session import Session
from ..store.key_packages import KeyPackageSecret
from ..store.settings import CONTACT_KEY_PACKAGES_OWED
from ..store.store import Store

__all__ = ["KeyPackagePool"]

_log = logging.getLogger(__name__)

_DAY_MS: Final = 86_400_000


def _mark_uploaded(store: Store, refs: list[bytes], now: int) -> None:
    store.key_packages.mark_uploaded(refs, at=now)


class KeyPackagePool:
    """Replenishes this client's KeyPackages on the server."""

    def __init__(
        self,
        session: Session,
        *,
        target: int = 20,
        low_water: int = 8,
        suites: tuple[int, ...] | None = None,
    ) -> None:
        """``suites``: the suites to keep KeyPackages in (default :data:`GROUP_SUITES`)."""
        if not 0 < low_water <= target <= MAX_KEY_PACKAGES_PER_UPLOAD:
            raise ValueError("need 0 < low_water <= target <= the upload limit")
        if suites is not None and not set(suites) <= set(GROUP_SUITES):
            raise ValueError("a suite this client makes no KeyPackages in")
        self._suites = GROUP_SUITES if suites is None else suites
        self._s = session
        self._target = target
        self._low_water = low_water
        #: One top-up at a time (at start, after a Welcome, periodically, after the
        #: queues' set-up): two would both see the server short and both fill it.
        self.lock = asyncio.Lock()

    async def _generate(
        self, count: int, *, last_resort: bool, suite: int
    ) -> list[tuple[bytes, bool]]:
        """``count`` new bundles in ``suite``, made one at a time in the MLS thread."""
        # Their leaves name the contact queue once there is one (docs/metadata.md §1).
        now_s, account = self._s.now_s(), await self._s.key_package_account()
        random = self._s.random

        def make() -> bytes:
            bundle = new_key_package(
                account, random, now=now_s, last_resort=last_resort, suite=suite
            )
            return bundle.to_bytes()

        return [(await self._s.mls(make), last_resort) for _ in range(count)]

    async def _save(self, bundles: list[tuple[bytes, bool]]) -> None:
        now = self._s.now_ms()
        expires = now + DEFAULT_LIFETIME * 1000 - _DAY_MS

        def write(store: Store) -> None:
            for data, last_resort in bundles:
                bundle = KeyPackageBundle.from_bytes(data)
                store.key_packages.add(
                    bundle.ref(), data, created_at=now, expires_at=expires, last_resort=last_resort
                )

        await self._s.store.transaction(write)

    async def _upload_pending(self) -> None:
        """Upload the saved bundles the server does not have yet, one suite at a time
        (the server keeps one last-resort KeyPackage per suite)."""
        waiting = await self._s.store.run(lambda s: s.key_packages.not_uploaded())
        token = own_token(self._s.account)
        if waiting and token is not None:
            # Made before the account's leaves carried its contact token: never
            # handed out; the server would keep them sealed under its key file
            # alone, which the new set replaces (docs/metadata.md §1).
            untokened = [w.ref for w in waiting if _token(w) != token]
            if untokened:
                await self._s.store.run(_delete, untokened)
                waiting = [w for w in waiting if w.ref not in set(untokened)]
        if waiting and self._s.contact is not None:
            await self._s.key_package_account()  # this session's contact address
            # Made before the contact queue (or for a contact queue since lost):
            # never handed out, so never claimable; they would name the wrong
            # queue on the server. Made again below if the server is short.
            stale = [w for w in waiting if not self._names_contact(w)]
            if stale:
                gone = [w.ref for w in stale]
                await self._s.store.run(_delete, gone)
                waiting = [w for w in waiting if w.ref not in set(gone)]
        by_suite: dict[int, list[KeyPackageSecret]] = {}
        for w in waiting:
            suite = KeyPackageBundle.from_bytes(w.bundle).key_package.cipher_suite
            by_suite.setdefault(int(suite), []).append(w)
        for suite in sorted(by_suite):
            await self._upload(by_suite[suite])

    def _names_contact(self, secret: KeyPackageSecret) -> bool:
        bundle = KeyPackageBundle.from_bytes(secret.bundle)
        return self._s.names_contact_queue(_delivery_address(bundle))

    async def _upload(self, waiting: list[KeyPackageSecret]) -> None:
        """Upload bundles of one suite, the newest last-resort one with them."""
        one_time = [w for w in waiting if not w.last_resort]
        last_resort = [w for w in waiting if w.last_resort]
        spare = last_resort[-1] if last_resort else None
        while one_time or spare is not None:
            chunk, one_time = (
                one_time[:MAX_KEY_PACKAGES_PER_UPLOAD],
                one_time[MAX_KEY_PACKAGES_PER_UPLOAD:],
            )
            bundles = [KeyPackageBundle.from_bytes(w.bundle) for w in chunk]
            spare_bundle = None if spare is None else KeyPackageBundle.from_bytes(spare.bundle)
            # Leaves that all name the contact queue need no proof of the client's
            # own queue: the server knows the contact queue from the client, so the
            # upload does not show it which queue the client reads (docs/metadata.md §1).
            # The contact key's proof lets the server know that queue as the
            # client's without a row naming it.
            named = [b for b in (*bundles, spare_bundle) if b is not None]
            contact = [self._s.names_contact_queue(_delivery_address(b)) for b in named]
            await self._s.transport.upload_key_packages(
                tuple(b.message() for b in bundles),
                None if spare_bundle is None else spare_bundle.message(),
                prove_queue=not all(contact),
                contact_proof=self._contact_proof() if any(contact) else None,
            )
            refs = [w.ref for w in chunk]
            if spare is not None:
                refs += [w.ref for w in last_resort]
                spare = None
            await self._s.store.run(_mark_uploaded, refs, self._s.now_ms())

    def _contact_proof(self) -> bytes | None:
        """The contact key's signature over this client and the key
        (:func:`~messenger.api.signing.contact_queue_possession`)."""
        contact, signer = self._s.contact, self._s.transport.signer
        if contact is None or signer is None:
            return None
        return contact.sign(contact_queue_possession(signer.client_id, contact.public_key))

    async def replenish(self) -> int:
        """Top the server up; how many KeyPackages were made.

        A whole new set whatever the server holds while one naming the contact
        queue is owed (:meth:`owed`; the server drops the ones that name
        another queue when these arrive, docs/metadata.md §1).
        """
        async with self.lock:
            return await self.replenish_locked()

    async def owed(self) -> bool:
        """Whether a whole new set naming the contact queue is still to go up."""
        return bool(await self._s.store.run(lambda s: s.settings.get(CONTACT_KEY_PACKAGES_OWED)))

    async def replenish_locked(self) -> int:
        """:meth:`replenish`, :attr:`lock` held by the caller."""
        fresh = self._s.contact is not None and await self.owed()
        made = await self._top_up(fresh=fresh)
        if fresh:  # the whole set is up: nothing is owed any more
            await self._s.store.run(lambda s: s.settings.delete(CONTACT_KEY_PACKAGES_OWED))
        return made

    async def _top_up(self, *, fresh: bool) -> int:
        now = self._s.now_ms()
        await self._s.store.run(lambda s: s.key_packages.delete_expired(now=now))
        await self._upload_pending()
        count = await self._s.transport.key_package_count()
        made = []
        for suite in _suites(count, self._suites):
            kept = count.for_suite(suite)
            available = 0 if fresh else kept.available
            if available < self._low_water:
                made += await self._generate(
                    self._target - available, last_resort=False, suite=suite
                )
            if fresh or not kept.last_resort:
                made += await self._generate(1, last_resort=True, suite=suite)
        if made:
            await self._save(made)
            await self._upload_pending()
            _log.info("uploaded %d KeyPackages", len(made))
        return len(made)


def _delete(store: Store, refs: list[bytes]) -> None:
    for ref in refs:
        store.key_packages.delete(ref)


def _token(secret: KeyPackageSecret) -> bytes | None:
    """The contact token a saved KeyPackage's leaf carries (None: none)."""
    bundle = KeyPackageBundle.from_bytes(secret.bundle)
    return leaf_token(bundle.key_package.leaf_node.extensions)


def _delivery_address(bundle: KeyPackageBundle) -> str | None:
    """The delivery address a KeyPackage's leaf names (None: none readable)."""
    found = find_extension(bundle.key_package.leaf_node.extensions, DELIVERY_QUEUE_EXTENSION)
    if found is None:
        return None
    try:
        return bytes(found.extension_data).decode("ascii")
    except UnicodeDecodeError:
        return None


def _suites(count: KeyPackageCount, wanted: tuple[int, ...]) -> tuple[int, ...]:
    """The suites to keep KeyPackages in: those of ``wanted`` that the server counts
    (suite 1 only on a server from before suites, whose count names none)."""
    if count.suites is None:
        return (CIPHER_SUITE,) if CIPHER_SUITE in wanted else ()
    counted = {c.cipher_suite for c in count.suites}
    return tuple(suite for suite in wanted if suite in counted)
