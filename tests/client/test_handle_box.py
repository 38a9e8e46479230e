"""The handle's contact box (messenger/client/handle_box.py, docs/metadata.md §1)."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from messenger.api.contact_token import CONTACT_BOX_BYTES
from messenger.api.errors import ApiError
from messenger.api.fields import b64encode
from messenger.api.models import RegisterRequest
from messenger.client import handle_box as hb
from messenger.client.handle_box import open_handle_box, seal_handle_box


def test_a_box_opens_with_its_handle_alone() -> None:
    token = secrets.token_bytes(32)
    box = seal_handle_box(token, "alice")
    assert len(box) == CONTACT_BOX_BYTES == 77
    assert open_handle_box(box, "alice") == token
    assert open_handle_box(box, "alicf") is None
    # Each box has a salt and a nonce of its own.
    again = seal_handle_box(token, "alice")
    assert again[1:17] != box[1:17] and again[17:29] != box[17:29]


@pytest.mark.parametrize(
    "junk",
    [b"", b"\x01" * (CONTACT_BOX_BYTES - 1), b"\x02" + b"\x00" * (CONTACT_BOX_BYTES - 1)],
)
def test_junk_does_not_open(junk: bytes) -> None:
    assert open_handle_box(junk, "alice") is None


@pytest.mark.parametrize("where", [0, 1, 20, 40, CONTACT_BOX_BYTES - 1])
def test_a_changed_box_does_not_open(where: int) -> None:
    box = bytearray(seal_handle_box(secrets.token_bytes(32), "alice"))
    box[where] ^= 1
    assert open_handle_box(bytes(box), "alice") is None


def test_the_key_is_memory_hard_and_salted_per_box(monkeypatch: pytest.MonkeyPatch) -> None:
    """The box's key is scrypt's, with a salt of its own: a guess of the handle
    costs one scrypt per box tried."""
    calls: list[dict[str, object]] = []
    real = hashlib.scrypt

    def counted(password: bytes, **kwargs: object) -> bytes:
        calls.append({"password": password, **kwargs})
        return real(password, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hb.hashlib, "scrypt", counted)
    box = seal_handle_box(secrets.token_bytes(32), "alice")
    (call,) = calls
    assert call["password"] == b"alice"
    assert call["n"] == 2**14 and call["r"] == 8
    assert isinstance(call["salt"], bytes) and call["salt"].endswith(box[1:17])


def test_a_token_of_another_length_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        seal_handle_box(b"short", "alice")


def test_a_registration_gives_a_box_only_with_a_handle() -> None:
    base = {
        "signature_key": "A" * 43,
        "challenge": "AAAA",
        "pow_nonce": 0,
        "proof": "A" * 86,
    }
    box = seal_handle_box(secrets.token_bytes(32), "alice")
    parsed = RegisterRequest.from_json({**base, "handle": "alice", "contact_box": b64encode(box)})
    assert parsed.contact_box == box
    with pytest.raises(ApiError) as refused:
        RegisterRequest.from_json({**base, "contact_box": b64encode(box)})
    assert refused.value.details == {"field": "contact_box"}
