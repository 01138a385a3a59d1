"""The control plane's metrics: levels and counts read at scrape time."""

from __future__ import annotations

from shadowproxy.control.plane import ControlPlane
from shadowproxy.metrics import Metrics


def watch_control(metrics: Metrics, plane: ControlPlane) -> None:
    """Register the plane's gauges and counters with ``metrics`` (call once per process)."""
    cap = plane.rate_cap
    metrics.gauge(
        "control_connected",
        "1 while the control plane reaches Redis (always 1 in local mode).",
        lambda: float(plane.connected),
    )
    metrics.gauge(
        "control_last_sync_timestamp_seconds",
        "Unix time the switches were last confirmed with Redis (0: never).",
        lambda: plane.last_sync or 0.0,
    )
    metrics.gauge(
        "control_state_version",
        "Version of the switches in force in this process.",
        lambda: float(plane.current.version),
    )
    metrics.gauge(
        "control_killed", "1 while the kill switch is on.", lambda: float(plane.current.killed)
    )
    metrics.gauge(
        "control_sample_percent",
        "Sampling percentage in force (the override, else --sample).",
        lambda: plane.current.sample_percent(plane.sample, None),
    )
    metrics.gauge(
        "control_endpoint_overrides",
        "Endpoints whose mirroring is switched on or off at run time.",
        lambda: float(len(plane.current.endpoints)),
    )
    metrics.gauge(
        "control_fleet_size",
        "Proxies last seen listening for control changes.",
        lambda: float(plane.fleet_size),
    )
    metrics.counter(
        "control_changes",
        "Switch changes taken into force in this process.",
        lambda: float(plane.changes_applied),
    )
    metrics.counter(
        "control_disconnects",
        "Times the control plane lost Redis.",
        lambda: float(plane.disconnects),
    )
    metrics.gauge(
        "shadow_rate_limit",
        "Shadow requests per second allowed fleet-wide (0: no cap).",
        plane.rate,
    )
    doc = "Shadow-rate decisions by who made them and the result."
    metrics.counter("shadow_rate_decisions", doc, lambda: float(cap.granted), result="granted")
    metrics.counter("shadow_rate_decisions", doc, lambda: float(cap.denied), result="denied")
    metrics.counter(
        "shadow_rate_local_decisions",
        "Shadow-rate decisions made by the local fallback bucket (no Redis).",
        lambda: float(cap.local_decisions),
    )
    metrics.counter(
        "shadow_rate_lease_errors",
        "Token leases from Redis that failed or timed out.",
        lambda: float(cap.lease_errors),
    )
