"""A queue's sequence numbers, and what a copy of the database can read from them.

Clients fetch after, and ack up to, numbers the server gave them; they never
compute one, and they take a jump in the numbers in their stride (a restore
already makes one, :data:`.admin.RESTORE_SEQ_GAP`). The server needs the
entries a queue holds to be consecutive, from its oldest to ``next_seq - 1``
(the length limit counts them so), and the numbers to grow. Nothing needs a
queue to count from 1, nor to count on from where it was once it is empty.
So (docs/metadata.md §2):

* **A random origin.** A new queue starts at :func:`seq_origin`, not at 1,
  so its ``next_seq`` does not tell a copy of the database how many messages
  it ever got, nor count in step with the queues that joined the same groups
  at the same time.
* **A random jump once emptied.** When an ack empties a queue, its next
  number jumps ahead by a random step (:func:`seq_after_emptied`). Two
  copies made at different times show how far each queue's numbers moved in
  between; without the jumps that is how many messages it got, and the
  queues that got the same messages moved by the same amount. With them, a
  queue its client emptied in between moved by its count plus a sum of
  random steps, most of them far larger than the count.
* **Queues from before** (server migration 18) counted from 1. One that is
  empty moves to an origin: at its next ack that empties it, or by the
  ``seq_origins`` task (:func:`move_empty_batch`), which the server runs at
  start and then at every retention sweep until no queue counts from below
  the origins (a queue whose entries wait moves once they are acked, or
  once retention drops them).
"""

from __future__ import annotations

import secrets
from typing import Final

from .storage import Tx

__all__ = [
    "SEQ_JUMP_CEILING",
    "SEQ_JUMP_SPAN",
    "SEQ_ORIGIN_MIN",
    "SEQ_ORIGIN_SPAN",
    "below_origins",
    "move_empty_batch",
    "seq_after_emptied",
    "seq_origin",
]

#: A new queue's first sequence number is drawn from [2^42, 2^43): a span
#: far wider than any queue's count of messages, above every plausible time
#: in seconds or milliseconds (so no one reads it as one), far below the 2^53
#: a JSON number holds exactly, with room for the 2^32 a restore adds
#: (:data:`.admin.RESTORE_SEQ_GAP`). Queues from before count from 1.
SEQ_ORIGIN_MIN: Final = 1 << 42
SEQ_ORIGIN_SPAN: Final = 1 << 42
#: An emptied queue's numbers jump ahead by 1 to 2^20 (about a million): far
#: more than the messages a queue gets between two acks; a queue emptied
#: every second for 270 years would reach :data:`SEQ_JUMP_CEILING`.
SEQ_JUMP_SPAN: Final = 1 << 20
#: Above 2^52 numbers no longer jump (they still grow by one a message), so
#: that they stay below the 2^53 of a JSON number.
SEQ_JUMP_CEILING: Final = 1 << 52
#: Queues looked at per transaction by the ``seq_origins`` task.
_BATCH: Final = 500


def seq_origin() -> int:
    """A fresh queue's ``next_seq``: a random origin (see the module docstring)."""
    return SEQ_ORIGIN_MIN + secrets.randbelow(SEQ_ORIGIN_SPAN)


def seq_after_emptied(next_seq: int) -> int:
    """The ``next_seq`` of a queue that held entries up to ``next_seq - 1`` and is now empty.

    Always larger than ``next_seq`` unless numbers reached
    :data:`SEQ_JUMP_CEILING`: every client's cursor is below it, so the next
    message is still after every cursor. A queue from before the origins
    moves to one.
    """
    if next_seq < SEQ_ORIGIN_MIN:
        return seq_origin()
    if next_seq >= SEQ_JUMP_CEILING:
        return next_seq
    return next_seq + 1 + secrets.randbelow(SEQ_JUMP_SPAN)


async def move_empty_batch(tx: Tx, after: str) -> tuple[int, str | None]:
    """Move the empty queues counting from below the origins, of the next batch after ``after``.

    Looks at up to 500 such queues with IDs above ``after``, in ID order,
    and locks them (on PostgreSQL) in that order, the order every append
    uses, so that no message lands in one between the check that it is
    empty and its move. Returns how many moved and the last queue ID looked
    at, or None when there were none left to look at.
    """
    rows = await tx.fetchall(
        "SELECT queue_id, next_seq FROM queues WHERE queue_id > ? AND next_seq < ? "  # noqa: S608
        "ORDER BY queue_id LIMIT ?" + tx.for_update,
        after,
        SEQ_ORIGIN_MIN,
        _BATCH,
    )
    if not rows:
        return 0, None
    ids = [str(r[0]) for r in rows]
    marks = ", ".join("?" * len(ids))
    held = {
        str(r[0])
        for r in await tx.fetchall(
            f"SELECT DISTINCT queue_id FROM queue_entries WHERE queue_id IN ({marks})",  # noqa: S608
            *ids,
        )
    }
    moves = [(seq_after_emptied(int(n)), str(q)) for q, n in rows if str(q) not in held]
    if moves:
        await tx.executemany("UPDATE queues SET next_seq = ? WHERE queue_id = ?", moves)
    return len(moves), ids[-1]


async def below_origins(tx: Tx) -> bool:
    """Whether a queue still counts from below the origins (one from before)."""
    row = await tx.fetchone("SELECT 1 FROM queues WHERE next_seq < ? LIMIT 1", SEQ_ORIGIN_MIN)
    return row is not None
