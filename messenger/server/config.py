"""Server configuration: a TOML file, overridden by environment variables.

Every option has a section in the file and an environment variable
``MESSENGER_<KEY>`` (upper case) that wins over the file::

    [server]
    host = "127.0.0.1"
    port = 8080
    data_dir = "/var/lib/messenger"
    database_url = "postgresql://messenger@db/messenger"   # default: SQLite in data_dir

    [signup]
    policy = "open"          # open | invite | closed
    pow_difficulty = 20

    [blobs]                  # attachments (docs/attachments.md §3)
    max_blob_bytes = 100000000
    quota_bytes = 1073741824 # per account

The file is named by ``--config`` or ``MESSENGER_CONFIG``. Unknown keys and
values of the wrong type are a :class:`ConfigError`, so that a typo does not
silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from messenger.api.blobs import MAX_BLOB_SIZE
from messenger.api.models import SIGNUP_POLICIES

__all__ = [
    "MIN_REJOIN_BOX_TTL_SECONDS",
    "ConfigError",
    "ServerConfig",
    "load_config",
]

#: Clients rewrite their rejoin boxes every 60 days; a box lives at least 90.
MIN_REJOIN_BOX_TTL_SECONDS: Final = 90 * 24 * 3600


class ConfigError(Exception):
    """The configuration file or environment is invalid."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Every setting of the server, with its default."""

    # [server]
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("messenger-data")
    database_url: str = ""
    log_level: str = "INFO"
    trust_forwarded_for: bool = False
    secret_key_file: str = ""
    db_pool_size: int = 10
    # [signup]
    signup_policy: str = "open"
    pow_difficulty: int = 20
    challenge_ttl_seconds: int = 600
    # [auth]
    timestamp_window_seconds: int = 300
    # [limits]
    max_body_bytes: int = 4 << 20
    retention_seconds: int = 30 * 24 * 3600
    max_queue_length: int = 10_000
    max_key_packages_per_client: int = 200
    max_clients_per_account: int = 16
    sweep_interval_seconds: float = 60.0
    # [rate_limits]: token buckets in each process's memory; a refused
    # request gets 429 rate_limited with Retry-After.
    ip_requests_per_minute: int = 1200
    account_requests_per_minute: int = 1200
    #: Registrations (POST /v1/register, successful or not) per address.
    registrations_per_ip_per_hour: int = 30
    #: Handle lookups, and attempts to set a handle (which tell whether it is
    #: taken), per account and per address: what a person needs, far below
    #: what enumerating handles would.
    lookups_per_account_per_minute: int = 30
    lookups_per_ip_per_minute: int = 60
    #: Unsigned requests to link mailboxes (a new device joining) per address.
    link_requests_per_ip_per_minute: int = 300
    # [limits], abuse controls of groups and KeyPackages
    claim_evidence_ttl_seconds: int = 7 * 24 * 3600
    # [rate_limits], in each process's memory
    key_package_claims_per_hour: int = 240
    one_time_key_packages_per_target_per_hour: int = 10
    one_time_key_packages_per_claimer_per_target_per_hour: int = 5
    sender_messages_per_queue_per_minute: int = 600
    sender_bytes_per_queue_per_minute: int = 16 << 20
    # [limits], HTTP connections (messenger.server.transport)
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    max_connections: int = 2048
    max_connections_per_address: int = 64
    # [blobs]: attachments (docs/attachments.md §3, messenger.server.blobs)
    #: The largest file (before encryption and padding).
    max_blob_bytes: int = 100_000_000
    #: Stored blobs (finished or not) per account.
    blob_quota_bytes: int = 1 << 30
    #: Free disk space kept; below it, new blobs and parts get 507 no_space.
    blob_reserve_bytes: int = 256 << 20
    #: An unfinished upload is deleted this long after it was started.
    blob_upload_ttl_seconds: int = 24 * 3600
    #: A blob is deleted this long after it was completed (if not fetched by all).
    blob_retention_seconds: int = 30 * 24 * 3600
    # [rejoin_boxes]: each account's keys to its groups' state (docs/metadata.md §2)
    #: New boxes (handles not stored yet) per account and hour, in each
    #: process's memory; replacing a stored box does not count.
    new_rejoin_boxes_per_account_per_hour: int = 32
    #: How many new boxes an account may store at once (its first upload).
    new_rejoin_boxes_burst: int = 512
    #: Boxes stored in all; past it, a new one gets 507 no_space.
    max_rejoin_boxes: int = 5_000_000
    #: A box not written again for this long is deleted (clients rewrite theirs
    #: every 60 days).
    rejoin_box_ttl_seconds: int = 180 * 24 * 3600

    def __post_init__(self) -> None:
        if self.signup_policy not in SIGNUP_POLICIES:
            raise ConfigError(f"signup policy must be one of {', '.join(SIGNUP_POLICIES)}")
        if not 0 <= self.pow_difficulty <= 64:
            raise ConfigError("pow_difficulty must be in 0..64")
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be in 0..65535")
        if self.database_url and not self.database_url.startswith(
            ("sqlite://", "postgresql://", "postgres://")
        ):
            raise ConfigError(
                "database_url must start with sqlite://, postgresql:// or postgres://"
            )
        for name in (
            "challenge_ttl_seconds",
            "timestamp_window_seconds",
            "max_body_bytes",
            "retention_seconds",
            "max_queue_length",
            "max_key_packages_per_client",
            "max_clients_per_account",
            "ip_requests_per_minute",
            "account_requests_per_minute",
            "registrations_per_ip_per_hour",
            "lookups_per_account_per_minute",
            "lookups_per_ip_per_minute",
            "link_requests_per_ip_per_minute",
            "db_pool_size",
            "claim_evidence_ttl_seconds",
            "key_package_claims_per_hour",
            "one_time_key_packages_per_target_per_hour",
            "one_time_key_packages_per_claimer_per_target_per_hour",
            "sender_messages_per_queue_per_minute",
            "sender_bytes_per_queue_per_minute",
            "max_blob_bytes",
            "blob_quota_bytes",
            "blob_upload_ttl_seconds",
            "blob_retention_seconds",
            "new_rejoin_boxes_per_account_per_hour",
            "new_rejoin_boxes_burst",
            "max_rejoin_boxes",
            "rejoin_box_ttl_seconds",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.rejoin_box_ttl_seconds < MIN_REJOIN_BOX_TTL_SECONDS:
            raise ConfigError(
                "rejoin_box_ttl_seconds must be at least 90 days: clients rewrite their "
                "boxes every 60"
            )
        if self.sweep_interval_seconds <= 0:
            raise ConfigError("sweep_interval_seconds must be positive")
        for name in ("header_timeout_seconds", "body_timeout_seconds"):
            if not 0 < getattr(self, name) <= 3600:
                raise ConfigError(f"{name} must be in (0, 3600]")
        if self.max_connections < 1:
            raise ConfigError("max_connections must be at least 1")
        if self.max_connections_per_address < 0:
            raise ConfigError("max_connections_per_address must be at least 0 (0: no limit)")
        if self.max_blob_bytes > MAX_BLOB_SIZE // 2:
            raise ConfigError(f"max_blob_bytes must be at most {MAX_BLOB_SIZE // 2}")
        if self.blob_reserve_bytes < 0:
            raise ConfigError("blob_reserve_bytes must be at least 0")

    @property
    def effective_database_url(self) -> str:
        """The database URL; SQLite in the data directory when none is set."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'messenger.db').resolve()}"

    @property
    def secret_key_path(self) -> Path:
        """Where the server's master secret lives (created on first start)."""
        if self.secret_key_file:
            return Path(self.secret_key_file)
        return self.data_dir / "server-secret.key"

    def replace(self, **changes: Any) -> ServerConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)


#: (file section, file key) -> field name.
_FILE_KEYS: Final[Mapping[tuple[str, str], str]] = {
    ("server", "host"): "host",
    ("server", "port"): "port",
    ("server", "data_dir"): "data_dir",
    ("server", "database_url"): "database_url",
    ("server", "log_level"): "log_level",
    ("server", "trust_forwarded_for"): "trust_forwarded_for",
    ("server", "secret_key_file"): "secret_key_file",
    ("server", "db_pool_size"): "db_pool_size",
    ("signup", "policy"): "signup_policy",
    ("signup", "pow_difficulty"): "pow_difficulty",
    ("signup", "challenge_ttl_seconds"): "challenge_ttl_seconds",
    ("auth", "timestamp_window_seconds"): "timestamp_window_seconds",
    ("limits", "max_body_bytes"): "max_body_bytes",
    ("limits", "retention_seconds"): "retention_seconds",
    ("limits", "max_queue_length"): "max_queue_length",
    ("limits", "max_key_packages_per_client"): "max_key_packages_per_client",
    ("limits", "max_clients_per_account"): "max_clients_per_account",
    ("limits", "sweep_interval_seconds"): "sweep_interval_seconds",
    ("rate_limits", "ip_requests_per_minute"): "ip_requests_per_minute",
    ("rate_limits", "account_requests_per_minute"): "account_requests_per_minute",
    ("rate_limits", "registrations_per_ip_per_hour"): "registrations_per_ip_per_hour",
    ("rate_limits", "lookups_per_account_per_minute"): "lookups_per_account_per_minute",
    ("rate_limits", "lookups_per_ip_per_minute"): "lookups_per_ip_per_minute",
    ("rate_limits", "link_requests_per_ip_per_minute"): "link_requests_per_ip_per_minute",
    ("limits", "claim_evidence_ttl_seconds"): "claim_evidence_ttl_seconds",
    ("rate_limits", "key_package_claims_per_hour"): "key_package_claims_per_hour",
    (
        "rate_limits",
        "one_time_key_packages_per_target_per_hour",
    ): "one_time_key_packages_per_target_per_hour",
    (
        "rate_limits",
        "one_time_key_packages_per_claimer_per_target_per_hour",
    ): "one_time_key_packages_per_claimer_per_target_per_hour",
    (
        "rate_limits",
        "sender_messages_per_queue_per_minute",
    ): "sender_messages_per_queue_per_minute",
    ("rate_limits", "sender_bytes_per_queue_per_minute"): "sender_bytes_per_queue_per_minute",
    ("limits", "header_timeout_seconds"): "header_timeout_seconds",
    ("limits", "body_timeout_seconds"): "body_timeout_seconds",
    ("limits", "max_connections"): "max_connections",
    ("limits", "max_connections_per_address"): "max_connections_per_address",
    ("blobs", "max_blob_bytes"): "max_blob_bytes",
    ("blobs", "quota_bytes"): "blob_quota_bytes",
    ("blobs", "reserve_bytes"): "blob_reserve_bytes",
    ("blobs", "upload_ttl_seconds"): "blob_upload_ttl_seconds",
    ("blobs", "retention_seconds"): "blob_retention_seconds",
    (
        "rejoin_boxes",
        "new_per_account_per_hour",
    ): "new_rejoin_boxes_per_account_per_hour",
    ("rejoin_boxes", "new_burst"): "new_rejoin_boxes_burst",
    ("rejoin_boxes", "max_boxes"): "max_rejoin_boxes",
    ("rejoin_boxes", "ttl_seconds"): "rejoin_box_ttl_seconds",
}

_FIELD_TYPES: Final[Mapping[str, type]] = {
    f.name: type(f.default) for f in dataclasses.fields(ServerConfig)
}


def _env_name(field: str) -> str:
    return "MESSENGER_" + ("SIGNUP_POLICY" if field == "signup_policy" else field.upper())


def _coerce(field: str, value: object, source: str) -> object:
    kind = _FIELD_TYPES[field]
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(text)
                return text.lower() in ("1", "true", "yes")
            if kind is int:
                return int(text)
            if kind is float:
                return float(text)
        except ValueError:
            raise ConfigError(f"{source}: {field} must be a {kind.__name__}") from None
        if issubclass(kind, Path):
            return Path(text)
    if issubclass(kind, Path) and isinstance(value, str):
        return Path(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {field} must be a {kind.__name__}")
    return value


def load_config(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServerConfig:
    """The configuration from ``path`` (if any), then the environment."""
    env = environ if environ is not None else {}
    values: dict[str, object] = {}
    file_path = path if path is not None else env.get("MESSENGER_CONFIG")
    if file_path:
        try:
            with open(file_path, "rb") as fh:
                document = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read {file_path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file_path}: {exc}") from None
        for section, table in document.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{file_path}: [{section}] must be a table")
            for key, value in table.items():
                field = _FILE_KEYS.get((section, key))
                if field is None:
                    raise ConfigError(f"{file_path}: unknown option {section}.{key}")
                values[field] = _coerce(field, value, str(file_path))
    for field in _FIELD_TYPES:
        name = _env_name(field)
        if name in env:
            values[field] = _coerce(field, env[name], name)
    if "data_dir" in values and isinstance(values["data_dir"], str):
        values["data_dir"] = Path(values["data_dir"])
    try:
        return ServerConfig(**values)  # type: ignore[arg-type]
    except TypeError as exc:  # pragma: no cover - guarded by _coerce
        raise ConfigError(str(exc)) from None
