"""KeyPackage directory (RFC 9750 §5.1).

Clients upload one-time KeyPackages and one "last resort" KeyPackage. A claim
for an account returns one KeyPackage per client of that account: a one-time
one, deleted in the same transaction so that no two claimers ever get the
same, or the client's last-resort one (kept, and flagged as such) when no
one-time KeyPackage is left. Clients watch :meth:`KeyPackages.count` and
upload more before they run out.

Uploaded KeyPackages must decode and verify (:func:`.mls_frames.check_key_package`),
and must be the uploader's own: the leaf's signature key is the key the
client registered, and its credential is one this server issued to that
client (its account and client IDs and that key, under the server's
signature). Otherwise the whole upload is refused with ``invalid_message``
and nothing of it is stored, so no one can plant KeyPackages that others
would take for someone else's.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import (
    ClaimedKeyPackage,
    ClaimKeyPackagesResponse,
    KeyPackageCount,
    UploadKeyPackagesRequest,
    UploadKeyPackagesResponse,
)
from messenger.api.signing import credential_tbs

from .authentication import Principal
from .mls_frames import KeyPackageLeaf, check_key_package
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

    def __init__(self, db: Database, max_per_client: int, credential_public_key: bytes) -> None:
        self._db = db
        self._max = max_per_client
        self._credential_key = Ed25519PublicKey.from_public_bytes(credential_public_key)

    def _is_own(self, principal: Principal, registered_key: bytes, leaf: KeyPackageLeaf) -> bool:
        """Whether ``leaf`` carries the uploader's key and its server-issued credential."""
        cred = leaf.credential
        if (
            cred is None
            or leaf.signature_key != registered_key
            or cred.signature_key != registered_key
            or cred.account_id != principal.account_id
            or cred.client_id != principal.client_id
        ):
            return False
        tbs = credential_tbs(cred.account_id, cred.client_id, cred.signature_key, cred.issued_at)
        try:
            self._credential_key.verify(cred.signature, tbs)
        except InvalidSignature:
            return False
        return True

    async def upload(
        self, principal: Principal, req: UploadKeyPackagesRequest
    ) -> UploadKeyPackagesResponse:
        """Store new one-time KeyPackages and replace the last-resort one if given."""
        leaves: list[tuple[str, dict[str, int], KeyPackageLeaf]] = []
        for index, data in enumerate(req.key_packages):
            try:
                leaves.append((f"key_packages[{index}]", {"index": index}, check_key_package(data)))
            except ApiError as exc:
                raise ApiError(
                    exc.code, f"key_packages[{index}]: {exc.message}", {"index": index}
                ) from None
        if req.last_resort is not None:
            leaves.append(("last_resort", {}, check_key_package(req.last_resort)))
        client_id = principal.client_id

        async def op(tx: Tx) -> UploadKeyPackagesResponse:
            row = await tx.fetchone(
                "SELECT signature_key FROM clients WHERE client_id = ?", client_id
            )
            registered_key = b"" if row is None else bytes(row[0])
            for where, details, leaf in leaves:
                if not self._is_own(principal, registered_key, leaf):
                    raise ApiError(
                        ErrorCode.INVALID_MESSAGE,
                        f"{where}: the KeyPackage is not bound to this client's "
                        "signature key and credential",
                        details,
                    )
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
