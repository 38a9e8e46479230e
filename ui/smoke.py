"""The real-window smoke run, switched on by ``MESSENGER_UI_SMOKE=1`` (tests only).

``tests/ui/test_xvfb_smoke.py`` starts ``python -m ui --server URL`` under
Xvfb with this set; instead of waiting for a person, the app then plays one:
it fills in the onboarding screen (server, handle, a random passphrase),
signs up, opens the main window, adds the contact named by
``MESSENGER_UI_SMOKE_TO`` (an address), opens a conversation with them in the
window, sends :data:`MESSAGE`, waits until the server has it, and quits
through the app's own quit. It prints one ``smoke: ...`` line per step. Unset,
nothing here runs; nothing here is imported by the app otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from collections.abc import Callable
from typing import Final, TextIO

from PySide6.QtGui import QGuiApplication

from ui.app import App
from ui.views.onboarding import OnboardingView

__all__ = ["HANDLE", "MESSAGE", "TARGET_ENV", "run"]

#: The address of the account the smoke run writes to.
TARGET_ENV: Final = "MESSENGER_UI_SMOKE_TO"
#: What it sends.
MESSAGE: Final = "Hello from the smoke test"
#: The handle it signs up with.
HANDLE: Final = "smoke"
_TIMEOUT: Final = 120.0


def _step(out: TextIO, text: str) -> None:
    print(f"smoke: {text}", file=out, flush=True)


async def _until(what: str, predicate: Callable[[], object], timeout: float = _TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"smoke: timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def run(
    app: App, args: argparse.Namespace, server_url: str | None, out: TextIO = sys.stdout
) -> int:
    """Drive ``app`` through sign-up and one message; the exit status."""
    target = os.environ.get(TARGET_ENV)
    if not server_url or not target:
        _step(out, f"needs --server and {TARGET_ENV}")
        return 2
    running = asyncio.ensure_future(app.run_until_quit())
    try:
        await _until("the onboarding screen", lambda: isinstance(app.screen, OnboardingView))
        view = app.screen
        assert isinstance(view, OnboardingView)
        await _until("the window to show", view.isVisible)
        _step(out, f"window shown on {QGuiApplication.platformName()}")

        view.server_field.setText(server_url)
        view.server_continue.click()
        await _until("the account step", lambda: view.current_card() is view.account_card)
        view.handle_field.setText(HANDLE)
        view.account_continue.click()
        await _until("the passphrase step", lambda: view.current_card() is view.passphrase_card)
        passphrase = secrets.token_urlsafe(18)
        view.passphrase_fields.first.setText(passphrase)
        view.passphrase_fields.second.setText(passphrase)
        view.create_button.click()
        await _until("the sign-up", lambda: view.current_card() is view.done_card)
        _step(out, "signed up")

        view.start_button.click()
        await _until("the main window", lambda: app.window is not None and app.window.isVisible())
        window, client = app.window, app.client
        assert window is not None and client is not None
        _step(out, "main window shown")

        contact = await client.add_contact(target)
        conversation = await client.create_conversation(contact.account_id)
        window.open_conversation(conversation.id)
        await client.send_text(conversation.id, MESSAGE)
        await client.flush(_TIMEOUT)
        _step(out, "message sent")

        app.quit()
        status = await asyncio.wait_for(running, _TIMEOUT)
        _step(out, f"quit with status {status}")
        return status
    except BaseException as exc:
        _step(out, f"failed: {type(exc).__name__}: {exc}")
        if not running.done():
            app.quit()
            await asyncio.wait_for(running, _TIMEOUT)
        raise
