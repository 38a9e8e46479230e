"""Determinate progress for sign-up, backup export and restore.

From the bottom up: :func:`messenger.api.pow.solve_pow` reports its
attempts every ``PROGRESS_INTERVAL``; a real client's ``create_account``
turns them into an estimate that only grows and ends at 1.0, delivered on
the event loop; a real export and restore report fractions ending at 1.0;
and the fractions reach the bars of onboarding and settings (with the fake
client, which reports fixed steps and then waits at a gate so that the bar
can be looked at), an estimate never showing 100% before the work is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from messenger.api.pow import (
    PROGRESS_INTERVAL,
    estimated_fraction,
    expected_attempts,
    pow_ok,
    solve_pow,
)
from messenger.client import ClientOptions, MessengerClient, Profiles, restore_backup
from messenger.client.store import Keychain
from messenger.server import ServerConfig, create_app
from tests.client.helpers import FAST_KDF, PASSPHRASE, MemoryKeyring
from tests.client.in_process import in_process_server
from tests.ui.conftest import wait_until
from tests.ui.fake_client import FakeClient
from ui.local_server import LocalServerStarter
from ui.preferences import PreferencesStore
from ui.views.onboarding import OnboardingView
from ui.views.settings import SettingsDialog
from ui.widgets.progress import ESTIMATE_CAP, STEPS, ProgressIndicator, progress_caption

KEY = bytes(range(32))


def _challenge_needing(difficulty: int, reports: int) -> tuple[bytes, int]:
    """A challenge whose first solution takes at least ``reports`` progress intervals."""
    for i in range(1000):
        challenge = f"challenge-{i}".encode()
        nonce = solve_pow(challenge, KEY, difficulty)
        if nonce >= reports * PROGRESS_INTERVAL:
            return challenge, nonce
    raise AssertionError("no such challenge in 1000 tries")


def test_solve_pow_reports_attempts_at_each_interval() -> None:
    challenge, nonce = _challenge_needing(15, 2)
    seen: list[tuple[int, int]] = []
    threads: set[int] = set()

    def progress(attempts: int, expected: int) -> None:
        seen.append((attempts, expected))
        threads.add(threading.get_ident())

    assert solve_pow(challenge, KEY, 15, progress=progress) == nonce
    assert pow_ok(challenge, KEY, nonce, 15)
    intervals = range(1, nonce // PROGRESS_INTERVAL + 1)
    assert seen == [(PROGRESS_INTERVAL * k, 2**15) for k in intervals]
    assert threads == {threading.get_ident()}  # on the solving thread, not marshalled


def test_the_estimate_grows_and_stays_below_one() -> None:
    expected = expected_attempts(20)
    assert expected == 2**20
    values = [estimated_fraction(a, expected) for a in range(0, 8 * expected, expected // 4)]
    assert values[0] == 0.0
    assert all(a < b for a, b in itertools.pairwise(values))
    assert all(v < 1.0 for v in values)
    assert estimated_fraction(expected, expected) == pytest.approx(0.632, abs=0.001)
    assert estimated_fraction(5, 1) == 1.0  # difficulty 0: nothing to estimate


@contextlib.asynccontextmanager
async def pow_server(root: Path, difficulty: int) -> AsyncIterator[httpx.AsyncBaseTransport]:
    """A real server app (in process) asking for ``difficulty`` bits of work."""
    data = root / "server"
    config = ServerConfig(
        data_dir=data,
        database_url=f"sqlite:///{data / 'messenger.db'}",
        pow_difficulty=difficulty,
        ip_requests_per_minute=1_000_000,
        account_requests_per_minute=1_000_000,
        registrations_per_ip_per_hour=1_000_000,
    )
    app = create_app(config, run_sweeper=False)
    async with app.router.lifespan_context(app):
        yield httpx.ASGITransport(app=app)


def test_create_account_progress_grows_on_the_loop_and_ends_at_one(
    run: Any, tmp_path: Path
) -> None:
    async def sign_up(transport: httpx.AsyncBaseTransport, name: str) -> list[float]:
        client = await MessengerClient.create(
            name,
            PASSPHRASE,
            data_dir=tmp_path / "clients" / name,
            keychain=Keychain(backend=MemoryKeyring()),
            kdf=FAST_KDF,
            options=ClientOptions(http_transport=transport, timeout=30.0),
        )
        loop_thread = threading.get_ident()
        seen: list[float] = []
        threads: set[int] = set()

        def progress(fraction: float) -> None:
            seen.append(fraction)
            threads.add(threading.get_ident())

        try:
            info = await client.create_account("http://127.0.0.1:8000", name, progress=progress)
        finally:
            await client.close()
        assert info.handle == name
        assert threads == {loop_thread}
        assert seen[0] == 0.0 and seen[-1] == 1.0
        assert all(a < b for a, b in itertools.pairwise(seen))
        assert all(0.0 <= f < 1.0 for f in seen[:-1])
        return seen

    async def body() -> None:
        # 2**18 attempts on average, a report every 2**14: a sign-up reports
        # estimates between its start and its end unless the server's random
        # challenge is solved within the first 2**14 attempts (about 6%), so
        # up to four sign-ups are tried for one that shows them.
        async with pow_server(tmp_path, 18) as transport:
            for i in range(4):
                seen = await sign_up(transport, f"pat{i}")
                if len(seen) > 2:
                    break
            assert len(seen) > 2, "four sign-ups all solved in the first interval"

    run(body(), timeout=120)


def test_export_and_restore_report_fractions_ending_at_one(run: Any, tmp_path: Path) -> None:
    async def body() -> None:
        async with in_process_server(tmp_path) as server:
            client = await server.client("rae")
            group = await client.create_group("notes")
            await client.send_text(group.id, "hello")
            loop_thread = threading.get_ident()
            exported: list[float] = []
            threads: set[int] = set()

            def on_export(fraction: float) -> None:
                exported.append(fraction)
                threads.add(threading.get_ident())

            backup = tmp_path / "rae.msgbackup"
            await client.backup(backup, "backup passphrase", kdf=FAST_KDF, progress=on_export)
            await wait_until(lambda: exported and exported[-1] == 1.0)
            assert threads == {loop_thread}  # marshalled from the store's thread
            assert exported == sorted(exported) and len(exported) >= 3
            assert all(0.0 < f < 1.0 for f in exported[:-1])

        restored: list[float] = []
        profile = await asyncio.to_thread(
            restore_backup,
            backup,
            "backup passphrase",
            Profiles(tmp_path / "restored"),
            "rae",
            PASSPHRASE,
            keychain=Keychain(backend=MemoryKeyring()),
            kdf=FAST_KDF,
            progress=restored.append,
        )
        assert profile.name == "rae"
        assert restored[-1] == 1.0 and restored == sorted(restored) and len(restored) >= 4

    run(body(), timeout=120)


# -- the indicator ----------------------------------------------------------------------


def test_the_indicator_caps_an_estimate_and_speaks_its_caption(qtbot: Any) -> None:
    indicator = ProgressIndicator("Creating your account", estimate=True)
    qtbot.addWidget(indicator)
    assert indicator.bar.maximum() == 0  # busy before the first report
    assert indicator.caption.isHidden()
    indicator.set_fraction(0.6)
    assert indicator.bar.maximum() == STEPS and indicator.bar.value() == 600
    assert indicator.caption.text() == "About 60% (estimate)" and not indicator.caption.isHidden()
    assert indicator.bar.accessibleDescription() == "About 60% (estimate)"
    indicator.set_fraction(0.9999)
    assert indicator.fraction == ESTIMATE_CAP and indicator.bar.value() < STEPS
    indicator.set_fraction(1.0)
    assert indicator.bar.value() == STEPS and indicator.caption.text() == "Done"
    indicator.reset(estimate=False)
    assert indicator.bar.maximum() == 0
    indicator.set_fraction(0.42)
    assert indicator.caption.text() == "42%" == progress_caption(0.42, estimate=False)


def test_sign_up_progress_reaches_the_bar(run: Any, tmp_path: Path, qtbot: Any) -> None:
    client = FakeClient(has_account=False)
    client.progress_gate = asyncio.Event()
    view = OnboardingView(
        tmp_path,
        "me",
        LocalServerStarter(tmp_path / "unused"),
        client=client,  # type: ignore[arg-type]  # a first run that stopped before sign-up
    )
    qtbot.addWidget(view)
    view.resize(1000, 700)
    view.show()

    async def body() -> None:
        view.server_field.setText("https://chat.example.org")
        view.server_continue.click()
        assert view.current_card() is view.account_card
        view.account_continue.click()
        bar = view.signup_progress
        await wait_until(lambda: bar.fraction == 0.75)
        assert view.current_card() is view.working_card
        assert bar.isVisibleTo(view) and bar.bar.value() == 750
        assert bar.caption.text() == "About 75% (estimate)"
        assert client.progress_gate is not None
        client.progress_gate.set()
        await wait_until(lambda: view.current_card() is view.done_card)
        assert bar.fraction == 1.0

    run(body())


def test_backup_export_progress_reaches_the_bar(run: Any, tmp_path: Path, qtbot: Any) -> None:
    client = FakeClient()
    client.progress_gate = asyncio.Event()
    dialog = SettingsDialog(client, PreferencesStore(tmp_path))  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()

    async def body() -> None:
        dialog.show_section("Backup")
        dialog.backup_fields.first.setText("backup passphrase")
        dialog.backup_fields.second.setText("backup passphrase")
        dialog.export_backup(tmp_path / "b.msgbackup")
        bar = dialog.backup_busy
        await wait_until(lambda: bar.fraction == 0.75)
        assert bar.isVisibleTo(dialog) and bar.caption.text() == "75%"  # bytes: not an estimate
        assert not dialog.export_button.isEnabled()
        assert client.progress_gate is not None
        client.progress_gate.set()
        await wait_until(lambda: dialog.backup_done.isVisibleTo(dialog))
        assert not bar.isVisibleTo(dialog) and dialog.export_button.isEnabled()

    run(body())
