"""Everything one server process holds, wired together, with start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from . import queue_numbers
from .authentication import RequestAuthenticator
from .blobs import BLOB_DIR, Blobs
from .config import ServerConfig
from .contact_queues import ContactQueues
from .delivery import DeliveryService
from .devices import DEVICE_CHANNEL, Devices
from .group_epochs import GroupEpochs
from .handles import Handles
from .key_packages import ClaimEvidence, KeyPackages
from .links import Links
from .logs import log_event
from .member_sets import MemberSets
from .metrics import Metrics
from .payload_refs import PayloadRefs
from .push import CHANNEL, Hub
from .queue_addresses import QueueAddresses
from .queue_links import QueueLinks
from .ratelimit import RateLimiter
from .registration import Registration
from .rejoin_boxes import RejoinBoxes, RejoinBoxLimits
from .server_keys import ServerKeys, load_or_create_master_secret, make_private_dir
from .storage import Database, Row, StorageError, Tx, migrate, open_database

__all__ = ["VERSION", "ServerState"]

#: The server migration that seals client queues and GroupInfos at rest.
_SEALED_AT_REST_VERSION = 11
#: The server migration that seals group member sets at rest.
_SEALED_MEMBER_SETS_VERSION = 13
#: The server migration after which every stored message is sealed.
_SEALED_PAYLOADS_VERSION = 14
#: The server migration after which queue entries refer to payloads sealed.
_SEALED_REFS_VERSION = 15
#: The server migration that adds the start's maintenance tasks.
_MAINTENANCE_VERSION = 16
#: The server migration that seals group epochs at rest.
_SEALED_EPOCHS_VERSION = 17
#: The server migration that seals payloads' counts of holders.
_SEALED_COUNTS_VERSION = 18
#: The server migration that seals group state under its members' keys
#: (``mls_groups.state_keys``): the key file does not open those rows' boxes.
_MEMBER_KEYS_VERSION = 20
#: The server migration that adds contact queues (``clients.contact_box``).
_CONTACT_QUEUES_VERSION = 23
#: The tables that held values in the clear before they were sealed or moved
#: (server migrations 10 to 15, 17 and 18): what the "compact" task rewrites.
_COMPACTED_TABLES = (
    "clients",
    "mls_groups",
    "group_members",
    "key_packages",
    "payloads",
    "queue_entries",
    "blob_recipients",
)

#: The server's version, reported by the OpenAPI description.
VERSION = "0.1.0"

_log = logging.getLogger("messenger.server")


async def _open_one(tx: Tx, sql: str, open_row: Callable[[Row], object]) -> None:
    """Open the sealed value of the one row ``sql`` finds, if any.

    A :class:`StorageError` if it was sealed under another secret key file:
    the start refuses such a database at once, not request by request.
    """
    row = await tx.fetchone(sql)
    if row is not None:
        open_row(row)


class ServerState:
    """The services of one process; :meth:`start` before use, :meth:`stop` after."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        clock: Callable[[], float] = time.time,
        database: Database | None = None,
        run_sweeper: bool = True,
    ) -> None:
        self.config = config
        self.clock = clock
        self.db = database or open_database(config.effective_database_url, config.db_pool_size)
        self.metrics = Metrics()
        self.hub = Hub()
        if not config.database_url or not config.secret_key_file:
            # The data directory holds the database or the master secret: owner only.
            make_private_dir(config.data_dir)
        self.keys = ServerKeys.derive(load_or_create_master_secret(config.secret_key_path))
        self.queue_links = QueueLinks(self.keys.at_rest_key)
        self.contact_queues = ContactQueues(self.keys.at_rest_key, self.queue_links)
        self.member_sets = MemberSets(self.keys.at_rest_key)
        self.payload_refs = PayloadRefs(self.keys.at_rest_key)
        self.group_epochs = GroupEpochs(self.keys.at_rest_key)
        self.addresses = QueueAddresses(self.keys.address_key)
        self.auth = RequestAuthenticator(
            self.db,
            config.timestamp_window_seconds,
            clock,
            self.metrics,
            nonce_key=self.keys.request_nonce_key,
            queue_links=self.queue_links,
            removed_key=self.keys.removed_client_key,
        )
        self.handles = Handles(
            self.db,
            self.keys.handle_pepper,
            lookups_per_account_per_minute=config.lookups_per_account_per_minute,
            lookups_per_ip_per_minute=config.lookups_per_ip_per_minute,
            clock=clock,
        )
        self.registration = Registration(
            self.db, config, self.keys, self.handles, clock, self.queue_links
        )
        self.key_packages = KeyPackages(
            self.db,
            config.max_key_packages_per_client,
            self.keys.credential_public_key,
            evidence=ClaimEvidence(self.keys.claim_evidence_key, config.claim_evidence_ttl_seconds),
            queue_links=self.queue_links,
            contact_queues=self.contact_queues,
            addresses=self.addresses,
            at_rest_key=self.keys.at_rest_key,
            claims_per_hour=config.key_package_claims_per_hour,
            one_time_per_target_per_hour=config.one_time_key_packages_per_target_per_hour,
            one_time_per_pair_per_hour=(
                config.one_time_key_packages_per_claimer_per_target_per_hour
            ),
            clock=clock,
        )
        self.delivery = DeliveryService(
            self.db,
            self.hub,
            self.metrics,
            clock,
            retention_seconds=config.retention_seconds,
            max_queue_length=config.max_queue_length,
            claims=self.key_packages.evidence,
            credential_public_key=self.keys.credential_public_key,
            sender_messages_per_minute=config.sender_messages_per_queue_per_minute,
            sender_bytes_per_minute=config.sender_bytes_per_queue_per_minute,
            queue_links=self.queue_links,
            addresses=self.addresses,
            member_sets=self.member_sets,
            payload_refs=self.payload_refs,
            group_epochs=self.group_epochs,
            at_rest_key=self.keys.at_rest_key,
            removed_key=self.keys.removed_client_key,
        )
        self.links = Links(self.db, self.hub, clock)
        self.rejoin_boxes = RejoinBoxes(
            self.db,
            clock,
            RejoinBoxLimits(
                new_per_hour=config.new_rejoin_boxes_per_account_per_hour,
                burst=config.new_rejoin_boxes_burst,
                max_boxes=config.max_rejoin_boxes,
                ttl_seconds=config.rejoin_box_ttl_seconds,
            ),
        )
        self.blobs = Blobs(
            self.db,
            self.metrics,
            clock,
            config.data_dir / BLOB_DIR,
            self.keys.blob_key,
            self.member_sets,
            max_blob_bytes=config.max_blob_bytes,
            quota_bytes=config.blob_quota_bytes,
            reserve_bytes=config.blob_reserve_bytes,
            upload_ttl_seconds=config.blob_upload_ttl_seconds,
            retention_seconds=config.blob_retention_seconds,
        )
        self.devices = Devices(
            self.db,
            self.hub,
            removed_key=self.keys.removed_client_key,
            queue_links=self.queue_links,
            contact_queues=self.contact_queues,
            payload_refs=self.payload_refs,
            links=self.links,
        )
        self.ip_limiter = RateLimiter.per_minute("address", config.ip_requests_per_minute, clock)
        self.account_limiter = RateLimiter.per_minute(
            "account", config.account_requests_per_minute, clock
        )
        self.link_limiter = RateLimiter.per_minute(
            "link", config.link_requests_per_ip_per_minute, clock
        )
        self.registration_limiter = RateLimiter.per_hour(
            "registration", config.registrations_per_ip_per_hour, clock
        )
        self._run_sweeper = run_sweeper
        self._sweeper: asyncio.Task[None] | None = None
        self.started = False

    async def start(self) -> None:
        """Connect, migrate, listen for other processes, start the retention sweeper."""
        await self.db.connect()
        try:
            version = await migrate(self.db, int(self.clock() * 1000))
            if version >= _SEALED_AT_REST_VERSION:
                await self.db.transaction(
                    lambda tx: self._seal_legacy_rows(
                        tx,
                        member_sets=version >= _SEALED_MEMBER_SETS_VERSION,
                        payloads=version >= _SEALED_PAYLOADS_VERSION,
                        entries=version >= _SEALED_REFS_VERSION,
                        epochs=version >= _SEALED_EPOCHS_VERSION,
                        counts=version >= _SEALED_COUNTS_VERSION,
                        member_keys=version >= _MEMBER_KEYS_VERSION,
                        contact_boxes=version >= _CONTACT_QUEUES_VERSION,
                    )
                )
            if version >= _MAINTENANCE_VERSION:
                await self._maintain()
            await self.db.listen(CHANNEL, self.hub.on_notification)
            await self.db.listen(DEVICE_CHANNEL, self.devices.on_notification)
        except BaseException:
            await self.db.close()
            raise
        if self._run_sweeper:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="retention-sweeper")
        self.started = True
        log_event(_log, "server started", backend=self.db.dialect, schema_version=version)

    async def _seal_legacy_rows(
        self,
        tx: Tx,
        *,
        member_sets: bool,
        payloads: bool,
        entries: bool,
        epochs: bool,
        counts: bool,
        member_keys: bool,
        contact_boxes: bool,
    ) -> None:
        """Seal what rows from before server migrations 11 and 13 to 18 hold in the clear.

        Client queues, GroupInfos, KeyPackages, group member sets, stored
        messages, queue entries' payload references, group epochs and
        stored messages' counts of holders (:mod:`.queue_links`,
        :mod:`.at_rest`, :mod:`.member_sets`, :mod:`.payload_refs`,
        :mod:`.group_epochs`), in one transaction. The
        migrations cannot: the key is not in the database. Several processes
        starting together may both seal a row: either box opens.
        A database sealed under another secret key file is refused here
        (:class:`StorageError`), not request by request: one sealed queue box,
        and one contact box (server migration 23), are opened to check it.
        """
        clients = await self.queue_links.adopt_legacy(tx)
        await _open_one(
            tx,
            "SELECT client_id, queue_box FROM clients WHERE queue_box IS NOT NULL LIMIT 1",
            lambda row: self.queue_links.queue(str(row[0]), row[1], None),
        )
        if contact_boxes:
            await _open_one(
                tx,
                "SELECT client_id, contact_box FROM clients WHERE contact_box IS NOT NULL LIMIT 1",
                lambda row: self.contact_queues.queue(str(row[0]), row[1]),
            )
        # A group under its members' keys: the key file does not open its boxes.
        by_server = " AND state_keys IS NULL" if member_keys else ""
        sealed = {
            "clients": clients,
            "groups": await self.delivery.adopt_legacy(tx),
            "key_packages": await self.key_packages.adopt_legacy(tx),
        }
        # (wanted, what, seal the rows from before, a query for one sealed row, open it)
        steps: list[
            tuple[bool, str, Callable[[Tx], Awaitable[int]], str, Callable[[Row], object]]
        ] = [
            (
                member_sets,
                "member_sets",
                self.member_sets.adopt_legacy,
                "SELECT group_id, members_box FROM mls_groups "  # noqa: S608
                f"WHERE members_box IS NOT NULL{by_server} LIMIT 1",
                lambda row: self.member_sets.open(bytes(row[0]), row[1]),
            ),
            (
                payloads,
                "messages",
                self.delivery.seal_legacy_payloads,
                "SELECT payload_id, data FROM payloads WHERE sealed = 1 LIMIT 1",
                lambda row: self.delivery.opened_payload(bytes(row[1])),
            ),
            (
                entries,
                "entries",
                self.payload_refs.seal_legacy,
                "SELECT queue_id, payload_ref FROM queue_entries "
                "WHERE payload_ref IS NOT NULL LIMIT 1",
                lambda row: self.payload_refs.open(str(row[0]), row[1]),
            ),
            (
                epochs,
                "epochs",
                self.group_epochs.adopt_legacy,
                "SELECT group_id, epoch_box FROM mls_groups "  # noqa: S608
                f"WHERE epoch_box IS NOT NULL{by_server} LIMIT 1",
                lambda row: self.group_epochs.open(bytes(row[0]), row[1]),
            ),
            (
                counts,
                "counts",
                self.payload_refs.seal_legacy_counts,
                "SELECT payload_id, holders_box FROM payloads "
                "WHERE holders_box IS NOT NULL LIMIT 1",
                lambda row: self.payload_refs.open_count(int(row[0]), row[1], None),
            ),
        ]
        for wanted, what, seal, sample, open_row in steps:
            if wanted:
                sealed[what] = await seal(tx)
                await _open_one(tx, sample, open_row)
        if any(sealed.values()):
            log_event(_log, "sealed rows from before", **sealed)

    async def _maintain(self) -> None:
        """Run the maintenance tasks migrations left (the ``maintenance`` table), once.

        ``seq_origins``: empty queues from before server migration 18 start
        counting from a random origin (:meth:`_move_seq_origins`; retention
        sweeps run it again until none is left).

        ``compact``: the rows from before are sealed by now (this runs after
        :meth:`_seal_legacy_rows` committed); rewrite the tables that held
        them in the clear, so that the files keep no old copy
        (:meth:`Database.compact`). Processes starting together may both
        run it; the second rewrite finds nothing more to drop.
        """
        tasks = {
            str(t[0])
            for t in await self.db.read(lambda tx: tx.fetchall("SELECT task FROM maintenance"))
        }
        if "seq_origins" in tasks:
            await self._move_seq_origins()
        if "compact" in tasks:
            await self.db.compact(_COMPACTED_TABLES)
            await self.db.transaction(
                lambda tx: tx.execute("DELETE FROM maintenance WHERE task = 'compact'")
            )
            log_event(_log, "compacted the database", tables=len(_COMPACTED_TABLES))

    async def _move_seq_origins(self) -> None:
        """The ``seq_origins`` task: move the empty queues that count from below the origins.

        Queues from before server migration 18 counted from 1
        (:mod:`.queue_numbers`). One pass in queue ID order, a transaction
        per batch (each locks only its own queues); the task is struck off
        once no queue counts from below the origins, so it runs again at
        the next retention sweep while entries still wait in one.
        """
        moved = 0
        after: str | None = ""
        while after is not None:
            count, after = await self.db.transaction(
                functools.partial(queue_numbers.move_empty_batch, after=after)
            )
            moved += count

        async def strike(tx: Tx) -> bool:
            if await queue_numbers.below_origins(tx):
                return False
            await tx.execute("DELETE FROM maintenance WHERE task = 'seq_origins'")
            return True

        done = await self.db.transaction(strike)
        if moved or done:
            log_event(_log, "queues moved to a random origin", queues=moved, done=done)

    async def _seq_origins_due(self) -> None:
        """Run the ``seq_origins`` task if it is still to do (retention sweeps)."""
        found = await self.db.read(
            lambda tx: tx.fetchone("SELECT 1 FROM maintenance WHERE task = 'seq_origins'")
        )
        if found is not None:
            await self._move_seq_origins()

    async def stop(self) -> None:
        """Stop the sweeper and close the database (pending writes finish)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self.started:
            self.hub.wake_all()
            await self.db.close()
            self.started = False
            log_event(_log, "server stopped")

    async def sweep(self) -> None:
        """One retention sweep: what the sweeper runs every ``sweep_interval_seconds``."""
        await self.delivery.sweep()
        await self.links.sweep()
        await self.blobs.sweep()
        await self.rejoin_boxes.sweep()
        await self._seq_origins_due()
        await self.db.empty_log()  # docs/metadata.md §2

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval_seconds)
            try:
                await self.sweep()
            except (StorageError, OSError):
                _log.exception("retention sweep failed")
