"""Channel metrics: the counters, their stats() snapshot and their export to Prometheus at scrape time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import prometheus_client
import prometheus_client.core
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fastapi_channels.metrics import ChannelMetrics, PrometheusCollector, register_prometheus, utf8_size

PLAIN_COUNTERS = ("frames_in", "frames_out", "slow_client_cuts", "rate_limit_refusals", "publish_failures")


def busy_metrics() -> ChannelMetrics:
    """Return metrics after some traffic: two chat connections (one closed), a lobby one, errors, frames."""
    metrics = ChannelMetrics()
    metrics.connection_opened("ChatChannel")
    metrics.connection_opened("ChatChannel")
    metrics.connection_opened("LobbyChannel")
    metrics.connection_closed("ChatChannel", 1000)
    metrics.error(1008)
    metrics.error(1013)
    metrics.error(1013)
    metrics.frames_in += 5
    metrics.frames_out += 7
    metrics.slow_client_cuts += 1
    metrics.rate_limit_refusals += 2
    metrics.publish_failures += 3
    metrics.queue_bytes += 120
    metrics.queue_bytes -= 20
    return metrics


def scrape(registry: CollectorRegistry) -> dict[str, Any]:
    """Return {sample name with its labels: value} from the registry's text exposition, and the HELP texts."""
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    samples = {
        sample.name + json.dumps(sample.labels, sort_keys=True) if sample.labels else sample.name: sample.value
        for family in families
        for sample in family.samples
    }
    return {"samples": samples, "help": {family.name: family.documentation for family in families}}


def test_channel_metrics_new_counts_nothing() -> None:
    stats = ChannelMetrics().stats()
    gauges_and_counters = (*PLAIN_COUNTERS, "queue_bytes")
    assert {key: stats[key] for key in gauges_and_counters} == dict.fromkeys(gauges_and_counters, 0)
    for key in ("connections", "connections_opened", "closes_by_code", "errors_by_code"):
        assert stats[key] == {}


def test_channel_metrics_connections_count_open_and_opened_by_class_and_closes_by_code() -> None:
    metrics = busy_metrics()
    assert metrics.connections == {"ChatChannel": 1, "LobbyChannel": 1}
    assert metrics.connections_opened == {"ChatChannel": 2, "LobbyChannel": 1}
    assert metrics.closes_by_code == {1000: 1}
    metrics.connection_closed("ChatChannel", 1001)
    metrics.connection_closed("LobbyChannel", 1013)
    assert metrics.connections == {"ChatChannel": 0, "LobbyChannel": 0}  # a class seen once stays, at 0
    assert metrics.closes_by_code == {1000: 1, 1001: 1, 1013: 1}


def test_channel_metrics_errors_count_by_code() -> None:
    assert busy_metrics().errors_by_code == {1008: 1, 1013: 2}


def test_channel_metrics_misspelled_counter_raises_attribute_error() -> None:
    metrics = ChannelMetrics()
    with pytest.raises(AttributeError):
        metrics.frame_in = 1  # type: ignore[attr-defined]


def test_stats_snapshot_has_every_counter_and_survives_json() -> None:
    stats = busy_metrics().stats()
    assert set(stats) == {
        *PLAIN_COUNTERS,
        "queue_bytes",
        "connections",
        "connections_opened",
        "closes_by_code",
        "errors_by_code",
        "started_at",
        "uptime_seconds",
    }
    assert {key: stats[key] for key in PLAIN_COUNTERS} == {
        "frames_in": 5,
        "frames_out": 7,
        "slow_client_cuts": 1,
        "rate_limit_refusals": 2,
        "publish_failures": 3,
    }
    assert stats["queue_bytes"] == 100
    assert stats["connections"] == {"ChatChannel": 1, "LobbyChannel": 1}
    assert stats["closes_by_code"] == {"1000": 1}  # codes are strings, as JSON object keys are
    assert stats["errors_by_code"] == {"1008": 1, "1013": 2}
    assert json.loads(json.dumps(stats)) == stats


def test_stats_snapshot_does_not_change_with_later_traffic() -> None:
    metrics = busy_metrics()
    stats = metrics.stats()
    metrics.connection_opened("NewChannel")
    metrics.error(1011)
    metrics.frames_in += 1
    assert "NewChannel" not in stats["connections"] and "1011" not in stats["errors_by_code"]
    assert stats["frames_in"] == 5


def test_stats_started_at_is_unix_time_and_uptime_grows() -> None:
    before = time.time()
    metrics = ChannelMetrics()
    first = metrics.stats()
    assert before <= first["started_at"] <= time.time()
    assert metrics.stats()["uptime_seconds"] >= first["uptime_seconds"] >= 0


@pytest.mark.parametrize(("text", "size"), [("", 0), ('{"a":1}', 7), ("héllo", 6), ("日本", 6), ("🙂", 4)])
def test_utf8_size_counts_encoded_bytes(text: str, size: int) -> None:
    assert utf8_size(text) == size == len(text.encode())


def test_prometheus_collector_exports_every_counter_with_prefix_labels_and_help() -> None:
    metrics = busy_metrics()
    registry = CollectorRegistry()
    registry.register(PrometheusCollector(metrics))
    scraped = scrape(registry)
    assert scraped["samples"] == {
        "fastapi_channels_frames_received_total": 5.0,
        "fastapi_channels_frames_sent_total": 7.0,
        "fastapi_channels_slow_client_cuts_total": 1.0,
        "fastapi_channels_rate_limit_refusals_total": 2.0,
        "fastapi_channels_publish_failures_total": 3.0,
        "fastapi_channels_queue_bytes": 100.0,
        "fastapi_channels_start_time_seconds": metrics.started_at,
        'fastapi_channels_connections{"channel_class": "ChatChannel"}': 1.0,
        'fastapi_channels_connections{"channel_class": "LobbyChannel"}': 1.0,
        'fastapi_channels_connections_opened_total{"channel_class": "ChatChannel"}': 2.0,
        'fastapi_channels_connections_opened_total{"channel_class": "LobbyChannel"}': 1.0,
        'fastapi_channels_closes_total{"code": "1000"}': 1.0,
        'fastapi_channels_errors_total{"code": "1008"}': 1.0,
        'fastapi_channels_errors_total{"code": "1013"}': 2.0,
    }
    assert scraped["help"]["fastapi_channels_slow_client_cuts"] == (
        "Connections closed with 1013: their send queue was full."
    )
    assert all(scraped["help"].values()), scraped["help"]


def test_prometheus_collector_of_new_metrics_exports_every_family_without_labelled_samples() -> None:
    registry = CollectorRegistry()
    register_prometheus(ChannelMetrics(), registry)
    text = generate_latest(registry).decode()
    assert "# HELP fastapi_channels_connections Connections open now, by channel class.\n" in text
    for name in ("connections_opened", "closes", "errors"):
        assert f"# TYPE fastapi_channels_{name}_total counter\n" in text
    assert scrape(registry)["samples"]["fastapi_channels_frames_received_total"] == 0.0


def test_prometheus_collector_reads_the_counters_at_scrape_time_only(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    class CountingCounter(prometheus_client.core.CounterMetricFamily):
        def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
            built.append(name)
            super().__init__(name, *args, **kwargs)

    monkeypatch.setattr(prometheus_client.core, "CounterMetricFamily", CountingCounter)
    metrics = ChannelMetrics()
    registry = CollectorRegistry()
    register_prometheus(metrics, registry)
    built.clear()  # registering describes the metrics once
    metrics.connection_opened("ChatChannel")
    for _ in range(1000):
        metrics.frames_in += 1
        metrics.frames_out += 1
    metrics.error(1011)
    assert built == []  # recording never reaches prometheus-client
    assert scrape(registry)["samples"]["fastapi_channels_frames_received_total"] == 1000.0
    assert built
    metrics.frames_in += 1
    assert scrape(registry)["samples"]["fastapi_channels_frames_received_total"] == 1001.0


def test_metrics_module_imports_and_records_without_prometheus_client() -> None:
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None\n"
        "from fastapi_channels.metrics import ChannelMetrics\n"
        "metrics = ChannelMetrics()\n"
        "metrics.connection_opened('ChatChannel')\n"
        "metrics.frames_in += 1\n"
        "metrics.error(1008)\n"
        "metrics.connection_closed('ChatChannel', 1000)\n"
        "print(metrics.stats()['frames_in'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")


def test_prometheus_collector_without_prometheus_client_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    install = r"pip install 'fastapi-channels\[prometheus\]'"
    with pytest.raises(ImportError, match=install):
        PrometheusCollector(ChannelMetrics())
    with pytest.raises(ImportError, match=install):
        register_prometheus(ChannelMetrics())


def test_register_prometheus_twice_in_one_registry_raises_value_error() -> None:
    registry = CollectorRegistry()
    register_prometheus(ChannelMetrics(), registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        register_prometheus(ChannelMetrics(), registry)


def test_register_prometheus_without_registry_uses_the_default_one() -> None:
    metrics = ChannelMetrics()
    metrics.publish_failures += 4
    collector = register_prometheus(metrics)
    try:
        assert prometheus_client.REGISTRY.get_sample_value("fastapi_channels_publish_failures_total") == 4.0
    finally:
        prometheus_client.REGISTRY.unregister(collector)
