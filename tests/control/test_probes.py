"""The control plane's metrics, read at scrape time from the plane and its rate cap."""

from __future__ import annotations

from shadowproxy.control import Change, ControlPlane, watch_control
from shadowproxy.metrics import Metrics


def lines(metrics: Metrics) -> set[str]:
    return {line for line in metrics.render().decode().splitlines() if not line.startswith("#")}


async def test_metrics_follow_the_switches_and_the_cap() -> None:
    """Scrapes show the state in force at that moment: kill switch, sampling, cap, decisions."""
    plane = ControlPlane("", sample=40.0, shadow_rps=2.0)
    metrics = Metrics()
    watch_control(metrics, plane)

    before = lines(metrics)
    await plane.update(Change(killed=True, sample=10))
    results = [await plane.rate_cap.take() for _ in range(3)]
    after = lines(metrics)

    assert {
        "shadowproxy_control_connected 1.0",
        "shadowproxy_control_killed 0.0",
        "shadowproxy_control_sample_percent 40.0",
        "shadowproxy_control_state_version 0.0",
        "shadowproxy_shadow_rate_limit 2.0",
    } <= before
    assert [True, True, False] == results
    assert {
        "shadowproxy_control_killed 1.0",
        "shadowproxy_control_sample_percent 10.0",
        "shadowproxy_control_state_version 1.0",
        "shadowproxy_control_changes_total 1.0",
        'shadowproxy_shadow_rate_decisions_total{result="granted"} 2.0',
        'shadowproxy_shadow_rate_decisions_total{result="denied"} 1.0',
        "shadowproxy_shadow_rate_local_decisions_total 3.0",
    } <= after
