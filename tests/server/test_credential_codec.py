"""One ``MessengerCredential`` codec (messenger.api.credential) for client and server."""

from __future__ import annotations

import pytest

from messenger.api import credential as codec
from messenger.api.models import Credential
from messenger.client import identity
from messenger.mls.codec import Writer
from messenger.mls.credentials import Credential as MLSCredential
from messenger.server.mls_frames import _issued_credential

CRED = Credential("acct-1", "client-1", bytes(range(32)), 1_700_000_000_123, bytes(64))


def _mls_codec_encoding(c: Credential) -> bytes:
    """The struct written with the MLS codec (RFC 9420 §2.1), as the two copies did."""
    w = Writer()
    w.u8(1)
    w.opaque(c.account_id.encode("ascii"))
    w.opaque(c.client_id.encode("ascii"))
    w.opaque(c.signature_key)
    w.u64(c.issued_at)
    w.opaque(c.signature)
    return w.getvalue()


@pytest.mark.parametrize("id_len", [1, 63, 64, 300])
def test_encoding_is_the_mls_struct_and_round_trips(id_len: int) -> None:
    c = Credential("a" * id_len, "c" * id_len, CRED.signature_key, CRED.issued_at, CRED.signature)
    data = codec.encode_credential(c)
    assert data == _mls_codec_encoding(c)
    assert codec.decode_credential(data) == c


def test_client_and_server_use_the_one_codec() -> None:
    assert identity.encode_credential is codec.encode_credential
    assert identity.decode_credential is codec.decode_credential
    data = codec.encode_credential(CRED)
    assert _issued_credential(MLSCredential.basic(data)) == CRED


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x02" + codec.encode_credential(CRED)[1:],  # unknown version
        codec.encode_credential(CRED) + b"\x00",  # trailing bytes
        codec.encode_credential(CRED)[:-1],  # truncated
        b"\x01\x40\x01a",  # non-minimal varint length
        b"\x01\xc0",  # reserved varint prefix
        codec.encode_credential(Credential("", "c", CRED.signature_key, 0, CRED.signature)),
        codec.encode_credential(Credential("a", "c", bytes(31), 0, CRED.signature)),
        codec.encode_credential(Credential("a", "c", CRED.signature_key, 0, bytes(63))),
        b"\x01\x01\xff" + codec.encode_credential(CRED)[3:],  # not ASCII
    ],
)
def test_malformed_identities_are_not_credentials(data: bytes) -> None:
    assert codec.decode_credential(data) is None
    assert _issued_credential(MLSCredential.basic(data)) is None
