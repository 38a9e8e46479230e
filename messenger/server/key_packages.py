"""KeyPackage directory (RFC 9750 §5.1).

Clients upload one-time KeyPackages and one "last resort" KeyPackage. A claim
for an account returns one KeyPackage per client of that account: a one-time
one, deleted in the same transaction so that no two claimers ever get the
same, or the client's last-resort one (kept, and flagged as such) when no
one-time KeyPackage is left. A claim for the claimer's own account (adding
its other devices, docs/devices.md) returns the *other* clients' only.
Clients watch :meth:`KeyPackages.count` and upload more before they run out.

**Cipher suites** (RFC 9420 §10, §17.1; docs/pq-suites.md): the server
records each KeyPackage's suite and keeps only :data:`KEY_PACKAGE_SUITES`
(suite 1 and the hybrid post-quantum 0xF001); one-time KeyPackages, their
limit per client and the last-resort KeyPackage are per suite. A claim
lists the suites its claimer accepts, most wanted first (suite 1 if none),
and gets KeyPackages all in one suite: the first that every client of the
account can provide, one-time or last-resort (failing that, the listed
suite that the most clients can provide, so that a client without any
KeyPackage is left out as before); ``no_key_package`` only if no client has
any in the listed suites. Listed suites the server does not keep are
passed over (a newer client may know more); a list of none it keeps is
``invalid_field``.

Uploaded KeyPackages must decode and verify (:func:`.mls_frames.check_key_package`),
and must be the uploader's own: the leaf's signature key is the key the
client registered, and its credential is one this server issued to that
client (its account and client IDs and that key, under the server's
signature), and, once the client was certified by its account key, its
current version-2 credential (that account key and the stored certificate;
a stale version-1 credential is refused). Otherwise the whole upload is
refused with ``invalid_message`` and nothing of it is stored, so no one can
plant KeyPackages that others would take for someone else's.

**Contact queues** (:mod:`.contact_queues`, docs/metadata.md §1): a leaf's
delivery address names the uploader's contact queue, or the queue the
upload proves; an upload naming only the contact queue needs no queue
proof. The contact queue is the one the upload's ``contact_proof`` shows
(the signature of that queue's key over
:func:`~messenger.api.signing.contact_queue_possession` of the uploader),
or, for an app from before contact tokens, the one the client's sealed
``contact_box`` names. A claim hands out the leaf's address, and a Welcome
to a KeyPackage that names the contact queue goes there (the claim
evidence's target), so what the server stores to hand out ties the account
to the contact queue only, not to the queue the client reads its groups
from.

**Contact tokens** (docs/metadata.md §1, :mod:`messenger.api.contact_token`):
a KeyPackage names its account (the credential) and its contact queue (the
address), so sealed under the key file alone the operator could join the
two. A leaf of the new app carries its account's contact token (the
``contact_token`` extension); such a KeyPackage is stored as ``0x02 ‖
nonce ‖ AES-256-GCM ciphertext ‖ tag`` under ``HMAC-SHA256(k, "messenger
key package contact token v1\n" ‖ token)``, ``k`` derived from the at-rest
key for this alone, with the column and client ID as associated data: the
server never stores the token, and only a claim that presents it opens the
row (else ``contact_token_invalid``, and nothing changes). The first upload
whose leaves carry the token deletes, in its transaction, the client's
KeyPackages of the uploaded suites that the key file alone opens (sealed
``0x01`` or bare). KeyPackages without a token (apps from before, accounts
without an account key) are sealed under the key file alone, as before.

**Claims are limited** (in each process's memory, like :mod:`.ratelimit`):
a claiming account may make ``key_package_claims_per_hour`` claims
(``rate_limited`` beyond), and the one-time KeyPackages of a target account
are handed out at most ``one_time_key_packages_per_target_per_hour`` times
an hour whoever claims, and at most
``one_time_key_packages_per_claimer_per_target_per_hour`` times to one
claiming account; past either, a claim gets the last-resort KeyPackage, so
nobody can drain someone's one-time KeyPackages, one claimer cannot use up
the target's hourly share alone, and the target stays reachable. Claims of
one's own account are held only to the claimer's limit.

**Claims leave evidence** (:class:`ClaimEvidence`): each KeyPackage handed
out comes with a fresh random claim token, which only the claimer gets; the
server keeps an HMAC of the token (under a key derived from the server
secret) and the target queue and KeyPackageRef sealed under a key derived
from the token, with an expiry rounded up to the hour. A commit may add a
queue to a group only with a Welcome naming a KeyPackage claimed from that
queue's client and that claim's token (:meth:`ClaimEvidence.consume`,
called by the Delivery Service), so a sealed commit proves its adds
without naming its committer; a copy of the database does not tell who
claimed whose KeyPackage, nor exactly when.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import (
    CLAIM_TOKEN_BYTES,
    DEFAULT_CLAIM_SUITE,
    ClaimedKeyPackage,
    ClaimKeyPackagesRequest,
    ClaimKeyPackagesResponse,
    KeyPackageCount,
    SuiteKeyPackageCount,
    UploadKeyPackagesRequest,
    UploadKeyPackagesResponse,
)
from messenger.api.signing import contact_queue_possession, credential_tbs
from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.key_package import KeyPackage
from messenger.mls.messages import MLSMessage

from .at_rest import SealedColumn
from .authentication import Principal, verify_ed25519
from .contact_queues import ContactQueues
from .mls_frames import (
    KeyPackageLeaf,
    check_key_package,
    key_package_delivery,
    key_package_ref,
)
from .queue_addresses import QueueAddresses
from .queue_links import QueueLinks
from .ratelimit import RateLimiter
from .storage import Database, StorageError, Tx

__all__ = [
    "KEY_PACKAGE_SUITES",
    "ClaimEvidence",
    "KeyPackages",
    "Registered",
    "leaf_is_issued_to",
    "registered_identity",
    "token_sealed_column",
]

_HOUR_MS = 3600 * 1000
_CHUNK = 500
#: The first byte of a bare MLSMessage (its version, mls10 = 0x0001, RFC 9420 §6);
#: a sealed value starts with 0x01 (:mod:`.at_rest`).
_BARE_MLS: Final = b"\x00"
#: The first byte of a KeyPackage sealed under its account's contact token.
_TOKEN_SEALED: Final = b"\x02"
#: Derives, from the at-rest key, the key of :data:`_TOKEN_LABEL`'s HMAC.
_TOKEN_KEY_LABEL: Final = b"messenger key package contact token key v1"
_TOKEN_LABEL: Final = b"messenger key package contact token v1\n"

#: The cipher suites whose KeyPackages the server keeps (RFC 9420 §17.1;
#: docs/pq-suites.md): both sign with Ed25519, the key each client registers.
KEY_PACKAGE_SUITES: Final = (DEFAULT_CLAIM_SUITE, 0xF001)


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


@dataclass(frozen=True, slots=True)
class Registered:
    """What the server holds of a client's identity, to check its credentials against."""

    #: The client's registered signature key (empty if there is no such client).
    signature_key: bytes
    #: The account's key (docs/devices.md §1), if the account has one.
    account_key: bytes | None = None
    #: The account key's certificate of this client, if it was certified.
    certified_at: int | None = None
    device_certificate: bytes | None = None


def leaf_is_issued_to(
    credential_key: Ed25519PublicKey,
    principal: Principal,
    registered: Registered,
    leaf: KeyPackageLeaf,
) -> bool:
    """Whether ``leaf`` carries ``principal``'s registered key and its current credential.

    ``registered`` is what the database holds of the client; the credential
    must name the principal's account and client and that key, under the
    server's signature (``credential_key``). Once the client was certified
    (docs/devices.md §1) only its version-2 credential is current: it must
    name the account's key and carry the stored certificate, so a stale
    version-1 credential, or one with another account key or certificate,
    is refused.
    """
    cred = leaf.credential
    key = registered.signature_key
    if (
        cred is None
        or not key
        or leaf.signature_key != key
        or cred.signature_key != key
        or cred.account_id != principal.account_id
        or cred.client_id != principal.client_id
    ):
        return False
    if registered.device_certificate is None:
        if cred.account_key is not None:
            return False
    elif (
        cred.account_key is None
        or registered.account_key is None
        or cred.account_key != registered.account_key
        or cred.certified_at != registered.certified_at
        or cred.device_certificate != registered.device_certificate
    ):
        return False
    tbs = credential_tbs(
        cred.account_id, cred.client_id, cred.signature_key, cred.issued_at, cred.account_key
    )
    try:
        credential_key.verify(cred.signature, tbs)
    except InvalidSignature:
        return False
    return True


async def registered_identity(tx: Tx, client_id: str) -> Registered:
    """What the database holds of the client's identity (an empty key if it does not exist)."""
    row = await tx.fetchone(
        "SELECT c.signature_key, a.account_key, c.certified_at, c.device_certificate "
        "FROM clients c JOIN accounts a ON a.account_id = c.account_id WHERE c.client_id = ?",
        client_id,
    )
    if row is None:
        return Registered(b"")
    return Registered(
        bytes(row[0]),
        None if row[1] is None else bytes(row[1]),
        None if row[2] is None else int(row[2]),
        None if row[3] is None else bytes(row[3]),
    )


class _HourlyAllowance:
    """Up to ``per_hour`` a key per hour (a token bucket that refills over the hour).

    Unlike :class:`~.ratelimit.RateLimiter` a token can be given back, so
    that only what was actually handed out counts. Event-loop thread only.
    """

    _PRUNE_AT = 50_000

    def __init__(self, per_hour: int, clock: Callable[[], float]) -> None:
        self._max = float(per_hour)
        self._rate = per_hour / 3600.0
        self._clock = clock
        self._tokens: dict[str, tuple[float, float]] = {}

    def _current(self, key: str, now: float) -> float:
        tokens, updated = self._tokens.get(key, (self._max, now))
        return min(self._max, tokens + max(0.0, now - updated) * self._rate)

    def take(self, key: str) -> bool:
        now = self._clock()
        if len(self._tokens) >= self._PRUNE_AT:
            for k in [k for k in self._tokens if self._current(k, now) >= self._max]:
                del self._tokens[k]
        tokens = self._current(key, now)
        if tokens < 1.0:
            self._tokens[key] = (tokens, now)
            return False
        self._tokens[key] = (tokens - 1.0, now)
        return True

    def give_back(self, key: str) -> None:
        now = self._clock()
        self._tokens[key] = (min(self._max, self._current(key, now) + 1.0), now)


class ClaimEvidence:
    """What the server keeps of each KeyPackage it handed out, as evidence for an Add.

    Each KeyPackage handed out comes with a fresh random claim token, which
    only the claimer gets and the server never stores. The row is
    ``token_hash`` = HMAC(key, token), the lookup key, and ``target``: the
    target queue and the KeyPackageRef sealed with AES-256-GCM under a key
    derived from (key, token). A commit presents the tokens of the
    KeyPackages its Welcome adds, so it need not say who claimed them, and a
    sealed commit names no client (docs/metadata.md §3); checking a token
    costs one lookup and one decryption, whatever the size of the commit.
    ``key`` is derived from the server secret, which is not in the
    database, so a copy of it does not tell whose KeyPackage was claimed.
    """

    def __init__(self, key: bytes, ttl_seconds: int) -> None:
        self._key = key
        self._ttl_ms = ttl_seconds * 1000

    def token_hash(self, token: bytes) -> bytes:
        return hmac.new(self._key, b"claim-token\n" + token, hashlib.sha256).digest()

    def _target_key(self, token: bytes) -> AESGCM:
        return AESGCM(hmac.new(self._key, b"claim-target\n" + token, hashlib.sha256).digest())

    def seal_target(self, token: bytes, queue_id: str, ref: bytes) -> bytes:
        """The ``target`` of a claim: its queue and KeyPackageRef, for the token's holder."""
        queue = queue_id.encode("ascii")
        plain = len(queue).to_bytes(1, "big") + queue + ref
        nonce = secrets.token_bytes(12)
        return nonce + self._target_key(token).encrypt(nonce, plain, self.token_hash(token))

    def open_target(self, token: bytes, target: bytes) -> tuple[str, bytes] | None:
        """``(queue ID, KeyPackageRef)`` of a claim's ``target``; None if it does not open."""
        try:
            plain = self._target_key(token).decrypt(
                target[:12], target[12:], self.token_hash(token)
            )
        except (InvalidTag, ValueError):
            return None
        size = plain[0] if plain else 0
        return plain[1 : 1 + size].decode("ascii", "replace"), plain[1 + size :]

    @staticmethod
    def new_token() -> bytes:
        """A fresh claim token (ClaimedKeyPackage.claim_token)."""
        return secrets.token_bytes(CLAIM_TOKEN_BYTES)

    def expires_at(self, now_ms: int) -> int:
        """``now + ttl``, rounded up to the next full hour (a coarse time)."""
        return ((now_ms + self._ttl_ms) // _HOUR_MS + 1) * _HOUR_MS

    async def record(
        self, tx: Tx, handed_out: Sequence[tuple[bytes, str, bytes]], now_ms: int
    ) -> None:
        """Remember KeyPackages handed out as ``(claim token, target queue, KeyPackageRef)``."""
        expires = self.expires_at(now_ms)
        await tx.executemany(
            "INSERT INTO claim_evidence (token_hash, target, expires_at) VALUES (?, ?, ?)",
            [
                (self.token_hash(token), self.seal_target(token, queue, ref), expires)
                for token, queue, ref in handed_out
            ],
        )

    async def consume(
        self,
        tx: Tx,
        tokens: Sequence[bytes],
        queues: Sequence[str],
        refs: Sequence[bytes],
        now_ms: int,
    ) -> list[str]:
        """Use up the evidence that the holder of ``tokens`` may add ``queues``.

        Each queue needs the unexpired claim of one of ``tokens`` whose
        target is that queue and one of ``refs`` (the Welcome's
        KeyPackageRefs). Returns the queues without one (and consumes nothing
        then); one claim per queue is used up, the others stay.
        """
        if not queues:
            return []
        wanted, known = set(queues), set(refs)
        by_hash = {self.token_hash(t): t for t in tokens}
        hashes = sorted(by_hash)
        chosen: dict[str, bytes] = {}
        for i in range(0, len(hashes), _CHUNK):
            chunk = hashes[i : i + _CHUNK]
            rows = await tx.fetchall(
                "SELECT token_hash, target FROM claim_evidence "  # noqa: S608
                f"WHERE expires_at > ? AND token_hash IN ({_placeholders(len(chunk))})",
                now_ms,
                *chunk,
            )
            for token_hash, target in sorted(rows, key=lambda r: bytes(r[0])):
                opened = self.open_target(by_hash[bytes(token_hash)], bytes(target))
                if opened is not None and opened[0] in wanted and opened[1] in known:
                    chosen.setdefault(opened[0], bytes(token_hash))
        missing = [q for q in queues if q not in chosen]
        if missing:
            return missing
        used = sorted(chosen.values())
        for i in range(0, len(used), _CHUNK):
            chunk = used[i : i + _CHUNK]
            await tx.execute(
                f"DELETE FROM claim_evidence WHERE token_hash IN ({_placeholders(len(chunk))})",  # noqa: S608
                *chunk,
            )
        return []


async def _counts(tx: Tx, client_id: str) -> dict[int, SuiteKeyPackageCount]:
    """The client's one-time KeyPackages and last-resort flag, per kept suite."""
    rows = await tx.fetchall(
        "SELECT cipher_suite, COUNT(*), COALESCE(SUM(last_resort), 0) FROM key_packages "
        "WHERE client_id = ? GROUP BY cipher_suite",
        client_id,
    )
    found = {int(r[0]): (int(r[1]), int(r[2])) for r in rows}
    counts: dict[int, SuiteKeyPackageCount] = {}
    for suite in KEY_PACKAGE_SUITES:
        total, last_resort = found.get(suite, (0, 0))
        counts[suite] = SuiteKeyPackageCount(suite, total - last_resort, last_resort > 0)
    return counts


def _count_of(
    counts: dict[int, SuiteKeyPackageCount],
) -> tuple[int, bool, tuple[SuiteKeyPackageCount, ...]]:
    """``available`` and ``last_resort`` of suite 1 (for clients from before suites), and all."""
    first = counts[DEFAULT_CLAIM_SUITE]
    return first.available, first.last_resort, tuple(counts.values())


def _choose_suite(
    wanted: Sequence[int], clients: Sequence[str], has: set[tuple[str, int]]
) -> int | None:
    """The first of ``wanted`` that every one of ``clients`` has a KeyPackage in;
    else the one most of them have (the first of equals); None if none has any."""
    best, best_n = None, 0
    for suite in wanted:
        n = sum((client, suite) in has for client in clients)
        if n == len(clients) and n:
            return suite
        if n > best_n:
            best, best_n = suite, n
    return best


def token_sealed_column(at_rest_key: bytes, token: bytes) -> SealedColumn:
    """KeyPackages sealed under the contact ``token`` (docs/metadata.md §1):
    ``0x02 ‖ nonce ‖ ciphertext ‖ tag`` under ``HMAC-SHA256(k, "messenger key
    package contact token v1\n" ‖ token)``, ``k`` derived from the at-rest key
    for this alone, bound to the column and the client as
    :class:`~.at_rest.SealedColumn` binds them."""
    k = hmac.new(at_rest_key, _TOKEN_KEY_LABEL, hashlib.sha256).digest()
    key = hmac.new(k, _TOKEN_LABEL + token, hashlib.sha256).digest()
    return SealedColumn(key, "key_packages.data", version=_TOKEN_SEALED)


def _one_token(leaves: Sequence[tuple[str, dict[str, int], KeyPackageLeaf]]) -> bytes | None:
    """The contact token every leaf of an upload carries (None: none does);
    ``invalid_message`` if some carry one and others none, or another one.

    One account has one token (docs/metadata.md §1): a KeyPackage of an upload
    whose others are sealed under the token must not be left for the key
    file alone to open, nor be sealed under a token its account's claimers
    cannot know.
    """
    tokens = [leaf.contact_token for _where, _details, leaf in leaves]
    first = tokens[0] if tokens else None
    for (where, details, _leaf), token in zip(leaves, tokens, strict=True):
        same = (
            token is None
            if first is None
            else token is not None and hmac.compare_digest(token, first)
        )
        if not same:
            raise ApiError(
                ErrorCode.INVALID_MESSAGE,
                f"{where}: the KeyPackages of an upload carry one contact token, or none do",
                details,
            )
    return first


def _kept_suite(data: bytes) -> int:
    """The suite of a verified KeyPackage; ``invalid_message`` unless the server keeps
    it and the KeyPackage is usable in it.

    RFC 9420 §10.1: its init key and its leaf's encryption key must be keys
    of the suite's KEM (an X25519 key sent as a hybrid one would make every
    Welcome to it fail), and its leaf must list the suite among its
    capabilities (§7.2), or no group in that suite could add it.
    """
    body = MLSMessage.from_bytes(data).body
    assert isinstance(body, KeyPackage)
    suite_id = int(body.cipher_suite)
    if suite_id not in KEY_PACKAGE_SUITES:
        raise ApiError(
            ErrorCode.INVALID_MESSAGE,
            f"this server keeps no KeyPackages in cipher suite 0x{suite_id:04X}",
        )
    hpke = get_cipher_suite(suite_id).hpke
    leaf = body.leaf_node
    try:
        usable = (
            suite_id in leaf.capabilities.cipher_suites
            and hpke.is_valid_public_key(bytes(body.init_key))
            and hpke.is_valid_public_key(bytes(leaf.encryption_key))
        )
    except Exception:  # hostile keys: the uploader's fault
        usable = False
    if not usable:
        raise ApiError(
            ErrorCode.INVALID_MESSAGE,
            f"the KeyPackage's keys or capabilities do not match its cipher suite 0x{suite_id:04X}",
        )
    return suite_id


class KeyPackages:
    """Upload, count and claim KeyPackages."""

    def __init__(
        self,
        db: Database,
        max_per_client: int,
        credential_public_key: bytes,
        *,
        evidence: ClaimEvidence,
        queue_links: QueueLinks,
        contact_queues: ContactQueues,
        addresses: QueueAddresses,
        at_rest_key: bytes,
        claims_per_hour: int,
        one_time_per_target_per_hour: int,
        one_time_per_pair_per_hour: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._queue_links = queue_links
        self._contact_queues = contact_queues
        self._addresses = addresses
        self._sealed = SealedColumn(at_rest_key, "key_packages.data")
        self._at_rest_key = at_rest_key
        self._max = max_per_client
        self._credential_key = Ed25519PublicKey.from_public_bytes(credential_public_key)
        self.evidence = evidence
        self._clock = clock
        self._claimer_limit = RateLimiter.per_hour(
            "key package claims by this account", claims_per_hour, clock
        )
        self._target_limit = _HourlyAllowance(one_time_per_target_per_hour, clock)
        self._pair_limit = _HourlyAllowance(
            one_time_per_pair_per_hour or one_time_per_target_per_hour, clock
        )

    def _is_own(self, principal: Principal, registered: Registered, leaf: KeyPackageLeaf) -> bool:
        """Whether ``leaf`` carries the uploader's key and its server-issued credential."""
        return leaf_is_issued_to(self._credential_key, principal, registered, leaf)

    async def upload(
        self, principal: Principal, req: UploadKeyPackagesRequest
    ) -> UploadKeyPackagesResponse:
        """Store new one-time KeyPackages and replace the last-resort one if given.

        Each leaf's delivery address must name the uploader's contact queue
        (:mod:`.contact_queues`) or the queue the request proves; an upload
        that proves no queue is taken when every leaf names the contact queue
        (``auth_missing`` otherwise, as for any route that needs the queue).
        The contact queue is the one the client's sealed ``contact_box``
        names (apps from before contact tokens), or one whose key signed
        ``req.contact_proof`` (:func:`~messenger.api.signing.contact_queue_possession`
        of the uploader and that key); a ``contact_proof`` that verifies with
        the key of no queue the leaves name is ``invalid_field``. An upload
        with a leaf naming the contact queue first drops the client's stored
        KeyPackages that name another queue (:meth:`keep_naming`).

        Leaves carry their account's contact token all alike or none does
        (``invalid_message``). With the token, each KeyPackage is sealed under
        it, and the client's stored KeyPackages of the uploaded suites that the
        key file alone opens go in the same transaction (docs/metadata.md §1).
        """
        leaves: list[tuple[str, dict[str, int], KeyPackageLeaf]] = []
        suites: list[int] = []
        for index, data in enumerate(req.key_packages):
            try:
                leaves.append((f"key_packages[{index}]", {"index": index}, check_key_package(data)))
                suites.append(_kept_suite(data))
            except ApiError as exc:
                raise ApiError(
                    exc.code, f"key_packages[{index}]: {exc.message}", {"index": index}
                ) from None
        last_resort_suite = 0
        if req.last_resort is not None:
            try:
                leaves.append(("last_resort", {}, check_key_package(req.last_resort)))
                last_resort_suite = _kept_suite(req.last_resort)
            except ApiError as exc:
                raise ApiError(exc.code, f"last_resort: {exc.message}") from None
        token = _one_token(leaves)
        uploaded = {*suites, *([last_resort_suite] if req.last_resort else [])}
        client_id = principal.client_id
        named = {
            where: self._addresses.resolve(leaf.delivery)
            for where, _details, leaf in leaves
            if leaf.delivery is not None
        }

        async def op(tx: Tx) -> UploadKeyPackagesResponse:
            registered = await registered_identity(tx, client_id)
            contact = await self._contact_queues.of_client(tx, client_id)
            proven = None
            if req.contact_proof is not None:
                proven = await self._proven_contact(tx, client_id, req.contact_proof, named)
            for where, details, leaf in leaves:
                if not self._is_own(principal, registered, leaf):
                    raise ApiError(
                        ErrorCode.INVALID_MESSAGE,
                        f"{where}: the KeyPackage is not bound to this client's "
                        "signature key and credential",
                        details,
                    )
                if not self._delivers_to(leaf.delivery, principal, (contact, proven)):
                    raise ApiError(
                        ErrorCode.INVALID_MESSAGE,
                        f"{where}: the KeyPackage's delivery address is not this client's "
                        "queue (ask GET /v1/queue/address for one)",
                        details,
                    )
            shown = set(named.values())
            kept = next((q for q in (contact, proven) if q is not None and q in shown), None)
            if kept is not None:
                # The client has moved its KeyPackages to its contact queue: the
                # ones of these suites it stored before, naming the queue it reads
                # its groups from, go in the same transaction (so a claim never
                # finds none; the other suites' go with their own upload).
                await self.keep_naming(tx, client_id, kept, uploaded, token)
            if token is not None:
                # docs/metadata.md §1: no KeyPackage of this client that the key
                # file alone opens is left in these suites; the new ones replace them.
                await self._drop_key_file_sealed(tx, client_id, uploaded)
            counts = await _counts(tx, client_id)
            for suite in KEY_PACKAGE_SUITES:
                available = counts[suite].available
                if available + suites.count(suite) > self._max:
                    raise ApiError(
                        ErrorCode.LIMIT_EXCEEDED,
                        f"a client may keep at most {self._max} KeyPackages on the server "
                        f"in each cipher suite",
                        {"available": available, "cipher_suite": suite},
                    )
            await tx.executemany(
                "INSERT INTO key_packages (client_id, cipher_suite, last_resort, data) "
                "VALUES (?, ?, 0, ?)",
                [
                    (client_id, suite, self._seal(client_id, data, token))
                    for suite, data in zip(suites, req.key_packages, strict=True)
                ],
            )
            if req.last_resort is not None:
                # One last-resort KeyPackage per client and suite.
                await tx.execute(
                    "DELETE FROM key_packages "
                    "WHERE client_id = ? AND cipher_suite = ? AND last_resort = 1",
                    client_id,
                    last_resort_suite,
                )
                await tx.execute(
                    "INSERT INTO key_packages (client_id, cipher_suite, last_resort, data) "
                    "VALUES (?, ?, 1, ?)",
                    client_id,
                    last_resort_suite,
                    self._seal(client_id, req.last_resort, token),
                )
            return UploadKeyPackagesResponse(*_count_of(await _counts(tx, client_id)))

        return await self._db.transaction(op)

    async def _proven_contact(
        self, tx: Tx, client_id: str, proof: bytes, named: dict[str, str | None]
    ) -> str:
        """The queue, among those the leaves name, whose key signed ``proof`` over
        :func:`~messenger.api.signing.contact_queue_possession` of ``client_id``
        and that key (the statement of ``PUT /v1/queue/contact``);
        ``invalid_field`` if there is none."""
        for queue_id in sorted({q for q in named.values() if q is not None}):
            row = await tx.fetchone("SELECT auth_key FROM queues WHERE queue_id = ?", queue_id)
            if row is None or row[0] is None:
                continue
            key = bytes(row[0])
            if verify_ed25519(key, proof, contact_queue_possession(client_id, key)):
                return queue_id
        raise ApiError.invalid_field(
            "contact_proof", "does not verify with the key of any queue these KeyPackages name"
        )

    async def _drop_key_file_sealed(self, tx: Tx, client_id: str, suites: Collection[int]) -> int:
        """Delete ``client_id``'s KeyPackages (one-time and last resort) in ``suites``
        that the key file alone opens (sealed ``0x01``, or bare from before
        migration 11); how many."""
        if not suites:
            return 0
        first = "substr(data, 1, 1)" if tx.dialect == "sqlite" else "substring(data from 1 for 1)"
        ordered = sorted(suites)
        return await tx.execute(
            f"DELETE FROM key_packages WHERE client_id = ? AND {first} <> ? "  # noqa: S608
            f"AND cipher_suite IN ({_placeholders(len(ordered))})",
            client_id,
            _TOKEN_SEALED,
            *ordered,
        )

    def _delivers_to(
        self,
        delivery: str | None,
        principal: Principal,
        contacts: tuple[str | None, str | None],
    ) -> bool:
        """Whether a leaf's delivery address (None: none) names one of the
        uploader's ``contacts`` (its sealed ``contact_box``'s queue, the queue
        its ``contact_proof`` shows) or the queue ``principal`` proves
        (``auth_missing`` if it names none of them and the request proves none).

        A leaf without the extension is let through with a proof: the server
        never reads it, and clients refuse such a KeyPackage as a member's.
        """
        named = None if delivery is None else self._addresses.resolve(delivery)
        if named is not None and named in contacts:
            return True
        queue_id = principal.queue_id  # auth_missing without a proof
        return delivery is None or named == queue_id

    def _target(
        self,
        key_package: bytes,
        queue_id: str | None,
        contact: str | None,
        *,
        killable: bool = False,
    ) -> str | None:
        """The queue a Welcome to ``key_package`` goes to: its client's contact
        queue ``contact`` (from the sealed ``contact_box``) if the leaf's
        delivery address names it; the queue the leaf's address names if the
        client is ``killable`` (its contact queue has a kill hash and no row
        names it, docs/metadata.md §1); else its client's queue, from the
        client's row, or, once the queue has a key of its own and no row names
        it, from the leaf's delivery address. A leaf's address was checked to
        be the uploader's contact queue or queue when the KeyPackage was
        stored. None if no queue is found."""
        if contact is None and queue_id is not None and not killable:
            return queue_id  # no need to read the leaf
        delivery = key_package_delivery(key_package)
        named = None if delivery is None else self._addresses.resolve(delivery)
        if contact is not None and named == contact:
            return contact
        if killable and named is not None:
            return named
        if queue_id is not None:
            return queue_id
        return named

    def _shown(self, key_package: bytes, queue_id: str) -> str:
        """What a claim hands out as the queue of ``key_package``: its leaf's address.

        The claimer learns no queue ID (:mod:`.queue_addresses`). A KeyPackage
        without an address (or, uploaded before the check, with someone else's)
        is handed out with its plain queue ID, as before, and the claimer's
        check that the leaf names that queue refuses it.
        """
        delivery = key_package_delivery(key_package)
        if delivery is not None and self._addresses.resolve(delivery) == queue_id:
            return delivery
        return queue_id

    def _seal(self, client_id: str, key_package: bytes, token: bytes | None = None) -> bytes:
        """What ``key_packages.data`` holds: the KeyPackage sealed at rest (:mod:`.at_rest`).

        A KeyPackage's leaf names its client, its account and its delivery
        queue (the ``delivery_queue`` extension), so a copy of the database
        must not show it; the server hands it out opened. With its account's
        contact ``token`` it is sealed under the token (:meth:`_token_column`),
        which the server does not keep, so the key file alone does not open it
        (docs/metadata.md §1).
        """
        column = self._sealed if token is None else self._token_column(token)
        return column.seal(client_id.encode("ascii"), key_package)

    def _token_column(self, token: bytes) -> SealedColumn:
        return token_sealed_column(self._at_rest_key, token)

    async def drop_unreachable(self, tx: Tx, client_id: str) -> int:
        """Delete ``client_id``'s KeyPackages whose leaf names no delivery address;
        how many. Run when its queue gets a key of its own (:mod:`.queue_links`):
        no row names the queue from then on, so a claim could not find where a
        Welcome to one of them goes (:meth:`_target`), and would skip it. The
        client uploads new ones (with its address) once the key is given."""
        return await self._drop(tx, client_id, lambda delivery: delivery is not None)

    async def keep_naming(
        self,
        tx: Tx,
        client_id: str,
        queue_id: str,
        suites: Collection[int],
        token: bytes | None = None,
    ) -> int:
        """Delete ``client_id``'s KeyPackages (one-time and last resort) in ``suites``
        whose leaf's delivery address does not name ``queue_id``; how many. Run when the
        client uploads KeyPackages naming its contact queue (:mod:`.contact_queues`),
        in that upload's transaction: from then on no stored KeyPackage names
        the queue it reads its groups from, so what the server keeps to hand
        out ties the account to the contact queue only (docs/metadata.md §1),
        and a claim finds the new ones where the old ones were. Rows sealed
        under the contact token are judged with the upload's ``token``: a new
        account's first KeyPackages, uploaded before it had its contact
        queue, carry the token and name its own queue."""
        return await self._drop(
            tx,
            client_id,
            lambda delivery: delivery is not None and self._addresses.resolve(delivery) == queue_id,
            suites,
            token,
        )

    async def _drop(
        self,
        tx: Tx,
        client_id: str,
        keep: Callable[[str | None], bool],
        suites: Collection[int] | None = None,
        token: bytes | None = None,
    ) -> int:
        """Delete ``client_id``'s KeyPackages (of ``suites``; None: all) whose leaf's
        delivery address (None: none) ``keep`` refuses; how many.

        A row sealed under the contact token is judged only with ``token``
        (None: it stays); one that ``token`` does not open was sealed under
        a token the account no longer has, so no claimer can open it: it goes.
        """
        rows = await tx.fetchall(
            "SELECT kp_id, cipher_suite, data FROM key_packages WHERE client_id = ?", client_id
        )
        gone: list[tuple[int]] = []
        for kp_id, suite, data in rows:
            if suites is not None and int(suite) not in suites:
                continue
            if bytes(data)[:1] == _TOKEN_SEALED:
                if token is None:
                    continue  # its address was checked when it was uploaded
                try:
                    opened = self._opened(client_id, data, token)
                except ApiError:  # sealed under a token the account no longer has
                    gone.append((int(kp_id),))
                    continue
            else:
                opened = self._opened(client_id, data)
            if not keep(key_package_delivery(opened)):
                gone.append((int(kp_id),))
        await tx.executemany("DELETE FROM key_packages WHERE kp_id = ?", gone)
        return len(gone)

    def _opened(
        self, client_id: str, stored: bytes | memoryview, token: bytes | None = None
    ) -> bytes:
        """The KeyPackage of a stored row (a row from before migration 11 holds it bare).

        A row sealed under its account's contact token opens with ``token``
        alone: ``contact_token_invalid`` without it or with another.
        """
        data = bytes(stored)
        if data[:1] == _BARE_MLS:
            return data
        if data[:1] != _TOKEN_SEALED:
            return self._sealed.open(client_id.encode("ascii"), data)
        if token is None:
            raise ApiError(
                ErrorCode.CONTACT_TOKEN_INVALID,
                "this account's KeyPackages are claimed with its contact token, which an "
                "invite link, its handle or a group you share gives",
            )
        try:
            return self._token_column(token).open(client_id.encode("ascii"), data)
        except StorageError:
            raise ApiError(
                ErrorCode.CONTACT_TOKEN_INVALID,
                "this is not the account's contact token: ask for a new invite link, "
                "or look its handle up again",
            ) from None

    async def adopt_legacy(self, tx: Tx) -> int:
        """Seal the KeyPackages stored before server migration 11; how many were sealed.

        In batches of :data:`_CHUNK` rows, so that a large server's
        KeyPackages are never all in memory at once.
        """
        first = "substr(data, 1, 1)" if tx.dialect == "sqlite" else "substring(data from 1 for 1)"
        sealed, after = 0, -1
        while True:
            rows = await tx.fetchall(
                f"SELECT kp_id, client_id, data FROM key_packages "  # noqa: S608
                f"WHERE {first} = ? AND kp_id > ? ORDER BY kp_id LIMIT ?",
                _BARE_MLS,
                after,
                _CHUNK,
            )
            if not rows:
                return sealed
            await tx.executemany(
                "UPDATE key_packages SET data = ? WHERE kp_id = ?",
                [(self._seal(str(c), bytes(d)), int(k)) for k, c, d in rows],
            )
            sealed += len(rows)
            after = int(rows[-1][0])

    async def count(self, principal: Principal) -> KeyPackageCount:
        """The signing client's unclaimed one-time KeyPackages."""

        async def op(tx: Tx) -> KeyPackageCount:
            return KeyPackageCount(*_count_of(await _counts(tx, principal.client_id)))

        return await self._db.read(op)

    async def claim(
        self, principal: Principal, req: ClaimKeyPackagesRequest
    ) -> ClaimKeyPackagesResponse:
        """One KeyPackage for each client of ``req.account_id``, claimed by ``principal``,
        all in the first of ``req.suites`` every client can provide (module docstring).

        ``rate_limited`` (429) past the claimer's limit. Past the target's
        hourly limit of one-time KeyPackages, or this claimer's share of it,
        each client's last-resort KeyPackage is handed out instead (a claim
        that hands out no one-time KeyPackage does not count). Every
        KeyPackage handed out is recorded as :class:`ClaimEvidence` for
        ``principal``'s client.

        A claim for the claimer's own account (adding its other devices to a
        group, docs/devices.md §2) returns one KeyPackage per *other* client,
        never the claimer's own, and is not held to the one-time limits,
        which protect an account from others draining it.

        A KeyPackage sealed under its account's contact token opens only with
        ``req.contact_token`` (docs/metadata.md §1): without it, or with
        another, ``contact_token_invalid`` (403), raised in the transaction, so
        nothing changes (no KeyPackage used, no evidence, the hourly allowances
        given back). Other KeyPackages are handed out whatever token is given.
        """
        account_id = req.account_id
        wanted = [suite for suite in req.wanted if suite in KEY_PACKAGE_SUITES]
        if not wanted:
            raise ApiError.invalid_field(
                "suites", "this server keeps KeyPackages in none of these cipher suites"
            )
        self._claimer_limit.hit(principal.account_id)
        own = account_id == principal.account_id
        pair = f"{principal.account_id}\n{account_id}"
        one_time = own or self._pair_limit.take(pair)
        if one_time and not own and not self._target_limit.take(account_id):
            self._pair_limit.give_back(pair)
            one_time = False
        now_ms = int(self._clock() * 1000)

        async def op(tx: Tx) -> ClaimKeyPackagesResponse:
            clients = await self._queue_links.of_account(tx, account_id)
            if not clients:
                raise ApiError(ErrorCode.UNKNOWN_ACCOUNT, "no such account")
            contacts = await self._contact_queues.of_account(tx, account_id)
            killable = await self._contact_queues.killable_of_account(tx, account_id)
            targets = [(c, q) for c, q in clients if c != principal.client_id]
            # What each client could hand out now: one-time KeyPackages only while
            # this claim may take them.
            kept = await tx.fetchall(
                "SELECT DISTINCT k.client_id, k.cipher_suite FROM key_packages k "
                "JOIN clients c ON c.client_id = k.client_id "
                "WHERE c.account_id = ? AND (k.last_resort = 1 OR ? = 1)",
                account_id,
                int(one_time),
            )
            has = {(str(r[0]), int(r[1])) for r in kept}
            suite = _choose_suite(wanted, [c for c, _ in targets], has)
            if suite is None:
                raise ApiError(ErrorCode.NO_KEY_PACKAGE, "the account has no KeyPackage left")
            claimed: list[ClaimedKeyPackage] = []
            targets_of: dict[bytes, str] = {}  # claim token -> the queue it may add
            for client_id, queue_id in targets:
                row = None
                if one_time:
                    row = await tx.fetchone(
                        "SELECT kp_id, data FROM key_packages "  # noqa: S608
                        "WHERE client_id = ? AND cipher_suite = ? AND last_resort = 0 "
                        "ORDER BY kp_id LIMIT 1" + tx.for_update_skip_locked,
                        client_id,
                        suite,
                    )
                if row is not None:
                    await tx.execute("DELETE FROM key_packages WHERE kp_id = ?", row[0])
                    # contact_token_invalid rolls the DELETE back: nothing changes.
                    data = self._opened(client_id, row[1], req.contact_token)
                    target = self._target(
                        data,
                        queue_id,
                        contacts.get(client_id),
                        killable=client_id in killable,
                    )
                    if target is not None:  # else a KeyPackage no Welcome could reach
                        token = self.evidence.new_token()
                        claimed.append(
                            ClaimedKeyPackage(
                                client_id, self._shown(data, target), data, False, token
                            )
                        )
                        targets_of[token] = target
                        continue
                row = await tx.fetchone(
                    "SELECT data FROM key_packages "
                    "WHERE client_id = ? AND cipher_suite = ? AND last_resort = 1",
                    client_id,
                    suite,
                )
                last = None if row is None else self._opened(client_id, row[0], req.contact_token)
                target = (
                    None
                    if last is None
                    else self._target(
                        last, queue_id, contacts.get(client_id), killable=client_id in killable
                    )
                )
                if last is not None and target is not None:
                    token = self.evidence.new_token()
                    claimed.append(
                        ClaimedKeyPackage(client_id, self._shown(last, target), last, True, token)
                    )
                    targets_of[token] = target
            if not claimed:
                raise ApiError(ErrorCode.NO_KEY_PACKAGE, "the account has no KeyPackage left")
            await self.evidence.record(
                tx,
                [
                    (c.claim_token, targets_of[c.claim_token], key_package_ref(c.key_package))
                    for c in claimed
                    if c.claim_token is not None  # every one has its token
                ],
                now_ms,
            )
            return ClaimKeyPackagesResponse(tuple(claimed), suite)

        handed_out = False
        try:
            response = await self._db.transaction(op)
            handed_out = any(not c.last_resort for c in response.key_packages)
            return response
        finally:
            if one_time and not own and not handed_out:  # only one-time KeyPackages count
                self._pair_limit.give_back(pair)
                self._target_limit.give_back(account_id)
