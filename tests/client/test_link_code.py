"""The link code: Crockford base32, its normalisation, the URI (docs/devices.md §2)."""

from __future__ import annotations

import pytest

from messenger.client import LinkCode, LinkCodeError, parse_link_code
from messenger.client.linking.code import CODE_CHARACTERS, SECRET_BYTES, new_link_code


def test_a_new_code_has_24_characters_in_six_groups() -> None:
    code = new_link_code("https://chat.example")
    groups = code.text.split("-")
    assert [len(g) for g in groups] == [4] * 6
    assert len(code.secret) == SECRET_BYTES == 15
    assert CODE_CHARACTERS == 24
    assert set(code.text) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ-")


def test_codes_are_fresh() -> None:
    assert len({new_link_code(None).secret for _ in range(50)}) == 50


@pytest.mark.parametrize("server", ["https://chat.example", "http://127.0.0.1:8443"])
def test_round_trips(server: str) -> None:
    code = new_link_code(server)
    assert parse_link_code(code.text, server_url=server) == code
    assert parse_link_code(code.uri) == code
    assert parse_link_code(code.uri).secret == code.secret


def test_all_secret_values_round_trip() -> None:
    for secret in (bytes(15), b"\xff" * 15, bytes(range(15))):
        text = LinkCode(None, _text_of(secret)).text
        assert parse_link_code(text).secret == secret


def _text_of(secret: bytes) -> str:
    value = int.from_bytes(secret, "big")
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(24)))


def test_typed_input_is_normalised() -> None:
    code = new_link_code(None)
    sloppy = " " + code.text.lower().replace("-", " ").replace("1", "l").replace("0", "o") + " "
    assert parse_link_code(sloppy).secret == code.secret
    assert parse_link_code(code.text.replace("-", "")).text == code.text
    assert parse_link_code(code.text.replace("1", "I")).secret == code.secret


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ABCD-EFGH",
        "ABCD-EFGH-JKMN-PQRS-TVWX-YZ01-2345",  # too long
        "ABCD-EFGH-JKMN-PQRS-TVWX-YZ0U",  # U is not Crockford
        "ABCD-EFGH-JKMN-PQRS-TVWX-YZ0*",
        "ABCD-EFGH-JKMN-PQRS-TVWX-YZ0é",
        "x" * 5000,
    ],
)
def test_bad_codes_are_refused_with_a_sentence(text: str) -> None:
    with pytest.raises(LinkCodeError) as info:
        parse_link_code(text)
    assert info.value.user_message.endswith(".")


@pytest.mark.parametrize(
    "uri",
    [
        "messenger://link?code=ABCD-EFGH-JKMN-PQRS-TVWX-YZ01",  # no server
        "messenger://link?server=https%3A%2F%2Fa.example",  # no code
        "messenger://other?server=https%3A%2F%2Fa.example&code=ABCD-EFGH-JKMN-PQRS-TVWX-YZ01",
        "messenger://link?server=ftp%3A%2F%2Fa.example&code=ABCD-EFGH-JKMN-PQRS-TVWX-YZ01",
        "messenger://link?server=https%3A%2F%2Fa.example&code=ABCD-EFGH-JKMN-PQRS-TVWX-YZ01"
        "&code=ABCD-EFGH-JKMN-PQRS-TVWX-YZ02",
        "messenger://link?server=https%3A%2F%2Fa.example&code=ABCD-EFGH-JKMN-PQRS-TVWX-YZ01&x=1",
        "messenger://link/path?server=https%3A%2F%2Fa.example&code=ABCD-EFGH-JKMN-PQRS-TVWX-YZ01",
        "messenger://link?server=https%3A%2F%2Fa.example%2Fpath&code=ABCD-EFGH-JKMN-PQRS-TVWX-YZ01",
    ],
)
def test_bad_uris_are_refused(uri: str) -> None:
    with pytest.raises(LinkCodeError):
        parse_link_code(uri)


def test_the_uri_wins_over_the_typed_server() -> None:
    code = new_link_code("https://a.example")
    assert parse_link_code(code.uri, server_url="https://b.example").server_url == (
        "https://a.example"
    )


def test_the_typed_server_is_normalised() -> None:
    code = new_link_code(None)
    parsed = parse_link_code(code.text, server_url="chat.example")
    assert parsed.server_url == "https://chat.example"
    with pytest.raises(LinkCodeError):
        parse_link_code(code.text, server_url="ftp://chat.example")


def test_a_uri_needs_a_server() -> None:
    with pytest.raises(LinkCodeError):
        _ = new_link_code(None).uri


def test_the_code_stays_out_of_reprs() -> None:
    code = new_link_code("https://a.example")
    assert code.text not in repr(code)
    assert code.text not in str(code)
