"""Settings: small key/value pairs with JSON values.

For state that is one value per profile and needs no table of its own,
such as the delivery queue's cursor or UI preferences. Values are stored as
JSON text, so they keep their type (int, str, bool, list, dict, None).

Two of them make a restored backup take its device over
(:mod:`messenger.client.takeover`): :data:`TAKEOVER_PENDING`, written by
the restore, and :data:`DEVICE_TOKEN`, this copy's device token once it has
taken over (hex: the store is encrypted, and the server keeps only a hash).
"""

from __future__ import annotations

import json

from .database import Database

__all__ = [
    "CONTACT_CURSOR",
    "CONTACT_KEY_PACKAGES_OWED",
    "CONTACT_KILL_HASH_GIVEN",
    "CONTACT_QUEUE",
    "DEVICE_TOKEN",
    "HANDLE_CONTACT_BOX",
    "INSECURE_HTTP_ALLOWED",
    "MOVES_WAITING",
    "QUEUE_KEY",
    "TAKEOVER_PENDING",
    "JsonValue",
    "SettingsRepository",
]

#: Set by a restore: on its first connection this copy takes the device over.
TAKEOVER_PENDING = "device.takeover_pending"
#: This copy's device token (hex), sent with every request once it took over.
DEVICE_TOKEN = "device.token"  # noqa: S105 - a setting's name
#: This client's queue key and whether the server has it (hex, in the
#: encrypted store; ``messenger/client/queue_keys.py``).
QUEUE_KEY = "queue.key"
#: This client's contact queue: its key (hex) and, once the server made it,
#: its ID (``messenger/client/contact_queue.py``).
CONTACT_QUEUE = "queue.contact"
#: Set (True) once the server has the contact queue's kill hash, so that it
#: keeps no row naming the queue (``messenger/client/contact_queue.py``); a
#: contact queue made before is asked for again once with it.
CONTACT_KILL_HASH_GIVEN = "queue.contact_kill_hash_given"
#: The handle whose contact box the server has (``messenger/client/contact_tokens.py``):
#: a handle set before contact tokens, or by the registration, is set again
#: once with its box.
HANDLE_CONTACT_BOX = "handle.contact_box"
#: The last sequence number of the contact queue processed.
CONTACT_CURSOR = "sync.contact_cursor"
#: Set (True) when the contact queue is made, until a whole new set of
#: KeyPackages naming it is up (``messenger/client/sync/key_packages.py``).
CONTACT_KEY_PACKAGES_OWED = "queue.contact_key_packages_owed"
#: The moves off the contact queue that wait their turn: group ID (base64url)
#: to ``{"at": deadline (ms), "before": [[leaf index, encryption key], ...]}``
#: (``messenger/client/sync/move_turns.py``).
MOVES_WAITING = "queue.moves_waiting"
#: The user chose, at sign-up, to reach this account's server over plain
#: ``http://`` although it is not this computer (``create_account``'s
#: ``allow_insecure_http``); every later connection honours that choice.
INSECURE_HTTP_ALLOWED = "server.insecure_http_allowed"

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


class SettingsRepository:
    """Key/value settings."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        """The value of ``key``, or ``default`` if it is not set."""
        text = self._db.query_value("SELECT value FROM settings WHERE key = ?", (key,))
        if text is None:
            return default
        value: JsonValue = json.loads(text)
        return value

    def get_int(self, key: str, default: int = 0) -> int:
        """An integer setting (``default`` if unset or not an integer)."""
        value = self.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return default

    def set(self, key: str, value: JsonValue) -> None:
        """Set ``key`` to ``value`` (anything JSON can hold)."""
        self._db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, separators=(",", ":"))),
        )

    def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was set."""
        return self._db.execute("DELETE FROM settings WHERE key = ?", (key,)).rowcount > 0

    def device_token(self) -> bytes | None:
        """This copy's device token, if it took its device over."""
        value = self.get(DEVICE_TOKEN)
        if not isinstance(value, str):
            return None
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None

    def takeover_pending(self) -> bool:
        """Whether this copy (a restored backup) must still take its device over."""
        return self.get(TAKEOVER_PENDING) is True

    def took_over(self, token: bytes) -> None:
        """Record a completed takeover: keep ``token``, clear the pending flag."""
        self.set(DEVICE_TOKEN, token.hex())
        self.delete(TAKEOVER_PENDING)

    def queue_key(self) -> tuple[bytes | None, bool]:
        """This client's queue key (raw Ed25519 private key, or None), and whether
        the server has it (``messenger/client/queue_keys.py``)."""
        value = self.get(QUEUE_KEY)
        private = _private_key(value)
        if private is None or not isinstance(value, dict):
            return None, False
        return private, value.get("given") is True

    def set_queue_key(self, private: bytes, *, given: bool) -> None:
        """Keep ``private`` as this client's queue key; ``given``: the server has it."""
        self.set(QUEUE_KEY, {"key": private.hex(), "given": given})

    def contact_queue(self) -> tuple[bytes | None, str | None]:
        """This client's contact queue key (raw Ed25519 private key, or None) and
        the queue's ID (None until the server made it)."""
        value = self.get(CONTACT_QUEUE)
        private = _private_key(value)
        if private is None or not isinstance(value, dict):
            return None, None
        queue_id = value.get("queue_id")
        return private, queue_id if isinstance(queue_id, str) else None

    def set_contact_queue(self, private: bytes, queue_id: str | None) -> None:
        """Keep ``private`` as the contact queue's key, and its ID once known."""
        self.set(CONTACT_QUEUE, {"key": private.hex(), "queue_id": queue_id})

    def items(self) -> dict[str, JsonValue]:
        """Every setting."""
        rows = self._db.query("SELECT key, value FROM settings ORDER BY key")
        return {key: json.loads(text) for key, text in rows}


def _private_key(value: JsonValue) -> bytes | None:
    """The raw Ed25519 private key a key setting (``{"key": hex, …}``) holds, or None."""
    key = value.get("key") if isinstance(value, dict) else None
    try:
        private = bytes.fromhex(key) if isinstance(key, str) else None
    except ValueError:
        return None
    return private if private is not None and len(private) == 32 else None
