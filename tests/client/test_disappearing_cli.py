"""``messenger-cli set-timer`` and the timer in the conversation list (docs/attachments.md §7).

The commands run through the CLI's own parser and dispatcher against
clients of the in-process server.
"""

from __future__ import annotations

import io

import pytest

from messenger.client import InvalidTimerError, MessengerClient
from messenger.client.cli import UsageError, _command, _parser

from .helpers import account_id
from .in_process import InProcessServer

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def cli(client: MessengerClient, *argv: str) -> str:
    args = _parser().parse_args(["--profile", client.profile.name, *argv])
    args.answers = None
    out = io.StringIO()
    assert await _command(client, args, out) == 0
    return out.getvalue()


@pytest.mark.anyio
async def test_set_timer_and_list_it(server: InProcessServer) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    group = await alice.create_group("Trip", [await account_id(bob)])
    await alice.flush(FLUSH)
    await bob.sync()

    await cli(bob, "set-timer", "Trip", "1h")  # by name; bob did not create the group
    await alice.sync()
    listing = await cli(alice, "conversations")
    assert "Trip — disappearing: 1 hour" in listing
    assert (await alice.conversation(group.id)).conversation.disappearing_seconds == 3600
    history = await cli(alice, "history", str(group.id))
    assert "bob set disappearing messages to 1 hour" in history

    await cli(alice, "set-timer", str(group.id), "90s")
    assert "disappearing: 90 seconds" in await cli(alice, "conversations")
    await cli(alice, "set-timer", str(group.id), "off")
    assert "disappearing" not in await cli(alice, "conversations")
    await bob.sync()
    assert "alice turned off disappearing messages" in await cli(bob, "history", "Trip")


@pytest.mark.anyio
async def test_set_timer_refuses_bad_durations(server: InProcessServer) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    group = await alice.create_group("Trip", [await account_id(bob)])
    await alice.flush(FLUSH)
    for text in ("forever", "1y", "5 m", ""):
        with pytest.raises(UsageError, match="duration"):
            await cli(alice, "set-timer", str(group.id), text)
    for text in ("5s", "53w"):  # durations, but out of range: the client's sentence
        with pytest.raises(InvalidTimerError):
            await cli(alice, "set-timer", str(group.id), text)
    assert (await alice.conversation(group.id)).conversation.disappearing_seconds == 0
    queued = await alice._store.run(lambda s: s.db.query_value("SELECT count(*) FROM outbox"))
    assert queued == 0
