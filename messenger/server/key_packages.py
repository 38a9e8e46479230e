"""KeyPackage directory (RFC 9750 §5.1).

Clients upload one-time KeyPackages and one "last resort" KeyPackage. A claim
for an account returns one KeyPackage per client of that account: a one-time
one, deleted in the same transaction so that no two claimers ever get the
same, or the client's last-resort one (kept, and flagged as such) when no
one-time KeyPackage is left. Clients watch :meth:`KeyPackages.count` and
upload more before they run out.

Uploaded KeyPackages must decode and verify (:func:`.mls_frames.check_key_package`).
"""

from __future__ import annotations

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import (
    ClaimedKeyPackage,
    ClaimKeyPackagesResponse,
    KeyPackageCount,
    UploadKeyPackagesRequest,
    UploadKeyPackagesResponse,
)

from .authentication import Principal
from .mls_frames import check_key_package
from .storage import Database, Tx

__all__ = ["KeyPackages"]


async def _count(tx: Tx, client_id: str) -> tuple[int, bool]:
    row = await tx.fetchone(
        "SELECT COUNT(*), COALESCE(SUM(last_resort), 0) FROM key_packages WHERE client_id = ?",
        client_id,
    )
    assert row is not None
    total, last_resort = int(row[0]), int(row[1])
    return total - last_resort, last_resort > 0


class KeyPackages:
    """Upload, count and claim KeyPackages."""

    def __init__(self, db: Database, max_per_client: int) -> None:
        self._db = db
        self._max = max_per_client

    async def upload(
        self, principal: Principal, req: UploadKeyPackagesRequest
    ) -> UploadKeyPackagesResponse:
        """Store new one-time KeyPackages and replace the last-resort one if given."""
        for index, data in enumerate(req.key_packages):
            try:
                check_key_package(data)
            except ApiError as exc:
                raise ApiError(
                    exc.code, f"key_packages[{index}]: {exc.message}", {"index": index}
                ) from None
        if req.last_resort is not None:
            check_key_package(req.last_resort)
        client_id = principal.client_id

        async def op(tx: Tx) -> UploadKeyPackagesResponse:
            available, _ = await _count(tx, client_id)
            if available + len(req.key_packages) > self._max:
                raise ApiError(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"a client may keep at most {self._max} KeyPackages on the server",
                    {"available": available},
                )
            await tx.executemany(
                "INSERT INTO key_packages (client_id, last_resort, data) VALUES (?, 0, ?)",
                [(client_id, data) for data in req.key_packages],
            )
            if req.last_resort is not None:
                await tx.execute(
                    "DELETE FROM key_packages WHERE client_id = ? AND last_resort = 1", client_id
                )
                await tx.execute(
                    "INSERT INTO key_packages (client_id, last_resort, data) VALUES (?, 1, ?)",
                    client_id,
                    req.last_resort,
                )
            available, last_resort = await _count(tx, client_id)
            return UploadKeyPackagesResponse(available, last_resort)

        return await self._db.transaction(op)

    async def count(self, principal: Principal) -> KeyPackageCount:
        """The signing client's unclaimed one-time KeyPackages."""

        async def op(tx: Tx) -> KeyPackageCount:
            available, last_resort = await _count(tx, principal.client_id)
            return KeyPackageCount(available, last_resort)

        return await self._db.read(op)

    async def claim(self, account_id: str) -> ClaimKeyPackagesResponse:
        """One KeyPackage for each client of ``account_id``."""

        async def op(tx: Tx) -> ClaimKeyPackagesResponse:
            clients = await tx.fetchall(
                "SELECT client_id, queue_id FROM clients WHERE account_id = ? ORDER BY client_id",
                account_id,
            )
            if not clients:
                raise ApiError(ErrorCode.UNKNOWN_ACCOUNT, "no such account")
            claimed: list[ClaimedKeyPackage] = []
            for client_id, queue_id in clients:
                row = await tx.fetchone(
                    "SELECT kp_id, data FROM key_packages WHERE client_id = ? AND last_resort = 0 "  # noqa: S608
                    "ORDER BY kp_id LIMIT 1" + tx.for_update_skip_locked,
                    client_id,
                )
                if row is not None:
                    await tx.execute("DELETE FROM key_packages WHERE kp_id = ?", row[0])
                    claimed.append(ClaimedKeyPackage(client_id, queue_id, bytes(row[1]), False))
                    continue
                row = await tx.fetchone(
                    "SELECT data FROM key_packages WHERE client_id = ? AND last_resort = 1",
                    client_id,
                )
                if row is not None:
                    claimed.append(ClaimedKeyPackage(client_id, queue_id, bytes(row[0]), True))
            if not claimed:
                raise ApiError(ErrorCode.NO_KEY_PACKAGE, "the account has no KeyPackage left")
            return ClaimKeyPackagesResponse(tuple(claimed))

        return await self._db.transaction(op)
