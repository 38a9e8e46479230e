"""Nothing heavy on the event loop, and no conversation waits for another's commit (issue 9).

MLS work -- building a commit, joining from a Welcome, processing a
message, making KeyPackages -- runs in the client's MLS thread, so the
event loop (the UI's, under qasync) keeps running. Group state is guarded by
a lock per group, so a commit waiting for the server's answer holds up only
its own conversation. Every wait is bounded by a deadline that only turns a
hang into a failure; nothing is timed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

import messenger.api.models as api_models
import messenger.client.groups as client_groups
import messenger.client.net.http as client_http
import messenger.client.sync.inbound as client_inbound
from messenger.mls.group import Group

from .helpers import account_id, texts
from .in_process import InProcessServer

pytestmark = pytest.mark.anyio

#: Bounds every wait: a bug shows as a timeout, not as a hang.
DEADLINE = 20.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def recording(
    threads: dict[str, set[int]], name: str, fn: Callable[..., Any]
) -> Callable[..., Any]:
    """``fn``, noting the thread of each call under ``name``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads.setdefault(name, set()).add(threading.get_ident())
        return fn(*args, **kwargs)

    return wrapper


async def test_mls_work_runs_off_the_event_loop_thread(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, set[int]] = {}
    monkeypatch.setattr(Group, "commit", recording(threads, "commit", Group.commit))
    monkeypatch.setattr(Group, "process", recording(threads, "process", Group.process))
    join = Group.join_from_welcome
    monkeypatch.setattr(Group, "join_from_welcome", staticmethod(recording(threads, "join", join)))
    monkeypatch.setattr(
        client_groups,
        "generate_key_package",
        recording(threads, "key package", client_groups.generate_key_package),
    )
    loop_thread = threading.get_ident()

    alice = await server.client("alice")
    bob = await server.client("bob")
    chat = await alice.create_conversation(await account_id(bob))
    await alice.send_text(chat.id, "off the loop")
    await alice.flush(DEADLINE)
    await asyncio.wait_for(bob.sync(), DEADLINE)
    (bob_chat,) = await bob.conversations()

    assert await texts(bob, bob_chat.id) == ["off the loop"]
    assert set(threads) == {"commit", "process", "join", "key package"}
    for name, seen in threads.items():
        assert loop_thread not in seen, f"{name} ran on the event loop's thread"


async def test_a_message_for_b_is_processed_while_a_commit_for_a_is_in_flight(
    server: InProcessServer,
) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    carol = await server.client("carol")
    a = await alice.create_group("A", [await account_id(bob)])
    b = await alice.create_group("B", [await account_id(carol)])
    await alice.flush(DEADLINE)
    await bob.sync()
    await carol.sync()
    (carol_b,) = await carol.conversations()
    await carol.flush(DEADLINE)  # her profile message
    await alice.sync()
    epoch = await alice.group_epoch(a.id)
    a_group = (await alice.conversation(a.id)).conversation.group_id

    # Alice's commit for A reaches the transport and stays there until released.
    transport = alice._require().transport
    real_commit = transport.commit
    entered, release = asyncio.Event(), asyncio.Event()

    async def stuck_commit(group_id: bytes, payload: bytes, *, sealed: bool) -> Any:
        if group_id == a_group:
            entered.set()
            await release.wait()
        return await real_commit(group_id, payload, sealed=sealed)

    transport.commit = stuck_commit  # type: ignore[method-assign]
    await alice.rename(a.id, "A renamed")
    flushing = asyncio.create_task(alice.flush(DEADLINE))
    try:
        await asyncio.wait_for(entered.wait(), DEADLINE)

        # Carol writes in B; Alice processes it while her commit for A is in flight.
        await carol.send_text(carol_b.id, "hi from B")
        await carol.flush(DEADLINE)
        await asyncio.wait_for(alice.sync(), DEADLINE)
        assert await texts(alice, b.id) == ["hi from B"]
        assert not flushing.done() and await alice.group_epoch(a.id) == epoch
    finally:
        release.set()
        await flushing
    assert (await alice.conversation(a.id)).conversation.title == "A renamed"
    assert await alice.group_epoch(a.id) == (epoch or 0) + 1


async def test_large_answers_and_messages_are_decoded_off_the_event_loop_thread(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queue page with a Welcome to a big group is parsed, and the Welcome decoded,
    off the loop (here every answer and message is "large")."""
    threads: dict[str, set[int]] = {}
    monkeypatch.setattr(client_http, "PARSE_OFF_LOOP_BYTES", 0)
    monkeypatch.setattr(client_inbound, "DECODE_OFF_LOOP_BYTES", 0)
    loads = api_models.FetchResponse.loads.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        api_models.FetchResponse,
        "loads",
        classmethod(recording(threads, "fetch", loads)),
    )
    loop_thread = threading.get_ident()

    alice = await server.client("alice")
    bob = await server.client("bob")
    chat = await alice.create_conversation(await account_id(bob))
    await alice.send_text(chat.id, "parsed off the loop")
    await alice.flush(DEADLINE)
    await asyncio.wait_for(bob.sync(), DEADLINE)
    (bob_chat,) = await bob.conversations()

    assert await texts(bob, bob_chat.id) == ["parsed off the loop"]
    assert threads["fetch"] and loop_thread not in threads["fetch"]
