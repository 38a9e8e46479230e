"""The command line's link helpers: the QR code (segno optional) and the progress lines."""

from __future__ import annotations

import io
import sys

import pytest

from messenger.client import LinkProgress, LinkStage
from messenger.client.linking import commands
from messenger.client.linking.code import new_link_code


def test_the_qr_code_when_segno_is_there() -> None:
    pytest.importorskip("segno")
    qr = commands._qr(new_link_code("https://chat.example").uri)
    assert qr is not None and len(qr.splitlines()) > 10


def test_no_qr_code_without_segno(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "segno", None)  # import segno raises ImportError
    assert commands._qr(new_link_code("https://chat.example").uri) is None


def test_progress_lines_are_not_repeated() -> None:
    out = io.StringIO()
    show = commands.LinkProgressPrinter(out)
    for progress in (
        LinkProgress(LinkStage.WAITING_FOR_DEVICE),
        LinkProgress(LinkStage.WAITING_FOR_DEVICE),
        LinkProgress(LinkStage.TRANSFERRING_HISTORY, 0.0),
        LinkProgress(LinkStage.TRANSFERRING_HISTORY, 0.01),
        LinkProgress(LinkStage.TRANSFERRING_HISTORY, 0.55),
        LinkProgress(LinkStage.TRANSFERRING_HISTORY, 1.0),
        LinkProgress(LinkStage.DONE, 1.0),
    ):
        show(progress)
    assert out.getvalue().splitlines() == [
        "Waiting for the other device...",
        "Transferring the history 0%",
        "Transferring the history 50%",
        "Transferring the history 100%",
        "Done.",
    ]
