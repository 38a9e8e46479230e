"""The README's run command runs this demo until the app lands: it must work."""

from __future__ import annotations

import pytest

from messenger import mls_demo


def test_demo_runs_and_members_agree(capsys: pytest.CaptureFixture[str]) -> None:
    mls_demo.main()
    out = capsys.readouterr().out
    assert "MEMBERS DISAGREE" not in out
    assert out.count("all members agree") == 4
    assert "bob reads from leaf 0: 'Hello, both of you.'" in out
    assert "same authenticator after restore: True" in out
