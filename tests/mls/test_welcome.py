"""RFC 9420 §12.4.3.1: welcome.json -- opening a Welcome, for every suite."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.errors import DecryptionError, ValidationError
from messenger.mls.joining import open_group_info, open_group_secrets
from messenger.mls.key_schedule import epoch_from_joiner_secret
from messenger.mls.messages import MLSMessage
from messenger.mls.transcript import confirmation_tag
from tests.mls.vectors import assert_eq, cases, h


@pytest.mark.parametrize("tc", cases("welcome"))
def test_welcome_vector(tc: dict[str, Any]) -> None:
    suite = get_cipher_suite(tc["cipher_suite"])
    key_package = MLSMessage.from_bytes(h(tc["key_package"])).key_package
    welcome = MLSMessage.from_bytes(h(tc["welcome"])).welcome
    assert_eq("welcome.cipher_suite", welcome.cipher_suite, suite.suite_id)

    group_secrets = open_group_secrets(suite, welcome, key_package, h(tc["init_priv"]))
    assert_eq("group_secrets.psks", group_secrets.psks, ())
    group_info = open_group_info(suite, welcome, group_secrets.joiner_secret, None)
    assert group_info.verify_signature(suite, h(tc["signer_pub"])), "GroupInfo signature"

    context = group_info.group_context
    keys = epoch_from_joiner_secret(suite, group_secrets.joiner_secret, context.to_bytes())
    assert_eq(
        "confirmation_tag",
        confirmation_tag(suite, keys.secrets.confirmation_key, context.confirmed_transcript_hash),
        group_info.confirmation_tag,
    )


def test_welcome_for_someone_else_is_refused() -> None:
    tc = cases("welcome")[0].values[0]
    suite = get_cipher_suite(tc["cipher_suite"])
    key_package = MLSMessage.from_bytes(h(tc["key_package"])).key_package
    welcome = MLSMessage.from_bytes(h(tc["welcome"])).welcome
    other = cases("welcome")[1].values[0]
    other_kp = MLSMessage.from_bytes(h(other["key_package"])).key_package
    with pytest.raises(ValidationError):
        open_group_secrets(suite, welcome, other_kp, h(tc["init_priv"]))
    with pytest.raises(DecryptionError):
        open_group_secrets(suite, welcome, key_package, bytes(len(h(tc["init_priv"]))))
    group_secrets = open_group_secrets(suite, welcome, key_package, h(tc["init_priv"]))
    with pytest.raises(DecryptionError):
        open_group_info(suite, welcome, bytes(suite.hash_len), None)
    assert group_secrets.joiner_secret
