"""Attack: learning which groups exist (security issue, item 8).

Before the fix a stranger sending to a real group got 403 ``not_a_member``
and to a random ID 404, and a forged external commit got 409 with the
group's ``current_epoch``. Now every group route answers a client that is
not a member of the group exactly as for a group that does not exist:
``unknown_group`` (404), byte for byte, whatever else is wrong with the
request, and before anything about the group is looked at (its epoch, or an
idempotency key the client used elsewhere).

``POST /v1/groups`` cannot hide that an ID is taken (creating it must fail),
so it gives ``group_exists`` to members and strangers alike, with nothing
else in the answer.
"""

from __future__ import annotations

import os

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r

from . import mls_data
from .client import ApiClient, send_token_hash
from .conftest import TestServer
from .dbtools import snapshot

pytestmark = pytest.mark.anyio

GID = os.urandom(32)  # as clients make them
MALLORY_GID = os.urandom(32)
USED_KEY = b"mallory's key 16"


async def _group_of(owner: ApiClient, member: ApiClient, group_id: bytes) -> None:
    await owner.create_group(group_id)
    await owner.commit(
        group_id,
        0,
        mls_data.commit(group_id, 0),
        [owner.me.queue_id, member.me.queue_id],
        welcome=await owner.welcome_for(member),
        welcome_to=[member.me.queue_id],
        group_info=mls_data.group_info(group_id, 1),
    )


def _requests(stranger: ApiClient, group_id: bytes) -> dict[str, tuple[str, str, m.Model | None]]:
    """Every request a stranger might make about ``group_id``.

    Sends are sealed (unsigned): they carry the token the stranger knows for
    the message's epoch, a guess unless it was a member then. The rest is signed.
    """
    messages = r.group_path(r.GROUP_MESSAGES, group_id)
    commits = r.group_path(r.GROUP_COMMITS, group_id)
    info = r.group_path(r.GROUP_INFO, group_id)
    batch = r.group_path(r.GROUP_MESSAGES_BATCH, group_id)
    token = r.group_path(r.GROUP_SEND_TOKEN, group_id)
    me = (stranger.me.queue_id,)
    return {
        "send": (
            "POST",
            messages,
            stranger.sealed(group_id, mls_data.application(group_id, 1, b"hi")),
        ),
        "send, another epoch": (
            "POST",
            messages,
            stranger.sealed(group_id, mls_data.application(group_id, 7, b"hi")),
        ),
        "send, a key used elsewhere": (
            "POST",
            messages,
            stranger.sealed(group_id, mls_data.application(group_id, 1, b"hi"), USED_KEY),
        ),
        "proposal": (
            "POST",
            messages,
            stranger.sealed(group_id, mls_data.public_proposal(group_id, 1)),
        ),
        "batch": (
            "POST",
            batch,
            m.SendBatchRequest(
                (stranger.sealed(group_id, mls_data.application(group_id, 1, b"hi"), USED_KEY),)
            ),
        ),
        "commit": ("POST", commits, m.CommitRequest(1, mls_data.commit(group_id, 1), me)),
        "commit, another epoch": (
            "POST",
            commits,
            m.CommitRequest(0, mls_data.commit(group_id, 0), me),
        ),
        "commit, a key used elsewhere": (
            "POST",
            commits,
            m.CommitRequest(1, mls_data.commit(group_id, 1), me, idempotency_key=USED_KEY),
        ),
        "forged external commit": (
            "POST",
            commits,
            m.CommitRequest(
                1,
                mls_data.external_commit(group_id, 1),
                me,
                group_info=mls_data.group_info(group_id, 2),
            ),
        ),
        "forged external commit, another epoch": (
            "POST",
            commits,
            m.CommitRequest(5, mls_data.external_commit(group_id, 5), me),
        ),
        "get GroupInfo": ("GET", info, None),
        "put GroupInfo": (
            "PUT",
            info,
            m.GroupInfoRequest(1, mls_data.group_info(group_id, 1)),
        ),
        "put GroupInfo, another epoch": (
            "PUT",
            info,
            m.GroupInfoRequest(4, mls_data.group_info(group_id, 4)),
        ),
        "put send token": ("PUT", token, m.SendTokenRequest(1, send_token_hash(group_id, 1))),
        "put send token, another epoch": (
            "PUT",
            token,
            m.SendTokenRequest(3, send_token_hash(group_id, 3)),
        ),
    }


async def _answer(client: ApiClient, request: tuple[str, str, m.Model | None]) -> httpx.Response:
    method, path, body = request
    sealed = isinstance(body, m.SendRequest | m.SendBatchRequest)
    return await client.raw(method, path, body, signed=not sealed)


async def test_every_group_route_answers_a_stranger_alike_for_real_and_missing_groups(
    server: TestServer,
) -> None:
    alice, bob, mallory, accomplice = [await server.registered() for _ in range(4)]
    await _group_of(alice, bob, GID)
    # Mallory has a group of her own, where she used an idempotency key
    # (sealed sends keep answers per group and key; commits per client and key).
    await _group_of(mallory, accomplice, MALLORY_GID)
    await mallory.send(
        MALLORY_GID, mls_data.application(MALLORY_GID, 1, b"mine"), idempotency_key=USED_KEY
    )
    missing = os.urandom(32)
    before = await snapshot(server)
    real = _requests(mallory, GID)
    fake = _requests(mallory, missing)
    for name in real:
        on_real = await _answer(mallory, real[name])
        on_missing = await _answer(mallory, fake[name])
        assert on_real.status_code == on_missing.status_code == 404, (name, on_real.text)
        assert on_real.content == on_missing.content, name
        assert on_real.json() == {
            "error": {"code": "unknown_group", "message": "no such group", "details": {}}
        }
    assert await snapshot(server) == before
    # The same for a former member, and none of it changes anything.
    await alice.commit(GID, 1, mls_data.commit(GID, 1), [alice.me.queue_id])
    after_removal = await snapshot(server)
    real = _requests(bob, GID)
    fake = _requests(bob, missing)
    for name in real:
        on_real = await _answer(bob, real[name])
        on_missing = await _answer(bob, fake[name])
        assert (on_real.status_code, on_real.content) == (
            on_missing.status_code,
            on_missing.content,
        ), name
    assert await snapshot(server) == after_removal


async def test_creating_a_taken_group_id_tells_members_and_strangers_the_same(
    server: TestServer,
) -> None:
    alice, bob, mallory = [await server.registered() for _ in range(3)]
    await _group_of(alice, bob, GID)
    before = await snapshot(server)
    answers = [
        await client.raw("POST", r.GROUPS, m.CreateGroupRequest(GID))
        for client in (alice, bob, mallory)
    ]
    for answer in answers:
        assert (answer.status_code, answer.content) == (answers[0].status_code, answers[0].content)
    assert answers[0].status_code == 409
    assert answers[0].json()["error"] == {
        "code": "group_exists",
        "message": "a group with this ID exists",
        "details": {},
    }
    assert await snapshot(server) == before
