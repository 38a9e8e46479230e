"""The app's own preferences file: defaults, round trip, damage, file mode."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from ui.preferences import AppPreferences, NotificationContent, PreferencesStore, Theme


def test_defaults_when_missing_or_damaged(tmp_path: Path, qapp: object) -> None:
    assert PreferencesStore(tmp_path).value == AppPreferences()
    (tmp_path / "ui.json").write_text("{not json", encoding="utf-8")
    assert PreferencesStore(tmp_path).value == AppPreferences()
    bad = {"theme": "purple", "notifications": "yes", "lock_after_minutes": -5, "x": 1}
    (tmp_path / "ui.json").write_text(json.dumps(bad), encoding="utf-8")
    assert PreferencesStore(tmp_path).value == AppPreferences()


def test_update_saves_emits_and_round_trips(tmp_path: Path, qapp: object) -> None:
    store = PreferencesStore(tmp_path / "profile")
    seen: list[AppPreferences] = []
    store.changed.connect(seen.append)
    store.update(theme=Theme.DARK, notification_content=NotificationContent.NONE)
    store.update(theme=Theme.DARK)  # no change, no signal
    assert [p.theme for p in seen] == [Theme.DARK]
    path = tmp_path / "profile" / "ui.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = PreferencesStore(tmp_path / "profile").value
    assert again.theme is Theme.DARK
    assert again.notification_content is NotificationContent.NONE
