"""The contract in messenger.api: validation, errors, signing, proof of work."""

from __future__ import annotations

import dataclasses

import pytest

import messenger.api
import messenger.server
from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import HTTP_STATUS, ApiError, ErrorCode
from messenger.api.fields import b64decode, b64encode
from messenger.api.padding import pad
from messenger.api.pow import leading_zero_bits, pow_digest, pow_ok, solve_pow
from messenger.api.signing import canonical_request, credential_tbs, possession_message


def test_public_surface_is_pinned() -> None:
    assert messenger.api.__all__ == [
        "HTTP_STATUS",
        "ApiError",
        "ErrorCode",
        "b64decode",
        "b64encode",
    ]
    assert messenger.server.__all__ == ["ConfigError", "ServerConfig", "create_app", "load_config"]


@pytest.mark.parametrize("data", [b"", b"\x00", b"ab", b"abc", bytes(range(256))])
def test_base64url_round_trip(data: bytes) -> None:
    text = b64encode(data)
    assert "=" not in text
    assert b64decode(text) == data


@pytest.mark.parametrize("text", ["YQ==", "a+b/", "YR", "A", "a b", "YW\n"])
def test_base64url_refuses_non_canonical(text: str) -> None:
    with pytest.raises(ValueError):
        b64decode(text)


def test_every_error_code_has_a_status() -> None:
    assert set(HTTP_STATUS) == set(ErrorCode)
    assert all(400 <= s < 600 for s in HTTP_STATUS.values())
    assert HTTP_STATUS[ErrorCode.STALE_EPOCH] == 409
    assert {HTTP_STATUS[c] for c in ErrorCode if c.value.startswith("auth_")} == {401}


def test_api_error_round_trips_through_json() -> None:
    error = ApiError(ErrorCode.STALE_EPOCH, "the group is at epoch 4", {"current_epoch": 4})
    back = ApiError.from_json(error.to_json(), 409)
    assert (back.code, back.message, back.details, back.status) == (
        ErrorCode.STALE_EPOCH,
        "the group is at epoch 4",
        {"current_epoch": 4},
        409,
    )


def test_api_error_from_unexpected_bodies() -> None:
    assert ApiError.from_json("oops", 502).code is ErrorCode.INTERNAL
    assert ApiError.from_json({"error": {"code": "new_code"}}, 400).code is ErrorCode.INVALID_FIELD


def test_models_declare_exactly_their_fields() -> None:
    for name in m.__all__:
        model = getattr(m, name)
        if isinstance(model, type) and issubclass(model, m.Model) and model is not m.Model:
            declared = [f.name for f in dataclasses.fields(model)]
            assert [f.name for f in model.FIELDS] == declared, name


def _register_json(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "signature_key": b64encode(b"k" * 32),
        "challenge": b64encode(b"c" * 41),
        "pow_nonce": 7,
        "proof": b64encode(b"p" * 64),
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_request_model_parses_valid_json() -> None:
    req = m.RegisterRequest.from_json(_register_json(handle="alice"))
    assert req.signature_key == b"k" * 32 and req.handle == "alice" and req.invite_code is None
    assert m.RegisterRequest.from_json(req.to_json()) == req


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"signature_key": b64encode(b"k" * 31)}, "signature_key"),
        ({"signature_key": "a+" * 20}, "signature_key"),
        ({"pow_nonce": True}, "pow_nonce"),
        ({"pow_nonce": 1.5}, "pow_nonce"),
        ({"pow_nonce": -1}, "pow_nonce"),
        ({"pow_nonce": 2**64}, "pow_nonce"),
        ({"proof": None}, "proof"),
        ({"handle": "Alice"}, "handle"),
        ({"handle": "ab"}, "handle"),
        ({"extra": 1}, "extra"),
        ({"invite_code": 12345678}, "invite_code"),
    ],
)
def test_request_model_names_the_bad_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ApiError) as info:
        m.RegisterRequest.from_json(_register_json(**changes))
    assert info.value.code is ErrorCode.INVALID_FIELD
    assert info.value.details["field"] == field


def test_nested_and_list_fields_name_their_path() -> None:
    commit = b64encode(pad(b"\x00\x01commit"))  # a well-formed envelope
    with pytest.raises(ApiError) as info:
        m.CommitRequest.from_json({"epoch": 1, "commit": commit, "members": ["A" * 22, "short"]})
    assert info.value.details["field"] == "members[1]"
    with pytest.raises(ApiError) as info:
        m.CommitRequest.from_json({"epoch": 1, "commit": commit, "members": ["A" * 22] * 2})
    assert info.value.details["field"] == "members"


def test_responses_ignore_unknown_fields() -> None:
    assert m.AckResponse.from_json({"deleted": 3, "added_later": True}) == m.AckResponse(3)


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"a": 1, "a": 2}', b'{"a": NaN}', b"\xff\xfe", b"[" * 100_000, b""],
)
def test_malformed_json_is_one_typed_error(body: bytes) -> None:
    with pytest.raises(ApiError) as info:
        m.AckRequest.loads(body)
    assert info.value.code is ErrorCode.MALFORMED_JSON


def test_json_that_is_not_an_object() -> None:
    with pytest.raises(ApiError) as info:
        m.AckRequest.loads(b"[1]")
    assert info.value.code is ErrorCode.INVALID_FIELD


def test_canonical_request_covers_every_part() -> None:
    base = ("POST", "/v1/queue/ack", "c" * 22, 1000, "n" * 22, b"{}")
    reference = canonical_request(*base)
    for i, other in enumerate(("PUT", "/v1/queue/ack?x", "d" * 22, 1001, "m" * 22, b"{ }")):
        changed = list(base)
        changed[i] = other
        assert canonical_request(*changed) != reference  # type: ignore[arg-type]
    assert reference.startswith(b"messenger-request-v1\nPOST\n/v1/queue/ack\n")


def test_signed_formats_are_domain_separated() -> None:
    assert possession_message(b"ctx", b"k").startswith(b"messenger-possession-v1\n")
    assert credential_tbs("a", "c", b"k", 1).startswith(b"messenger-credential-v1\n")


def test_proof_of_work() -> None:
    nonce = solve_pow(b"challenge", b"key", 10)
    assert pow_ok(b"challenge", b"key", nonce, 10)
    assert leading_zero_bits(pow_digest(b"challenge", b"key", nonce)) >= 10
    assert not pow_ok(b"challenge", b"other key", nonce, 30)
    assert not pow_ok(b"challenge", b"key", -1, 0)
    assert leading_zero_bits(b"\x00\x01") == 15
    assert pow_ok(b"c", b"k", 0, 0)


def test_group_paths() -> None:
    assert r.group_path(r.GROUP_MESSAGES, b"\xff\x00") == "/v1/groups/_wA/messages"


def test_routes_are_unique() -> None:
    keys = [(route.method, route.path) for route in r.ROUTES]
    assert len(keys) == len(set(keys))
