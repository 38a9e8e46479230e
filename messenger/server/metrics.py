"""Prometheus metrics of one server process (served at ``/metrics``).

Labels never carry identifiers: routes appear as templates
(``/v1/groups/{group_id}/messages``), never with a group, queue or account
in them.

prometheus-client belongs to the home server's extra (``pip install
'messenger[server]'``). The desktop app runs "a server on this computer"
without it: then every metric is a no-op, the rest of the server works, and
``/metrics`` answers 404 with a sentence naming the extra.
"""

from __future__ import annotations

from typing import Final, Protocol, Self, TypeVar

from messenger.api.errors import ApiError, ErrorCode

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
except ImportError:  # the desktop app's install: metrics are no-ops
    AVAILABLE = False
else:
    AVAILABLE = True

__all__ = ["AVAILABLE", "CONTENT_TYPE", "UNAVAILABLE", "Metrics"]

#: The media type of :meth:`Metrics.render`.
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST if AVAILABLE else "text/plain; charset=utf-8"

#: The answer to ``/metrics`` without prometheus-client.
UNAVAILABLE: Final = (
    "this server has no metrics: prometheus-client is not installed "
    "(install the home server with pip install 'messenger[server]')"
)

_T_co = TypeVar("_T_co", covariant=True)


class Counting(Protocol):
    """A counter (or one labelled child of it)."""

    def inc(self, amount: float = 1) -> None: ...


class Gauging(Counting, Protocol):
    """A gauge: a counter that also goes down."""

    def dec(self, amount: float = 1) -> None: ...


class Setting(Protocol):
    """A gauge that is set to a value."""

    def set(self, value: float) -> None: ...


class Observing(Protocol):
    """One labelled child of a histogram."""

    def observe(self, amount: float) -> None: ...


class Labelled(Protocol[_T_co]):
    """A metric with labels: ``labels(...)`` gives the child to update."""

    def labels(self, *values: str, **named: str) -> _T_co: ...


class Registry(Protocol):
    """What tests read from the registry."""

    def get_sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None: ...


class _NoMetric:
    """Every metric when prometheus-client is missing: accepts updates, keeps nothing."""

    def labels(self, *values: str, **named: str) -> Self:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def set(self, value: float) -> None:
        pass


class _NoRegistry:
    def get_sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return None


class Metrics:
    """Every metric, in a registry of its own (one per app)."""

    requests: Labelled[Counting]
    latency: Labelled[Observing]
    messages: Labelled[Counting]
    deliveries: Counting
    pushed: Counting
    commits: Labelled[Counting]
    registrations: Counting
    auth_failures: Labelled[Counting]
    rate_limited: Labelled[Counting]
    websockets: Gauging
    expired: Counting
    blob_bytes: Labelled[Counting]
    blobs: Labelled[Counting]
    blobs_stored: Setting
    blob_bytes_stored: Setting
    registry: Registry

    def __init__(self) -> None:
        if not AVAILABLE:
            none = _NoMetric()
            self.requests = self.latency = self.messages = self.commits = none
            self.auth_failures = self.rate_limited = none
            self.deliveries = self.pushed = self.registrations = self.expired = none
            self.websockets = none
            self.blob_bytes = self.blobs = none
            self.blobs_stored = self.blob_bytes_stored = none
            self.registry = _NoRegistry()
            return
        self._registry = r = CollectorRegistry(auto_describe=True)
        self.registry = r
        self.requests = Counter(
            "messenger_http_requests",
            "HTTP requests by route template and status",
            ("method", "route", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "messenger_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ("route",),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
            registry=r,
        )
        self.messages = Counter(
            "messenger_messages_stored",
            "MLS messages accepted, by kind",
            ("kind",),
            registry=r,
        )
        self.deliveries = Counter(
            "messenger_deliveries",
            "Queue entries created (one per recipient queue)",
            registry=r,
        )
        self.pushed = Counter(
            "messenger_pushed_messages",
            "Messages sent to clients over WebSocket",
            registry=r,
        )
        self.commits = Counter(
            "messenger_commits",
            "Commits by outcome",
            ("outcome",),
            registry=r,
        )
        self.registrations = Counter(
            "messenger_registrations",
            "Accounts registered",
            registry=r,
        )
        self.auth_failures = Counter(
            "messenger_auth_failures",
            "Requests refused as unauthenticated, by error code",
            ("code",),
            registry=r,
        )
        self.rate_limited = Counter(
            "messenger_rate_limited",
            "Requests refused by a rate limit",
            ("limit",),
            registry=r,
        )
        self.websockets = Gauge(
            "messenger_websocket_connections",
            "Open WebSocket connections",
            registry=r,
        )
        self.expired = Counter(
            "messenger_expired_messages",
            "Queue entries dropped by the retention limit",
            registry=r,
        )
        self.blob_bytes = Counter(
            "messenger_blob_bytes",
            "Attachment blob bytes transferred, by direction (uploaded, downloaded)",
            ("direction",),
            registry=r,
        )
        self.blobs = Counter(
            "messenger_blobs",
            "Attachment blobs by event (created, completed, fetched, expired, deleted)",
            ("event",),
            registry=r,
        )
        self.blobs_stored = Gauge(
            "messenger_blobs_stored",
            "Attachment blobs stored (all processes), as of the last sweep",
            registry=r,
        )
        self.blob_bytes_stored = Gauge(
            "messenger_blob_bytes_stored",
            "Bytes of attachment blobs stored (all processes), as of the last sweep",
            registry=r,
        )

    def render(self) -> bytes:
        """The text exposition format; without prometheus-client an ``ApiError`` (404)."""
        if not AVAILABLE:
            raise ApiError(ErrorCode.NOT_FOUND, UNAVAILABLE)
        return generate_latest(self._registry)
