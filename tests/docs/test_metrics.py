"""The metrics page: the /stats and /metrics endpoints of its sample, and what the core counts."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.docs.samples import error_frame, load


def test_metrics_stats_and_prometheus_endpoints_show_the_app_counters() -> None:
    sample = load("metrics/app.py")
    with TestClient(sample.app) as client:
        sample.metrics.connection_opened("ChatChannel")
        sample.metrics.error(1008)
        sample.metrics.frames_in += 3
        stats = client.get("/stats").json()
        response = client.get("/metrics")
    assert stats["connections"] == {"ChatChannel": 1} and stats["errors_by_code"] == {"1008": 1}
    assert stats["frames_in"] == 3 and stats["publish_failures"] == 0
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {
        (sample.name, tuple(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples[("fastapi_channels_frames_received_total", ())] == 3.0
    assert samples[("fastapi_channels_connections", (("channel_class", "ChatChannel"),))] == 1.0
    assert samples[("fastapi_channels_errors_total", (("code", "1008"),))] == 1.0


def test_metrics_chat_session_is_counted_by_the_core() -> None:
    sample = load("metrics/app.py")
    assert sample.metrics is sample.app.state.fastapi_channels.metrics
    with TestClient(sample.app) as client:
        with client.websocket_connect("/chat") as websocket:
            websocket.send_json({"action": "say", "text": "hi"})
            assert websocket.receive_json() == {"action": "said", "text": "hi"}
            websocket.send_json({"action": "shout"})
            assert error_frame(websocket)["code"] == 1008  # no such action
        stats = client.get("/stats").json()
    assert (stats["frames_in"], stats["frames_out"]) == (2, 2)  # the broadcast copy and the error frame
    assert stats["connections"] == {"ChatChannel": 0} and stats["connections_opened"] == {"ChatChannel": 1}
    assert stats["closes_by_code"] == {"1000": 1} and stats["errors_by_code"] == {"1008": 1}
    assert (stats["slow_client_cuts"], stats["rate_limit_refusals"], stats["publish_failures"]) == (0, 0, 0)
    assert stats["queue_bytes"] == 0
