"""Counters of an app's channels, read as a plain dict or by Prometheus at scrape time.

Recording is on the path of every frame, so it is an attribute increment on a ``ChannelMetrics`` (no lock,
no lookup, no call into prometheus-client): the event loop is the only writer. Readers take a snapshot:
``stats()`` for a JSON endpoint, ``PrometheusCollector`` when Prometheus scrapes. Importing this module never
imports prometheus-client; only creating a ``PrometheusCollector`` does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["ChannelMetrics", "PrometheusCollector", "register_prometheus", "utf8_size", "METRIC_PREFIX"]

METRIC_PREFIX = "fastapi_channels_"
"""The prefix of every Prometheus metric name that ``PrometheusCollector`` exports."""

# What PrometheusCollector exports: (key in stats(), name after the prefix, type, help text).
_SCALARS = (
    ("frames_in", "frames_received", "counter", "Frames received from clients, text or binary."),
    ("frames_out", "frames_sent", "counter", "Text frames handed to the connections' outboxes for sending."),
    ("slow_client_cuts", "slow_client_cuts", "counter", "Connections closed with 1013: their send queue was full."),
    ("rate_limit_refusals", "rate_limit_refusals", "counter", "Requests refused by a rate limit."),
    ("publish_failures", "publish_failures", "counter", "Messages the broadcast backend did not take."),
    ("queue_bytes", "queue_bytes", "gauge", "UTF-8 bytes of the frames waiting in the send queues of this process."),
    ("started_at", "start_time_seconds", "gauge", "When the metrics started counting, in Unix time."),
)
# The same, with one label: (key in stats(), name after the prefix, label, type, help text).
_LABELLED = (
    ("connections", "connections", "channel_class", "gauge", "Connections open now, by channel class."),
    ("connections_opened", "connections_opened", "channel_class", "counter", "Connections admitted, by channel class."),
    ("closes_by_code", "closes", "code", "counter", "Admitted connections that closed, by close code."),
    ("errors_by_code", "errors", "code", "counter", "Errors answered, by code (1011 for a crash)."),
)


class ChannelMetrics:
    """Count one app's connections, frames and failures; the core increments the counters in place.

    The ``int`` attributes are recorded with a plain increment (``metrics.frames_in += 1``), which is all a
    frame costs; the methods record the rarer events that carry a label. Only the event loop writes them:
    ``stats()`` and ``PrometheusCollector`` read a snapshot.

    Attributes:
        frames_in: Frames received from clients, text or binary.
        frames_out: Text frames handed to the connections' outboxes for sending (a frame dropped when a slow
            client is cut still counts).
        slow_client_cuts: Connections closed with 1013 because their send queue was full.
        rate_limit_refusals: Requests a rate limit refused (answered by an error frame or your ``ws_callback``).
        publish_failures: Messages the broadcast backend refused or did not take in time.
        queue_bytes: A gauge: UTF-8 bytes of the frames waiting in the send queues of every connection of this
            process (frames written at once never wait, so this stays 0 while clients keep up).
        connections: A gauge per channel class name: connections open now.
        connections_opened: Connections admitted since the start, by channel class name.
        closes_by_code: Admitted connections that closed, by close code (whichever side closed).
        errors_by_code: Errors answered (with an error frame, unless your own handler does otherwise), by the
            ``WebSocketException``'s code, 1011 for a crash; refused connections included.
        started_at: When counting started, in Unix time.
    """

    __slots__ = (
        "frames_in",
        "frames_out",
        "slow_client_cuts",
        "rate_limit_refusals",
        "publish_failures",
        "queue_bytes",
        "connections",
        "connections_opened",
        "closes_by_code",
        "errors_by_code",
        "started_at",
        "_started",
    )

    def __init__(self) -> None:
        self.frames_in = 0
        self.frames_out = 0
        self.slow_client_cuts = 0
        self.rate_limit_refusals = 0
        self.publish_failures = 0
        self.queue_bytes = 0
        self.connections: dict[str, int] = {}
        self.connections_opened: dict[str, int] = {}
        self.closes_by_code: dict[int, int] = {}
        self.errors_by_code: dict[int, int] = {}
        self.started_at = time.time()
        self._started = time.monotonic()

    def connection_opened(self, channel_class: str) -> None:
        """Count a connection admitted by a channel of class ``channel_class``."""
        self.connections[channel_class] = self.connections.get(channel_class, 0) + 1
        self.connections_opened[channel_class] = self.connections_opened.get(channel_class, 0) + 1

    def connection_closed(self, channel_class: str, code: int) -> None:
        """Count the close, with ``code``, of a connection that ``connection_opened`` counted."""
        self.connections[channel_class] = self.connections.get(channel_class, 0) - 1
        self.closes_by_code[code] = self.closes_by_code.get(code, 0) + 1

    def error(self, code: int) -> None:
        """Count an error answered with ``code``: a ``WebSocketException``'s code, or 1011 for a crash."""
        self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1

    def stats(self) -> dict[str, Any]:
        """Return a JSON-serialisable snapshot of every counter; codes become string keys, as in JSON."""
        # Each dict is copied in one C call, so a reader in another thread never sees one change size.
        closes, errors = self.closes_by_code.copy(), self.errors_by_code.copy()
        return {
            "started_at": self.started_at,
            "uptime_seconds": time.monotonic() - self._started,
            "connections": self.connections.copy(),
            "connections_opened": self.connections_opened.copy(),
            "closes_by_code": {str(code): count for code, count in sorted(closes.items())},
            "errors_by_code": {str(code): count for code, count in sorted(errors.items())},
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "slow_client_cuts": self.slow_client_cuts,
            "rate_limit_refusals": self.rate_limit_refusals,
            "publish_failures": self.publish_failures,
            "queue_bytes": self.queue_bytes,
        }


def utf8_size(text: str) -> int:
    """Return the size of ``text`` encoded as UTF-8; without encoding it when it is ASCII, as JSON mostly is."""
    # isascii() reads a flag of the string: no pass over its characters.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class PrometheusCollector:
    """Export a ``ChannelMetrics`` to Prometheus, reading its counters when Prometheus scrapes.

    Raises:
        ImportError: prometheus-client is not installed.
    """

    def __init__(self, metrics: ChannelMetrics) -> None:
        try:
            from prometheus_client import core
        except ImportError as exc:
            raise ImportError(
                "Exporting channel metrics to Prometheus needs prometheus-client: "
                "pip install 'fastapi-channels[prometheus]'"
            ) from exc
        self.metrics = metrics
        self._counter = core.CounterMetricFamily
        self._gauge = core.GaugeMetricFamily

    def describe(self) -> Iterator[Metric]:
        """Yield the metric families without samples, so that a registry refuses a second collector."""
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family with the counters' current values."""
        return self._families(self.metrics.stats())

    def _families(self, stats: dict[str, Any] | None) -> Iterator[Metric]:
        for key, name, kind, help_text in _SCALARS:
            family = self._counter if kind == "counter" else self._gauge
            yield family(METRIC_PREFIX + name, help_text, value=None if stats is None else stats[key])
        for key, name, label, kind, help_text in _LABELLED:
            labelled = (self._counter if kind == "counter" else self._gauge)(
                METRIC_PREFIX + name, help_text, labels=[label]
            )
            if stats is not None:
                for label_value, count in stats[key].items():
                    labelled.add_metric([label_value], count)
            yield labelled


def register_prometheus(metrics: ChannelMetrics, registry: CollectorRegistry | None = None) -> PrometheusCollector:
    """Register a ``PrometheusCollector`` of ``metrics`` in ``registry`` (by default prometheus-client's); return it.

    Raises:
        ImportError: prometheus-client is not installed.
        ValueError: ``registry`` already exports these metrics (from another ``ChannelMetrics``, for instance).
    """
    collector = PrometheusCollector(metrics)
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    registry.register(collector)
    return collector
