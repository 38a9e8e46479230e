"""KeyPackage replenishment against a mock server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.delivery_address import DELIVERY_QUEUE_EXTENSION
from messenger.client.errors import ServerUnavailableError
from messenger.client.net import Signer, Transport
from messenger.client.session import Session
from messenger.client.sync import KeyPackagePool
from messenger.mls.extensions import find_extension
from messenger.mls.messages import MLSMessage

from .sync_helpers import (
    ADDRESS,
    UNREACHABLE,
    Authority,
    address_answer,
    close_session,
    make_session,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class MockServer:
    """Counts KeyPackages like the server does; can fail uploads."""

    def __init__(self, available: int = 0, *, addresses: bool = True) -> None:
        self.available = available
        self.last_resort: bytes | None = None
        self.uploads: list[m.UploadKeyPackagesRequest] = []
        self.fail_uploads = False
        self.addresses = addresses  # False: a server from before delivery addresses
        self.address_requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        address = address_answer(request, supported=self.addresses)
        if address is not None:
            self.address_requests += 1
            return address
        if request.url.path == r.KEY_PACKAGE_COUNT:
            count = m.KeyPackageCount(self.available, self.last_resort is not None)
            return httpx.Response(200, content=count.dumps())
        assert request.url.path == r.KEY_PACKAGES
        if self.fail_uploads:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "x"}})
        upload = m.UploadKeyPackagesRequest.from_json(json.loads(request.content))
        self.uploads.append(upload)
        for data in upload.key_packages:
            MLSMessage.from_bytes(data).key_package  # noqa: B018 (it must decode)
        self.available += len(upload.key_packages)
        if upload.last_resort is not None:
            self.last_resort = upload.last_resort
        answer = m.UploadKeyPackagesResponse(self.available, self.last_resort is not None)
        return httpx.Response(200, content=answer.dumps())


async def _session_on(server: MockServer, tmp_path: Path) -> Session:
    """Bob's session, talking to ``server``."""
    session = await make_session(tmp_path, "bob", Authority())
    await session.transport.aclose()
    session.transport = Transport(
        UNREACHABLE,
        signer=Signer(session.account.client_id, session.account.signature_private_key),
        transport=httpx.MockTransport(server),
    )
    return session


async def test_the_pool_tops_up_and_keeps_a_last_resort(tmp_path: Path) -> None:
    server = MockServer(available=3)
    session = await _session_on(server, tmp_path)
    pool = KeyPackagePool(session, target=10, low_water=4)
    try:
        assert await pool.replenish() == 8  # 7 one-time and the last-resort one
        assert server.available == 10 and server.last_resort is not None
        stored = await session.store.run(lambda s: s.key_packages.count(now=0))
        assert stored == 7
        assert await pool.replenish() == 0  # nothing to do above the low-water mark

        # Claims use them up; an upload fails; the next run uploads what was saved.
        server.available = 1
        server.fail_uploads = True
        with pytest.raises(ServerUnavailableError):
            await pool.replenish()
        waiting = await session.store.run(lambda s: s.key_packages.not_uploaded())
        assert len(waiting) == 9
        server.fail_uploads = False
        await pool.replenish()
        assert server.available == 10
        assert await session.store.run(lambda s: s.key_packages.not_uploaded()) == []
        # Every leaf names the queue by the address the server sealed, asked once.
        uploaded = [kp for u in server.uploads for kp in u.key_packages]
        assert uploaded and {_delivery(kp) for kp in uploaded} == {ADDRESS}
        assert server.address_requests == 1
    finally:
        await close_session(session)


def _delivery(key_package: bytes) -> str | None:
    leaf = MLSMessage.from_bytes(key_package).key_package.leaf_node
    ext = find_extension(leaf.extensions, DELIVERY_QUEUE_EXTENSION)
    return None if ext is None else bytes(ext.extension_data).decode()


async def test_a_server_from_before_addresses_gets_leaves_with_the_queue_id(
    tmp_path: Path,
) -> None:
    server = MockServer(addresses=False)
    session = await _session_on(server, tmp_path)
    pool = KeyPackagePool(session, target=4, low_water=2)
    try:
        assert await pool.replenish() == 5
        uploaded = [kp for u in server.uploads for kp in u.key_packages]
        assert {_delivery(kp) for kp in uploaded} == {session.account.queue_id}
        assert server.address_requests == 1  # not asked again in this session
    finally:
        await close_session(session)
