"""Platform services behind small interfaces, with fakes for tests.

The app reaches the desktop only through :class:`PlatformServices`:
notifications (:mod:`.notifications`), the tray icon (:mod:`.tray`) and
the keyring's state (:mod:`.keyring_state`). :func:`real_services` builds
the real ones (each degrades quietly when the desktop lacks it: no D-Bus,
no tray); :func:`fake_services` builds recording fakes. One instance per
profile is :mod:`.single_instance`, used by ``ui.__main__`` before any of
this exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject

from .keyring_state import FakeKeyringState, KeyringState, KeyringStatus
from .notifications import DesktopNotifier, FakeNotifier, Notifier
from .tray import FakeTray, QtTray, Tray

__all__ = [
    "FakeKeyringState",
    "FakeNotifier",
    "FakeTray",
    "KeyringState",
    "KeyringStatus",
    "Notifier",
    "PlatformServices",
    "Tray",
    "fake_services",
    "real_services",
]


@dataclass(slots=True)
class PlatformServices:
    """What the app uses of the desktop."""

    notifier: Notifier
    tray: Tray
    keyring_state: KeyringState

    def close(self) -> None:
        """Remove what is shown outside the window (the tray icon), let go of D-Bus; at exit."""
        self.tray.close()
        self.notifier.close()


def real_services(parent: QObject | None = None) -> PlatformServices:
    """The desktop's services (a QApplication must exist)."""
    return PlatformServices(
        notifier=DesktopNotifier(parent),
        tray=QtTray(parent),
        keyring_state=KeyringState(),
    )


def fake_services(
    parent: QObject | None = None,
    *,
    tray: bool = True,
    notifications: bool = True,
    keyring: KeyringStatus = KeyringStatus.UNAVAILABLE,
) -> PlatformServices:
    """Recording fakes: :class:`FakeNotifier`, :class:`FakeTray`, :class:`FakeKeyringState`."""
    return PlatformServices(
        notifier=FakeNotifier(parent, available=notifications),
        tray=FakeTray(parent, available=tray),
        keyring_state=FakeKeyringState(keyring),
    )
