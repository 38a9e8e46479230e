"""The outbox item's state machine: the table is the only way to move.

:data:`messenger.client.sync.outbox.TRANSITIONS` lists every allowed move of
an item during an attempt; a move it does not list is a bug and raises
:class:`OutboxStateError` (h11's ``_state.py`` is the model). The sender's
behaviour (batches, stale epochs, backoff, refusals) is tested end to end in
``test_attack_outbox_lanes.py``, ``test_sync_in_process.py`` and the
integration tests; this pins the table itself.
"""

from __future__ import annotations

import pytest

from messenger.client.store.outbox import OutboxItem, OutboxKind
from messenger.client.sync.outbox import (
    TRANSITIONS,
    OutboxStateError,
    SendState,
    _Send,
)

ITEM = OutboxItem(
    id=1,
    idempotency_key=b"k" * 16,
    kind=OutboxKind.MESSAGE,
    group_id=b"g",
    message_id=None,
    payload=b"",
    attempts=0,
    next_attempt_at=0,
    last_error=None,
    created_at=0,
)
ENDS = {
    SendState.ACCEPTED,
    SendState.BACKOFF,
    SendState.FAILED,
    SendState.DROPPED,
    SendState.MOVED,
}


def test_every_state_has_a_row_and_the_ends_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(SendState)
    assert {state for state, moves in TRANSITIONS.items() if not moves} == ENDS
    # Every state can be reached from QUEUED, and every attempt can end.
    reached, todo = {SendState.QUEUED}, [SendState.QUEUED]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                todo.append(nxt)
    assert reached == set(SendState)


def test_the_happy_path_and_a_stale_epoch() -> None:
    send = _Send(ITEM)
    for state in (
        SendState.BUILT,
        SendState.IN_FLIGHT,
        SendState.STALE,
        SendState.QUEUED,
        SendState.BUILT,
        SendState.IN_FLIGHT,
        SendState.ACCEPTED,
    ):
        send.to(state)
    assert send.state is SendState.ACCEPTED


@pytest.mark.parametrize(
    ("start", "path", "bad"),
    [
        (SendState.QUEUED, (), SendState.IN_FLIGHT),  # never sent unbuilt
        (SendState.QUEUED, (), SendState.ACCEPTED),
        (SendState.QUEUED, (SendState.BUILT,), SendState.QUEUED),
        (SendState.QUEUED, (SendState.BUILT, SendState.IN_FLIGHT), SendState.BUILT),
        (SendState.QUEUED, (SendState.DROPPED,), SendState.QUEUED),  # an end is an end
        (SendState.QUEUED, (SendState.FAILED,), SendState.ACCEPTED),
        (SendState.QUEUED, (SendState.MOVED,), SendState.BUILT),  # another lane's now
    ],
)
def test_a_move_the_table_does_not_list_raises(
    start: SendState, path: tuple[SendState, ...], bad: SendState
) -> None:
    send = _Send(ITEM, start)
    for state in path:
        send.to(state)
    before = send.state
    with pytest.raises(OutboxStateError):
        send.to(bad)
    assert send.state is before


def test_the_error_that_ended_an_attempt_is_kept() -> None:
    send = _Send(ITEM)
    send.to(SendState.BUILT)
    send.to(SendState.IN_FLIGHT)
    failure = RuntimeError("unreachable")
    send.to(SendState.BACKOFF, failure)
    assert send.error is failure
