"""Prometheus metrics of one server process (served at ``/metrics``).

Labels never carry identifiers: routes appear as templates
(``/v1/groups/{group_id}/messages``), never with a group, queue or account
in them.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "Metrics"]

#: The media type of :meth:`Metrics.render`.
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Every metric, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
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

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
