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
* expired bundles are deleted locally.

It runs at start, after each Welcome (which uses one up) and periodically.
KeyPackages are made in the client's MLS thread (:meth:`Session.mls`), off
the event loop.
"""

from __future__ import annotations

import logging
from typing import Final

from messenger.api.models import MAX_KEY_PACKAGES_PER_UPLOAD, KeyPackageCount
from messenger.mls.key_package_bundle import DEFAULT_LIFETIME, KeyPackageBundle

from ..groups import new_key_package
from ..identity import CIPHER_SUITE, GROUP_SUITES
from ..session import Session
from ..store.key_packages import KeyPackageSecret
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

    async def _generate(
        self, count: int, *, last_resort: bool, suite: int
    ) -> list[tuple[bytes, bool]]:
        """``count`` new bundles in ``suite``, made one at a time in the MLS thread."""
        now_s, account, random = self._s.now_s(), await self._s.leaf_account(), self._s.random

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
        by_suite: dict[int, list[KeyPackageSecret]] = {}
        for w in waiting:
            suite = KeyPackageBundle.from_bytes(w.bundle).key_package.cipher_suite
            by_suite.setdefault(int(suite), []).append(w)
        for suite in sorted(by_suite):
            await self._upload(by_suite[suite])

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
            await self._s.transport.upload_key_packages(
                tuple(KeyPackageBundle.from_bytes(w.bundle).message() for w in chunk),
                None if spare is None else KeyPackageBundle.from_bytes(spare.bundle).message(),
            )
            refs = [w.ref for w in chunk]
            if spare is not None:
                refs += [w.ref for w in last_resort]
                spare = None
            await self._s.store.run(_mark_uploaded, refs, self._s.now_ms())

    async def replenish(self) -> int:
        """Top the server up; how many KeyPackages were made."""
        now = self._s.now_ms()
        await self._s.store.run(lambda s: s.key_packages.delete_expired(now=now))
        await self._upload_pending()
        count = await self._s.transport.key_package_count()
        made = []
        for suite in _suites(count, self._suites):
            kept = count.for_suite(suite)
            if kept.available < self._low_water:
                made += await self._generate(
                    self._target - kept.available, last_resort=False, suite=suite
                )
            if not kept.last_resort:
                made += await self._generate(1, last_resort=True, suite=suite)
        if made:
            await self._save(made)
            await self._upload_pending()
            _log.info("uploaded %d KeyPackages", len(made))
        return len(made)


def _suites(count: KeyPackageCount, wanted: tuple[int, ...]) -> tuple[int, ...]:
    """The suites to keep KeyPackages in: those of ``wanted`` that the server counts
    (suite 1 only on a server from before suites, whose count names none)."""
    if count.suites is None:
        return (CIPHER_SUITE,) if CIPHER_SUITE in wanted else ()
    counted = {c.cipher_suite for c in count.suites}
    return tuple(suite for suite in wanted if suite in counted)
