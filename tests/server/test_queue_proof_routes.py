"""Queue proofs only where the server needs the queue (docs/metadata.md §1).

A client whose queue has a key of its own proves the queue with that key
(``X-Messenger-Queue``) on a signed request only where the answer needs the
queue: the routes marked ``Route.proves_queue`` and the push WebSocket. The
server checks a proof wherever one comes, but shows it to no other route's
handler, so the table is complete (a handler that needed the queue on an
unmarked route would answer ``auth_missing`` to every client, which the
rest of the suite would find) and the live server does not see a client's
queue on every request it signs.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import Route as StarletteRoute

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.fields import b64encode
from messenger.api.signing import HEADER_QUEUE, HEADER_QUEUE_SIGNATURE
from messenger.server.routes import Call, endpoint

from .conftest import TestServer
from .dbtools import snapshot

pytestmark = pytest.mark.anyio

_PROBE = "/v1/test-probe"
_PROBE_PROVING = "/v1/test-probe-proving"


def _filled(template: str) -> str:
    """``template`` with each ``{name}`` replaced by a segment, as a client sends it."""
    out = template
    for name in ("group_id", "link_id", "blob_id", "client_id", "handle"):
        out = out.replace("{" + name + "}", b64encode(b"\x01" * 16))
    assert "{" not in out, out
    return out


def test_the_matcher_follows_the_route_table() -> None:
    """Every route, filled in as a client sends it (with a query), proves the
    queue exactly when the table says so; so does the push WebSocket."""
    assert any(route.proves_queue for route in r.ROUTES)
    assert any(route.signed and not route.proves_queue for route in r.ROUTES)
    for route in r.ROUTES:
        target = _filled(route.path)
        assert r.proves_queue(route.method, target) is route.proves_queue, route
        assert r.proves_queue(route.method, target + "?after=1") is route.proves_queue, route
    assert r.proves_queue("GET", r.QUEUE_WEBSOCKET + "?after=0")
    # Same path, another method: a handle is set with no proof, and removed so.
    handle = _filled(r.HANDLE)
    assert not r.proves_queue("PUT", handle) and not r.proves_queue("DELETE", handle)
    blob = _filled(r.BLOB)
    assert r.proves_queue("GET", blob) and r.proves_queue("DELETE", blob)
    assert not r.proves_queue("POST", blob)
    # A longer or shorter path is another route.
    assert not r.proves_queue("GET", blob + "/more")
    assert not r.proves_queue("POST", r.KEY_PACKAGES + "/claim")
    assert r.proves_queue("POST", r.KEY_PACKAGES)


def test_the_routes_that_need_the_queue_are_marked() -> None:
    """The queue's own routes (their signed form), the takeover, KeyPackage
    uploads (a leaf's address must be the uploader's queue), making a group
    (its first member), commits (external ones join with it), the GroupInfo
    routes and attachments (a blob is its queue's, a recipient is a queue);
    handles, claims, links, devices, rejoin boxes and the contact queue (the
    client's, named by its row) are not."""
    marked = {(route.method, route.path) for route in r.ROUTES if route.proves_queue}
    for needed in [
        ("GET", r.QUEUE_MESSAGES),
        ("POST", r.ACK),
        ("PUT", r.QUEUE_KEY),
        ("POST", r.CLIENT_TAKEOVER),
        ("POST", r.KEY_PACKAGES),
        ("POST", r.GROUPS),
        ("POST", r.GROUP_COMMITS),
        ("POST", r.BLOBS),
        ("GET", r.BLOB),
        ("DELETE", r.BLOB),
    ]:
        assert needed in marked, needed
    for not_needed in [
        ("POST", r.CLAIM_KEY_PACKAGES),
        ("POST", r.HANDLE_LOOKUP),
        ("PUT", r.HANDLE),
        ("GET", r.KEY_PACKAGE_COUNT),
        ("POST", r.CLIENTS),
        ("DELETE", r.CLIENT),
        ("POST", r.LINKS),
        ("PUT", r.REJOIN_BOX),
        ("GET", r.REJOIN_BOX),
        ("PUT", r.CONTACT_QUEUE),
    ]:
        assert not_needed not in marked, not_needed


async def test_a_route_that_needs_no_queue_is_not_shown_the_proof(server: TestServer) -> None:
    """The same signed request with a valid proof, to two probe routes: the one
    marked ``proves_queue`` sees the queue, the other sees none."""
    seen: dict[str, Any] = {}

    def probe(name: str) -> Any:
        async def handler(call: Call) -> m.Model:
            assert call.principal is not None
            seen[name] = call.principal.proven_queue
            return m.Empty()

        return handler

    routes: list[StarletteRoute] = [
        endpoint(r.Route("GET", _PROBE, "probe", m.Empty), probe("plain")),
        endpoint(
            r.Route("GET", _PROBE_PROVING, "probe", m.Empty, proves_queue=True), probe("proving")
        ),
    ]
    server.app.router.routes[:0] = routes
    alice = await server.registered()
    await alice.give_queue_key()
    for path in (_PROBE, _PROBE_PROVING):
        response = await alice.raw("GET", path)
        assert response.status_code == 200, response.text
    assert seen == {"plain": None, "proving": alice.me.queue_id}


async def test_a_bad_proof_is_refused_on_a_route_that_needs_no_queue(
    server: TestServer,
) -> None:
    """Shown to no handler, a proof is still checked: another queue's key, or a
    proof of another request, on a claim is ``auth_invalid`` and changes nothing
    (no KeyPackage claimed, no nonce kept)."""
    alice, bob, mallory = [await server.registered() for _ in range(3)]
    for client in (alice, mallory):
        await client.give_queue_key()
    await bob.upload_key_packages([bob.key_package()])
    body = m.ClaimKeyPackagesRequest(bob.me.account_id, None).dumps()
    before = await snapshot(server, exclude=())

    forged = alice.sign("POST", r.CLAIM_KEY_PACKAGES, body)
    # Mallory's queue named, Alice's proof: the proof does not verify with it.
    forged[HEADER_QUEUE] = mallory.me.queue_id
    other = alice.sign("GET", r.KEY_PACKAGE_COUNT, b"")
    # Alice's queue, but the proof of another of her requests.
    replayed = alice.sign("POST", r.CLAIM_KEY_PACKAGES, body)
    replayed[HEADER_QUEUE_SIGNATURE] = other[HEADER_QUEUE_SIGNATURE]
    # Half a proof.
    half = alice.sign("POST", r.CLAIM_KEY_PACKAGES, body)
    del half[HEADER_QUEUE_SIGNATURE]
    for headers in (forged, replayed, half):
        response = await alice.raw(
            "POST", r.CLAIM_KEY_PACKAGES, body, signed=False, headers=headers
        )
        assert (response.status_code, response.json()["error"]["code"]) == (401, "auth_invalid")
    assert await snapshot(server, exclude=()) == before
    # The same claim with a good proof is served.
    claimed = await alice.claim(bob.me.account_id)
    assert len(claimed.key_packages) == 1
