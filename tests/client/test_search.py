"""Full-text search: results, ordering, and hostile query strings."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.client.store import HIGHLIGHT_END, HIGHLIGHT_START, Store
from messenger.client.store.search import MAX_TERMS, fts_query

from .helpers import PEER, add_text, direct_conversation

HOSTILE = [
    '"',
    '""',
    '"unbalanced',
    "NEAR(",
    "NEAR(a b",
    "a OR",
    "AND",
    "NOT x",
    "*",
    "^start",
    "body:secret",
    "messages_fts:x",
    "(",
    ")",
    "a) OR (b",
    "{body}: x",
    "-x",
    "x'0102'",
    "'; DROP TABLE messages; --",
    "\x00",
    "nul\x00inside",
    "\u202e\u200b",
    "🦄" * 50,
    "a" * 10_000,
    " ".join(["word"] * 500),
    "\\",
    "%_",
]


@pytest.fixture
def seeded(store: Store) -> Store:
    conversation = direct_conversation(store)
    other = direct_conversation(store, "other")
    for body in [
        "Let's meet at the café tomorrow",
        "The cafe is closed on Mondays",
        "Bring the OR report and the AND report",
        'She said "hello" and left',
        "Totally unrelated",
        "a) OR (b is not a query here",
    ]:
        add_text(store, conversation.id, body)
    add_text(store, other.id, "café in the other conversation")
    return store


def _bodies(store: Store, query: str, **kwargs: int) -> list[str | None]:
    return [hit.message.body for hit in store.messages.search(query, **kwargs)]


def test_search_finds_all_terms_newest_first(seeded: Store) -> None:
    assert _bodies(seeded, "cafe") == [
        "café in the other conversation",
        "The cafe is closed on Mondays",
        "Let's meet at the café tomorrow",
    ]
    assert _bodies(seeded, "café tomorrow") == ["Let's meet at the café tomorrow"]
    assert _bodies(seeded, "cafe", limit=1) == ["café in the other conversation"]
    assert _bodies(seeded, "nothing-like-this") == []


def test_last_term_is_a_prefix(seeded: Store) -> None:
    assert _bodies(seeded, "Mond") == ["The cafe is closed on Mondays"]
    assert _bodies(seeded, "Mond closed") == []  # only the last term is a prefix


def test_search_within_a_conversation(seeded: Store) -> None:
    first = seeded.conversations.direct_with(PEER)
    assert first is not None
    assert _bodies(seeded, "cafe", conversation_id=first.id) == [
        "The cafe is closed on Mondays",
        "Let's meet at the café tomorrow",
    ]


def test_operators_are_searched_as_words(seeded: Store) -> None:
    assert _bodies(seeded, "OR report") == ["Bring the OR report and the AND report"]
    assert _bodies(seeded, '"hello"') == ['She said "hello" and left']
    assert _bodies(seeded, "a) OR (b") == ["a) OR (b is not a query here"]
    # NOT is a word, not negation: nothing contains it.
    assert _bodies(seeded, "cafe NOT") == []


def test_snippet_highlights_the_match(seeded: Store) -> None:
    [hit] = seeded.messages.search("Mondays")
    assert f"{HIGHLIGHT_START}Mondays{HIGHLIGHT_END}" in hit.snippet


def test_edits_and_deletes_update_the_index(store: Store) -> None:
    conversation = direct_conversation(store)
    message = add_text(store, conversation.id, "original wording")
    store.messages.edit(conversation.id, message.uid, editor_account_id=PEER, body="new text", at=1)
    assert _bodies(store, "original") == []
    assert _bodies(store, "new") == ["new text"]
    store.messages.delete_for_everyone(conversation.id, message.uid, by_account_id=PEER, at=2)
    assert _bodies(store, "new") == []
    again = add_text(store, conversation.id, "new again")
    store.messages.remove(again.id)
    assert _bodies(store, "new") == []
    store.db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_neither_fail_nor_widen(seeded: Store, query: str) -> None:
    hits = seeded.messages.search(query)
    for hit in hits:
        assert hit.message.body is not None
    # Nothing matches "everything": the unrelated row never comes back.
    assert "Totally unrelated" not in [h.message.body for h in hits]
    assert seeded.db.query_value("SELECT count(*) FROM messages") == 7


def test_fts_query_quotes_every_term() -> None:
    assert fts_query("hello world") == '"hello" "world"*'
    assert fts_query("hello world", prefix=False) == '"hello" "world"'
    assert fts_query('say "hi"') == '"say" """hi"""*'
    assert fts_query("NEAR(a b)") == '"NEAR(a" "b)"*'
    assert fts_query("   ") is None
    assert fts_query("!!! ???") is None
    assert fts_query("a\x00b") == '"a" "b"*'
    query = fts_query(" ".join(f"t{i}" for i in range(100)))
    assert query is not None and query.count('"') == 2 * MAX_TERMS


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_any_text_is_a_safe_query(seeded: Store, query: str) -> None:
    seeded.messages.search(query)
