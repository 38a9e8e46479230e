"""Sealed sending and padded messages (docs/metadata.md §3 and §4).

A send to a group is not signed: it carries the epoch's send token, which
only the epoch's members can derive (RFC 9420 §8.5 exporter, §8 key
schedule), and the server compares its digest with the one registered for
the current epoch. These tests play the attacker: a stranger guessing
tokens, a removed member with every token it knew, a member behind by an
epoch, an old client that sends no token or bare MLS messages, and a client
that sends envelopes of the wrong size. Each gets a typed error and changes
nothing. They also check what the database holds: only bucket-sized
envelopes, and one send-token digest per group.

Tokens here come from the test client (``send_token``), as the MLS
exporter's would: a client knows an epoch's token only if its queue was a
member of that epoch, as the server was told by ``create_group``/``commit``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.padding import MIN_BUCKET, is_bucket, pad, padded_length, unpad
from messenger.api.sealed import token_digest
from messenger.server.at_rest import SEALED_OVERHEAD, SealedColumn

from . import mls_data
from .client import ApiClient, send_token, send_token_hash
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import columns, opened_envelope, rows, snapshot

pytestmark = pytest.mark.anyio

GID = os.urandom(32)
OTHER = os.urandom(32)
MISSING_BODY = {"error": {"code": "unknown_group", "message": "no such group", "details": {}}}


async def _group(server: TestServer, n: int, gid: bytes = GID) -> list[ApiClient]:
    """``n`` new clients in ``gid`` at epoch 1; the first created it."""
    clients = [await server.registered() for _ in range(n)]
    await _join(clients, gid)
    return clients


async def _join(clients: list[ApiClient], gid: bytes) -> None:
    """``clients[0]`` creates ``gid`` and adds the others (epoch 1)."""
    await clients[0].start_group(gid, *clients[1:], group_info=True)


async def _post(
    client: ApiClient, gid: bytes, body: m.Model | dict[str, Any], *, batch: bool = False
) -> httpx.Response:
    """A sealed (unsigned) request to a send route."""
    route = r.GROUP_MESSAGES_BATCH if batch else r.GROUP_MESSAGES
    return await client.raw("POST", r.group_path(route, gid), body, signed=False)


def _code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def _stored_digest(server: TestServer, gid: bytes) -> bytes | None:
    """The send-token digest the database holds for ``gid``."""
    index = (await columns(server, "mls_groups")).index("send_token_hash")
    (row,) = [row for row in await rows(server, "mls_groups") if row[0] == gid]
    value = row[index]
    return None if value is None else bytes(value)


async def _texts(client: ApiClient) -> list[bytes]:
    """The plaintexts of the application messages in ``client``'s queue."""
    from messenger.mls.content import ContentType, PrivateMessage
    from messenger.mls.messages import MLSMessage

    out = []
    for msg in (await client.fetch(0, limit=1000)).messages:
        body = MLSMessage.from_bytes(msg.data).body
        if isinstance(body, PrivateMessage) and body.content_type is ContentType.APPLICATION:
            out.append(mls_data.decrypt(body.ciphertext))
    return out


# -- who can send ---------------------------------------------------------------------------


async def test_a_stranger_with_a_guessed_token_gets_the_body_of_a_missing_group(
    server: TestServer,
) -> None:
    alice, _ = await _group(server, 2)
    mallory = await server.registered()
    missing = os.urandom(32)
    before = await snapshot(server)
    guesses = {
        "her guess": mallory.token_for(GID, mls_data.application(GID, 1, b"x")),
        "random": os.urandom(32),
        # The digest is not the token: knowing what the database holds does not help.
        "the stored digest": send_token_hash(GID, 1),
        # Epoch 0's token (Alice alone then): not the current one.
        "an old epoch's token": send_token(GID, 0),
        "zeros": bytes(32),
    }
    for name, token in guesses.items():
        for batch in (False, True):
            answers = []
            for gid in (GID, missing):
                request = m.SendRequest(mls_data.application(gid, 1, b"hi"), None, token)
                body = m.SendBatchRequest((request,)) if batch else request
                answers.append(await _post(mallory, gid, body, batch=batch))
            on_real, on_missing = answers
            assert on_real.status_code == on_missing.status_code == 404, name
            assert on_real.content == on_missing.content, name
            assert on_real.json() == MISSING_BODY, name
    # A member's real token, sent to another group, is not that group's either.
    response = await _post(
        alice,
        missing,
        m.SendRequest(mls_data.application(missing, 1, b"x"), None, send_token(GID, 1)),
    )
    assert (response.status_code, response.json()) == (404, MISSING_BODY)
    assert await snapshot(server) == before
    # The real token works, so the refusals were about the token.
    assert (await alice.send(GID, mls_data.application(GID, 1, b"real"))).recipients == 2


async def test_a_removed_member_with_every_token_it_knew_gets_unknown_group(
    server: TestServer,
) -> None:
    alice, bob, carol = await _group(server, 3)
    three = [alice.me.queue_id, bob.me.queue_id, carol.me.queue_id]
    await alice.commit(GID, 1, mls_data.commit(GID, 1), three)  # epoch 2, Carol still in
    await alice.commit(GID, 2, mls_data.commit(GID, 2, b"remove carol"), three[:2])  # epoch 3
    known = [send_token(GID, 1), send_token(GID, 2)]  # Carol's epochs
    missing = os.urandom(32)
    before = await snapshot(server)
    for token in known:
        for epoch in (1, 2, 3, 4):
            message = mls_data.application(GID, epoch, b"carol is back")
            for batch in (False, True):
                request = m.SendRequest(message, os.urandom(16), token)
                body = m.SendBatchRequest((request,)) if batch else request
                response = await _post(carol, GID, body, batch=batch)
                assert (response.status_code, response.json()) == (404, MISSING_BODY)
        elsewhere = m.SendRequest(mls_data.application(missing, 3, b"x"), None, token)
        assert (await _post(carol, missing, elsewhere)).content == response.content
    # Nor can she register a token of her own for the epoch she is not in.
    with pytest.raises(ApiError) as info:
        await carol.call(
            "PUT",
            r.group_path(r.GROUP_SEND_TOKEN, GID),
            m.SendTokenRequest(3, token_digest(known[-1])),
            m.Empty,
        )
    assert info.value.code is ErrorCode.UNKNOWN_GROUP
    assert await snapshot(server) == before
    # The members go on; Carol's queue ends with the commit that removed her.
    assert (await bob.send(GID, mls_data.application(GID, 3, b"without carol"))).recipients == 2
    assert b"without carol" not in await _texts(carol)
    assert (await _texts(alice))[-1] == b"without carol"


async def test_a_member_behind_by_one_epoch_gets_unknown_group_and_registers_nothing(
    server: TestServer,
) -> None:
    alice, bob = await _group(server, 2)
    queues = [alice.me.queue_id, bob.me.queue_id]
    await alice.commit(GID, 1, mls_data.commit(GID, 1), queues)  # Bob has not applied it yet
    before = await snapshot(server)
    old = send_token(GID, 1)
    with pytest.raises(ApiError) as info:
        await bob.send(GID, mls_data.application(GID, 1, b"late"), token=old)
    assert info.value.code is ErrorCode.UNKNOWN_GROUP
    # He cannot register his epoch's token again: not for his old epoch ...
    path = r.group_path(r.GROUP_SEND_TOKEN, GID)
    with pytest.raises(ApiError) as info:
        await bob.call("PUT", path, m.SendTokenRequest(1, token_digest(old)), m.Empty)
    assert info.value.code is ErrorCode.STALE_EPOCH
    assert info.value.details == {"current_epoch": 2}
    # ... nor as the new epoch's, whose digest the commit set.
    with pytest.raises(ApiError) as info:
        await bob.call("PUT", path, m.SendTokenRequest(2, token_digest(old)), m.Empty)
    assert info.value.code is ErrorCode.KEY_IN_USE and info.value.status == 409
    assert await snapshot(server) == before
    assert await _stored_digest(server, GID) == send_token_hash(GID, 2)
    # Once he has caught up, he sends with the new epoch's token.
    sent = await bob.send(GID, mls_data.application(GID, 2, b"caught up"))
    assert (sent.epoch, sent.recipients) == (2, 2)


async def test_the_send_token_route_is_for_members_of_the_current_epoch_once(
    server: TestServer,
) -> None:
    alice, bob, mallory = [await server.registered() for _ in range(3)]
    # A group made as an old client made them: no send token registered.
    await alice.call("POST", r.GROUPS, m.CreateGroupRequest(GID), m.CreateGroupResponse)
    assert await _stored_digest(server, GID) is None
    token = send_token(GID, 0)
    response = await _post(
        alice, GID, m.SendRequest(mls_data.application(GID, 0, b"x"), None, token)
    )
    assert (response.status_code, response.json()) == (404, MISSING_BODY)
    path = r.group_path(r.GROUP_SEND_TOKEN, GID)
    before = await snapshot(server, exclude=("request_nonces",))
    # Members only: a stranger's answer is the one for a missing group.
    strange = await mallory.raw("PUT", path, m.SendTokenRequest(0, token_digest(token)))
    missing = await mallory.raw(
        "PUT",
        r.group_path(r.GROUP_SEND_TOKEN, OTHER),
        m.SendTokenRequest(0, token_digest(token)),
    )
    assert (strange.status_code, strange.content) == (missing.status_code, missing.content)
    assert strange.json() == MISSING_BODY
    # Signed: an unsigned registration is refused before anything else.
    unsigned = await alice.raw(
        "PUT", path, m.SendTokenRequest(0, token_digest(token)), signed=False
    )
    assert (unsigned.status_code, _code(unsigned)) == (401, "auth_missing")
    # The current epoch only.
    with pytest.raises(ApiError) as info:
        await alice.call("PUT", path, m.SendTokenRequest(1, token_digest(token)), m.Empty)
    assert info.value.code is ErrorCode.STALE_EPOCH and info.value.details == {"current_epoch": 0}
    assert await snapshot(server, exclude=("request_nonces",)) == before
    # Set once: the same digest again is fine, another one is refused.
    await alice.call("PUT", path, m.SendTokenRequest(0, token_digest(token)), m.Empty)
    await alice.call("PUT", path, m.SendTokenRequest(0, token_digest(token)), m.Empty)
    lockout = os.urandom(32)
    with pytest.raises(ApiError) as info:
        await alice.call("PUT", path, m.SendTokenRequest(0, token_digest(lockout)), m.Empty)
    assert info.value.code is ErrorCode.KEY_IN_USE
    assert await _stored_digest(server, GID) == token_digest(token)
    registered = await alice.send(GID, mls_data.application(GID, 0, b"registered"), token=token)
    assert registered.epoch == 0
    response = await _post(
        alice, GID, m.SendRequest(mls_data.application(GID, 0, b"x"), None, lockout)
    )
    assert response.json() == MISSING_BODY
    # A commit sets the next epoch's digest: the old token stops working.
    await alice.commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        [alice.me.queue_id, bob.me.queue_id],
        welcome=await alice.welcome_for(bob),
        welcome_to=[bob.me.queue_id],
    )
    assert await _stored_digest(server, GID) == send_token_hash(GID, 1)
    with pytest.raises(ApiError) as info:
        await alice.send(GID, mls_data.application(GID, 1, b"old token"), token=token)
    assert info.value.code is ErrorCode.UNKNOWN_GROUP
    assert (await bob.send(GID, mls_data.application(GID, 1, b"new token"))).recipients == 2
    with pytest.raises(ApiError) as info:
        await bob.call("PUT", path, m.SendTokenRequest(1, token_digest(lockout)), m.Empty)
    assert info.value.code is ErrorCode.KEY_IN_USE
    # A commit without a digest (an old client's) leaves the new epoch without
    # one until a member registers it.
    no_digest = m.CommitRequest(1, mls_data.commit(GID, 1), (alice.me.queue_id, bob.me.queue_id))
    await alice.call("POST", r.group_path(r.GROUP_COMMITS, GID), no_digest, m.CommitResponse)
    assert await _stored_digest(server, GID) is None
    with pytest.raises(ApiError) as info:
        await bob.send(GID, mls_data.application(GID, 2, b"no token yet"), token=send_token(GID, 2))
    assert info.value.code is ErrorCode.UNKNOWN_GROUP
    await bob.call("PUT", path, m.SendTokenRequest(2, send_token_hash(GID, 2)), m.Empty)
    sent = await alice.send(GID, mls_data.application(GID, 2, b"now"), token=send_token(GID, 2))
    assert (sent.epoch, sent.recipients) == (2, 2)
    assert await _texts(bob) == [b"new token", b"now"]


# -- old clients and malformed requests ------------------------------------------------------


async def test_a_send_without_a_token_is_outdated_client_and_stores_nothing(
    server: TestServer,
) -> None:
    alice, _ = await _group(server, 2)
    before = await snapshot(server)
    message = mls_data.application(GID, 1, b"from an old client")
    sealed = alice.sealed(GID, mls_data.application(GID, 1, b"with a token"))
    bodies: list[tuple[m.Model, bool]] = [
        (m.SendRequest(message), False),
        (m.SendBatchRequest((m.SendRequest(message),)), True),
        (m.SendBatchRequest((sealed, m.SendRequest(message))), True),
        (m.SendBatchRequest((m.SendRequest(message), sealed)), True),
    ]
    for body, batch in bodies:
        for signed in (False, True):  # a signature does not stand in for the token
            response = await alice.raw(
                "POST",
                r.group_path(r.GROUP_MESSAGES_BATCH if batch else r.GROUP_MESSAGES, GID),
                body,
                signed=signed,
            )
            assert (response.status_code, _code(response)) == (400, "outdated_client")
            assert "update the app" in response.json()["error"]["message"]
    assert await snapshot(server) == before


async def test_a_batch_whose_items_carry_different_tokens_is_refused_whole(
    server: TestServer,
) -> None:
    alice, bob = await _group(server, 2)
    mallory = await server.registered()
    real = send_token(GID, 1)
    before = await snapshot(server)
    others = {
        "a guess": mallory.token_for(GID, mls_data.application(GID, 1, b"x")),
        "an old epoch's": send_token(GID, 0),
    }
    for name, other in others.items():
        for order in ((real, other), (other, real)):
            items = tuple(
                m.SendRequest(mls_data.application(GID, 1, b"item %d" % i), None, token)
                for i, token in enumerate(order)
            )
            response = await _post(alice, GID, m.SendBatchRequest(items), batch=True)
            assert (response.status_code, _code(response)) == (400, "invalid_field"), name
            assert response.json()["error"]["details"] == {"field": "messages"}
    assert await snapshot(server) == before
    await alice.send_batch(
        GID, [mls_data.application(GID, 1, b"same token %d" % i) for i in (0, 1)]
    )
    assert await _texts(bob) == [b"same token 0", b"same token 1"]


def _model_json(model: m.Model) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(model.dumps())
    return body


def _group_info(group_id: bytes, epoch: int, size: int) -> bytes:
    """A GroupInfo (RFC 9420 §12.4.3) of at least ``size`` bytes (its signature is opaque
    to the server, so a long one stands for a GroupInfo with the ratchet tree)."""
    from messenger.mls.group_context import GroupContext
    from messenger.mls.messages import MLSMessage
    from messenger.mls.welcome import GroupInfo

    context = GroupContext(mls_data.SUITE_ID, group_id, epoch, os.urandom(32), os.urandom(32))
    info = GroupInfo(context, (), os.urandom(32), 0, os.urandom(max(64, size)))
    return MLSMessage(info).to_bytes()


#: The plaintext lengths of the two cases: a short text (its bare MLS message
#: is under the smallest bucket, 256 bytes) and a longer one.
BARE_SIZES = {"short": 10, "long": 400}


@pytest.mark.parametrize("size", sorted(BARE_SIZES))
async def test_a_bare_mls_message_is_outdated_client_on_every_route(
    server: TestServer, size: str
) -> None:
    """An old client sends MLS messages without the envelope: it is told to update,
    whatever their length (``outdated_client``, docs/metadata.md §4)."""
    alice, bob = await _group(server, 2)
    length = BARE_SIZES[size]
    new_gid = os.urandom(32)
    queues = (alice.me.queue_id, bob.me.queue_id)
    token = send_token(GID, 1)
    application = mls_data.application(GID, 1, os.urandom(length))
    commit = m.CommitRequest(
        1,
        mls_data.commit(GID, 1, os.urandom(length)),
        queues,
        group_info=_group_info(GID, 2, length),
        send_token_hash=send_token_hash(GID, 2),
    )
    new_info = _group_info(new_gid, 0, length)
    info = _group_info(GID, 1, length)
    bare_lengths = [len(application), len(commit.commit), len(new_info), len(info)]
    if size == "short":
        assert max(bare_lengths) < MIN_BUCKET
    else:
        assert min(bare_lengths) > MIN_BUCKET

    def bare(model: m.Model, field: str, message: bytes) -> dict[str, Any]:
        """``model`` as JSON, with ``field`` holding ``message`` without its envelope."""
        body = _model_json(model)
        body[field] = mls_data.b64(message)
        return body

    send = bare(m.SendRequest(application, None, token), "message", application)
    cases: dict[str, tuple[str, str, dict[str, Any], bool, str]] = {
        "send": ("POST", r.group_path(r.GROUP_MESSAGES, GID), send, False, "message"),
        "batch": (
            "POST",
            r.group_path(r.GROUP_MESSAGES_BATCH, GID),
            {"messages": [_model_json(alice.sealed(GID, application)), send]},
            False,
            "messages[1].message",
        ),
        "commit": (
            "POST",
            r.group_path(r.GROUP_COMMITS, GID),
            bare(commit, "commit", commit.commit),
            True,
            "commit",
        ),
        "commit's GroupInfo": (
            "POST",
            r.group_path(r.GROUP_COMMITS, GID),
            bare(commit, "group_info", commit.group_info or b""),
            True,
            "group_info",
        ),
        "create group's GroupInfo": (
            "POST",
            r.GROUPS,
            bare(
                m.CreateGroupRequest(new_gid, new_info, send_token_hash(new_gid, 0)),
                "group_info",
                new_info,
            ),
            True,
            "group_info",
        ),
        "put GroupInfo": (
            "PUT",
            r.group_path(r.GROUP_INFO, GID),
            bare(m.GroupInfoRequest(1, info), "group_info", info),
            True,
            "group_info",
        ),
    }
    before = await snapshot(server)
    for name, (method, path, body, signed, field) in cases.items():
        response = await alice.raw(method, path, body, signed=signed)
        assert (response.status_code, _code(response)) == (400, "outdated_client"), name
        assert response.json()["error"]["details"] == {"field": field}, name
        assert "update the app" in response.json()["error"]["message"], name
    assert await snapshot(server) == before
    # The same requests with their envelopes go through.
    assert (await alice.send(GID, application)).recipients == 2
    await alice.put_group_info(GID, 1, info)
    assert (await alice.commit(GID, 1, commit.commit, list(queues))).epoch == 2
    await alice.call(
        "POST",
        r.GROUPS,
        m.CreateGroupRequest(new_gid, new_info, send_token_hash(new_gid, 0)),
        m.CreateGroupResponse,
    )


def _with_length(envelope: bytes, length: int) -> bytes:
    return envelope[:2] + length.to_bytes(4, "big") + envelope[6:]


def _ending_non_zero(make: Callable[[], bytes]) -> bytes:
    for _ in range(64):
        data = make()
        if data[-1] != 0:
            return data
    raise AssertionError("64 draws all ended in a zero byte")


async def test_a_non_canonical_envelope_is_invalid_field(server: TestServer) -> None:
    alice, _ = await _group(server, 2)
    token = send_token(GID, 1)
    # "A length one short" is non-canonical only if the byte it drops is not
    # zero (it becomes padding); these messages end in random bytes, so draw
    # them until that holds rather than fail one run in ~85.
    message = _ending_non_zero(lambda: mls_data.application(GID, 1, b"short"))
    info = _ending_non_zero(lambda: mls_data.group_info(GID, 1))
    commit = _ending_non_zero(lambda: mls_data.commit(GID, 1))

    def variants(data: bytes) -> dict[str, bytes]:
        good = pad(data)
        assert len(good) == MIN_BUCKET
        assert data[-1] != 0
        return {
            "the next bucket": good + bytes(len(good)),
            "not a bucket size": good + bytes(1),
            "a byte short": good[:-1],
            "non-zero padding": good[:-1] + b"\x01",
            "a length past the end": _with_length(good, len(good)),
            "a length of zero": _with_length(good, 0),
            "a length one short": _with_length(good, len(data) - 1),
            "another magic": b"\xff\x02" + good[2:],
            "smaller than a bucket": good[:100],
        }

    def body_of(route: str, data: bytes) -> dict[str, Any]:
        encoded = mls_data.b64(data)
        if route == "send":
            return {"message": encoded, "token": mls_data.b64(token)}
        if route == "commit":
            return {
                "epoch": 1,
                "commit": encoded,
                "members": [alice.me.queue_id],
                "send_token_hash": mls_data.b64(send_token_hash(GID, 2)),
            }
        return {"epoch": 1, "group_info": encoded}

    routes = {  # the commit last: it ends the epoch the others are for
        "send": ("POST", r.group_path(r.GROUP_MESSAGES, GID), message, False, "message"),
        "put GroupInfo": ("PUT", r.group_path(r.GROUP_INFO, GID), info, True, "group_info"),
        "commit": ("POST", r.group_path(r.GROUP_COMMITS, GID), commit, True, "commit"),
    }
    before = await snapshot(server)
    for route, (method, path, data, signed, field) in routes.items():
        for name, envelope in variants(data).items():
            response = await alice.raw(method, path, body_of(route, envelope), signed=signed)
            assert (response.status_code, _code(response)) == (400, "invalid_field"), (route, name)
            assert response.json()["error"]["details"] == {"field": field}, (route, name)
    assert await snapshot(server) == before
    # The canonical envelopes of the same messages are accepted.
    for route, (method, path, data, signed, _) in routes.items():
        response = await alice.raw(method, path, body_of(route, pad(data)), signed=signed)
        assert response.status_code == 200, (route, response.text)


# -- what the database holds ----------------------------------------------------------------


async def test_the_database_holds_only_bucket_sized_payloads(server: TestServer) -> None:
    alice, bob = await _group(server, 2)
    lengths = [0, 1, 17, 64, 100, 150, 200, 230, 231, 300, 480, 1000, 3000, 9000, 70_000]
    sent = []
    for length in lengths:
        message = mls_data.application(GID, 1, os.urandom(length))
        sent.append(message)
        await (bob if length % 2 else alice).send(GID, message)
    batch = [mls_data.application(GID, 1, os.urandom(n)) for n in (5, 500, 5000)]
    await alice.send_batch(GID, list(batch))
    sent += batch
    info = mls_data.group_info(GID, 1)
    await alice.put_group_info(GID, 1, info)
    stored = [bytes(row[1]) for row in await rows(server, "payloads")]
    # Sealed at rest (a PrivateMessage shows its group ID), around the envelope.
    assert all(len(data) - SEALED_OVERHEAD == len(opened_envelope(server, data)) for data in stored)
    assert not any(GID in data for data in stored)
    payloads = [opened_envelope(server, data) for data in stored]
    inside = {unpad(data): data for data in payloads}  # each is a canonical envelope
    for data in payloads:
        assert is_bucket(len(data)) and len(data) == padded_length(len(unpad(data)))
    # Every message sent is stored in its envelope, never bare.
    for message in sent:
        assert len(inside[message]) == padded_length(len(message))
        assert message not in payloads and not any(message in data for data in stored)
    # Powers of two from 256 bytes to 64 KiB; above, Padmé sizes (the 70,000 bytes).
    sizes = {len(inside[message]) for message in sent}
    largest = padded_length(len(sent[len(lengths) - 1]))
    assert largest > 64 << 10
    assert sizes <= {256 << k for k in range(9)} | {largest}
    # A short text message is 256 bytes whatever its length.
    short = [message for message in sent if len(message) <= MIN_BUCKET - 6]
    assert len(short) >= 6 and {len(inside[message]) for message in short} == {256}
    # The GroupInfo, too, is kept in its envelope, and that is sealed at rest
    # (its ratchet tree names the members): bucket size plus the seal's bytes.
    index = (await columns(server, "mls_groups")).index("group_info")
    (stored,) = [bytes(row[index]) for row in await rows(server, "mls_groups") if row[0] == GID]
    assert len(stored) - SEALED_OVERHEAD == padded_length(len(info)) and info not in stored
    opened = SealedColumn(server.state.keys.at_rest_key, "mls_groups.group_info").open(GID, stored)
    assert is_bucket(len(opened)) and unpad(opened) == info
    assert (await bob.group_info(GID)).group_info == info


async def test_an_idempotent_retry_of_a_sealed_send_gets_its_first_answer(
    server: TestServer,
) -> None:
    alice, bob, carol = await _group(server, 3)
    mallory = await server.registered()
    key = os.urandom(16)
    message = mls_data.application(GID, 1, b"once")
    first = await alice.send(GID, message, idempotency_key=key)
    assert (first.epoch, first.recipients) == (1, 3)
    before = await snapshot(server)
    # The answer was lost: the retry gets it again, singly or in a batch.
    assert await alice.send(GID, message, idempotency_key=key) == first
    retried = await alice.send_batch(GID, [m.SendRequest(message, key)])
    assert retried.results == (first,)
    assert await snapshot(server) == before
    # A stranger with the key (and a guessed token) learns nothing of the answer.
    response = await _post(mallory, GID, mallory.sealed(GID, message, key))
    assert (response.status_code, response.json()) == (404, MISSING_BODY)
    # The group moves on and removes Carol: a retry with the current token is
    # answered as the first time; Carol's old token gets nothing.
    await bob.commit(GID, 1, mls_data.commit(GID, 1), [alice.me.queue_id, bob.me.queue_id])
    after = await snapshot(server)
    now = send_token(GID, 2)
    assert await alice.send(GID, message, idempotency_key=key, token=now) == first
    with pytest.raises(ApiError) as info:
        await carol.send(GID, message, idempotency_key=key, token=send_token(GID, 1))
    assert info.value.code is ErrorCode.UNKNOWN_GROUP
    assert await snapshot(server) == after
    assert (await _texts(bob)).count(b"once") == 1


async def test_the_group_budget_is_shared_by_its_senders_and_not_by_another_group(
    server_factory: ServerFactory,
) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock, sender_messages_per_queue_per_minute=6) as server:
        alice, bob, carol = await _group(server, 3)
        await _join([bob, alice, carol], OTHER)
        for i, sender in enumerate((alice, bob, carol, alice, bob, carol)):
            await sender.send(GID, mls_data.application(GID, 1, b"%d" % i))
        before = await snapshot(server)
        # Six a minute towards each queue from the group, whoever sends them.
        for sender in (alice, bob, carol):
            with pytest.raises(ApiError) as info:
                await sender.send(GID, mls_data.application(GID, 1, b"one more"))
            assert info.value.code is ErrorCode.RATE_LIMITED and info.value.status == 429
        response = await _post(
            carol, GID, carol.sealed(GID, mls_data.application(GID, 1, b"raw")), batch=False
        )
        assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
        assert await snapshot(server) == before
        # The other group of the same members has its own budget.
        await alice.send_batch(
            OTHER, [mls_data.application(OTHER, 1, b"other %d" % i) for i in range(6)]
        )
        with pytest.raises(ApiError) as info:
            await bob.send(OTHER, mls_data.application(OTHER, 1, b"other 6"))
        assert info.value.code is ErrorCode.RATE_LIMITED
        # After a minute the group may send again.
        clock.advance(60)
        await carol.send(GID, mls_data.application(GID, 1, b"a minute later"))
        texts = await _texts(bob)
        assert [t for t in texts if not t.startswith(b"other")] == [
            *(b"%d" % i for i in range(6)),
            b"a minute later",
        ]
        assert len([t for t in texts if t.startswith(b"other")]) == 6
