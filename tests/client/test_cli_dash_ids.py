"""IDs that start with ``-`` on the command line (``messenger-cli unlink -Xy…``).

Servers gave one account or device ID in 64 a leading ``-`` (base64url);
argparse took such an ID for an unknown option, so the device could not be
unlinked from the CLI. New IDs never start with ``-``
(``tests/server/test_registration.py``); old ones are read as arguments.
"""

from __future__ import annotations

import pytest

from messenger.client.cli import _ids_as_positionals, _parser

DASH_ID = "-Xy3_qQ9-ZkLmN0pR7sT2u"
OTHER_DASH_ID = "--b5cD6eF7gH8iJ9kL0mN1"


def parse(*argv: str) -> dict[str, object]:
    return vars(_parser().parse_args(_ids_as_positionals(list(argv))))


def test_a_device_id_starting_with_a_dash_can_be_unlinked() -> None:
    assert len(DASH_ID) == 22
    assert parse("unlink", DASH_ID)["client_id"] == DASH_ID
    assert parse("--profile", "work", "unlink", OTHER_DASH_ID)["client_id"] == OTHER_DASH_ID
    # Without the rewrite argparse refuses it (the bug this guards against).
    with pytest.raises(SystemExit):
        _parser().parse_args(["unlink", DASH_ID])


def test_several_dash_ids_after_the_command() -> None:
    args = parse("add-member", "Trip", DASH_ID, "plain", OTHER_DASH_ID)
    assert args["members"] == [DASH_ID, "plain", OTHER_DASH_ID]


def test_options_and_the_stdin_marker_are_untouched() -> None:
    assert _ids_as_positionals(["send", "Trip", "-"]) == ["send", "Trip", "-"]
    assert _ids_as_positionals(["unlink", "--", DASH_ID]) == ["unlink", "--", DASH_ID]
    # An option after the ID: no "--" (it would turn the option into text).
    argv = ["send-file", "Trip", DASH_ID, "--caption", "hi"]
    assert _ids_as_positionals(argv) == argv
    with pytest.raises(SystemExit):  # a real unknown option is still refused
        parse("unlink", "--bogus")
    with pytest.raises(SystemExit):  # a short ID-like token is not an ID
        parse("unlink", "-abc")
