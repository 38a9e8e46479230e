"""Full-text search over messages: FTS5 queries built from user input.

Whatever the user types is data, never FTS5 syntax. :func:`fts_query`
splits the input on whitespace and quotes each term as an FTS5 string
(``"..."``, with ``"`` doubled), so ``AND``, ``NEAR(``, ``*``, ``^``,
``body:`` and parentheses are matched as text, not obeyed. The quoted terms
are ANDed; the last one is a prefix query (``"ter"*``), for search as you
type. Control characters (which SQLite cannot take in an FTS5 string) are
dropped, and the input is bounded.

The index itself is ``messages_fts`` (schema version 2, :mod:`.migrations`);
the query runs in :meth:`MessageRepository.search
<messenger.client.store.messages.MessageRepository.search>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .messages import Message

__all__ = [
    "HIGHLIGHT_END",
    "HIGHLIGHT_START",
    "MAX_TERMS",
    "SearchHit",
    "fts_query",
]

#: The snippet of a hit marks matched text with these (STX, ETX).
HIGHLIGHT_START: Final = "\x02"
HIGHLIGHT_END: Final = "\x03"

MAX_TERMS: Final = 16
_MAX_TERM_LENGTH: Final = 100
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message that matched, with a snippet of its text around the match."""

    message: Message
    snippet: str


def fts_query(text: str, *, prefix: bool = True) -> str | None:
    """An FTS5 MATCH expression for ``text``, or None if it has nothing to search for.

    For the input ``say OR by`` it gives ``"say" "OR" "by"*``; a ``"`` in a
    term is doubled inside the quotes.
    """
    terms = [
        term[:_MAX_TERM_LENGTH]
        for term in _CONTROL.sub(" ", text).split()
        if any(ch.isalnum() for ch in term)
    ][:MAX_TERMS]
    if not terms:
        return None
    quoted = ['"' + term.replace('"', '""') + '"' for term in terms]
    if prefix:
        quoted[-1] += "*"
    return " ".join(quoted)
