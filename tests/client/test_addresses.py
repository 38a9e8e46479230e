"""Contact addresses: handle@server, bare handles, invite links."""

from __future__ import annotations

import pytest

from messenger.client.addresses import (
    ContactAddress,
    check_handle,
    invite_link,
    parse_address,
    same_server,
)
from messenger.client.errors import InvalidAddressError


def test_handle_at_server() -> None:
    assert parse_address("alice@chat.example.org") == ContactAddress("chat.example.org", "alice")
    assert parse_address(" Bob_1@127.0.0.1:8080 ") == ContactAddress("127.0.0.1:8080", "bob_1")
    assert parse_address("carol") == ContactAddress(None, "carol")


def test_invite_link_round_trip() -> None:
    link = invite_link("https://chat.example.org", "AbC-123_x", "alice")
    assert link.startswith("messenger://add?")
    assert parse_address(link) == ContactAddress("https://chat.example.org", "alice", "AbC-123_x")
    anonymous = parse_address(invite_link("http://127.0.0.1:9000", "id1"))
    assert anonymous == ContactAddress("http://127.0.0.1:9000", None, "id1")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a",
        "alice@",
        "al ice@server",
        "alice@ftp://x",
        "-alice",
        "messenger://add?account=x",
        "messenger://add?server=https%3A%2F%2Fx&account=bad%20id",
        "messenger://other?server=https%3A%2F%2Fx&account=id",
    ],
)
def test_bad_addresses_are_refused(text: str) -> None:
    with pytest.raises(InvalidAddressError):
        parse_address(text)


def test_servers_compare_by_host_and_port() -> None:
    assert same_server("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert same_server("https://Chat.Example.org", "chat.example.org")
    assert not same_server("https://chat.example.org", "chat.example.org:8443")
    assert not same_server("https://a.example", "ftp://b")


def test_handles_are_lower_cased_and_checked() -> None:
    assert check_handle("Alice") == "alice"
    with pytest.raises(InvalidAddressError) as info:
        check_handle("x")
    assert "handle" in info.value.user_message
