"""Every metric the dashboards query, with its Prometheus type.

Names and types were read from real expositions, and tests/stack/test_dashboards_live.py
reads them again: egobs's admin ``/metrics``, the sink's ``/metrics`` and a real Envoy
1.40's ``/stats/prometheus`` (Envoy's counters have no ``_total`` suffix; outlier-detection
stats exist only on clusters with outlier detection, so the test reads those from a static
Envoy that has it). The collector's are from the OpenTelemetry Collector's internal
telemetry, which no test here runs: queries take both the ``_total`` name (collector
0.106 and later) and the older one.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["COLLECTOR", "METRICS", "counter_like", "metric_names"]

Type = Literal["counter", "gauge", "histogram"]

_EGOBS: dict[str, Type] = {
    "egobs_config_change_timestamp_seconds": "gauge",
    "egobs_infra_proxies": "gauge",
    "egobs_infra_restarts_total": "counter",
    "egobs_provider_events_total": "counter",
    "egobs_provider_load_errors_total": "counter",
    "egobs_provider_resources": "gauge",
    "egobs_provider_failing_sources": "gauge",
    "egobs_proxy_convergence_seconds": "histogram",
    "egobs_translation_duration_seconds": "histogram",
    "egobs_translation_errors_total": "counter",
    "egobs_rejected_objects": "gauge",
    "egobs_translation_runs_total": "counter",
    "egobs_xds_acks_total": "counter",
    "egobs_xds_config_size_bytes": "histogram",
    "egobs_xds_connected_proxies": "gauge",
    "egobs_xds_nacks_total": "counter",
    "egobs_xds_push_duration_seconds": "histogram",
    "egobs_xds_pushes_total": "counter",
    "egobs_xds_snapshot_builds_total": "counter",
    "egobs_xds_stale_proxies": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
}

_SINK: dict[str, Type] = {
    "egobs_sink_active_streams": "gauge",
    "egobs_sink_entries_dropped_total": "counter",
    "egobs_sink_entries_received_total": "counter",
    "egobs_sink_entries_written_total": "counter",
    "egobs_sink_forward_queue_depth": "gauge",
    "egobs_sink_queue_bytes": "gauge",
    "egobs_sink_queue_depth": "gauge",
    "egobs_sink_received_bytes_total": "counter",
    "egobs_sink_request_duration_seconds": "histogram",
    "egobs_sink_requests_total": "counter",
    "egobs_sink_response_flags_total": "counter",
    "egobs_sink_sent_bytes_total": "counter",
}

_ENVOY: dict[str, Type] = {
    "envoy_access_logs_grpc_access_log_logs_dropped": "counter",
    "envoy_access_logs_grpc_access_log_logs_written": "counter",
    "envoy_cluster_circuit_breakers_default_cx_open": "gauge",
    "envoy_cluster_circuit_breakers_default_rq_open": "gauge",
    "envoy_cluster_circuit_breakers_default_rq_pending_open": "gauge",
    "envoy_cluster_circuit_breakers_default_rq_retry_open": "gauge",
    "envoy_cluster_manager_cds_update_rejected": "counter",
    "envoy_cluster_manager_cds_update_success": "counter",
    "envoy_cluster_membership_degraded": "gauge",
    "envoy_cluster_membership_healthy": "gauge",
    "envoy_cluster_membership_total": "gauge",
    "envoy_cluster_outlier_detection_ejections_active": "gauge",
    "envoy_cluster_outlier_detection_ejections_enforced_total": "counter",
    "envoy_cluster_upstream_cx_connect_fail": "counter",
    "envoy_cluster_upstream_cx_connect_timeout": "counter",
    "envoy_cluster_upstream_cx_overflow": "counter",
    "envoy_cluster_upstream_rq_active_overflow": "counter",
    "envoy_cluster_upstream_rq_pending_overflow": "counter",
    "envoy_cluster_upstream_rq_retry_overflow": "counter",
    "envoy_cluster_upstream_rq_time": "histogram",
    "envoy_cluster_upstream_rq_total": "counter",
    "envoy_cluster_upstream_rq_xx": "counter",
    "envoy_control_plane_connected_state": "gauge",
    "envoy_http_downstream_cx_active": "gauge",
    "envoy_http_downstream_rq_active": "gauge",
    "envoy_http_downstream_rq_time": "histogram",
    "envoy_http_downstream_rq_total": "counter",
    "envoy_http_downstream_rq_xx": "counter",
    "envoy_http_rds_update_rejected": "counter",
    "envoy_http_rds_update_success": "counter",
    "envoy_listener_manager_lds_update_rejected": "counter",
    "envoy_listener_manager_lds_update_success": "counter",
    "envoy_server_live": "gauge",
    "envoy_server_memory_allocated": "gauge",
    "envoy_server_memory_heap_size": "gauge",
    "envoy_server_uptime": "gauge",
    "envoy_tracing_opentelemetry_spans_dropped": "counter",
    "envoy_tracing_opentelemetry_spans_sent": "counter",
}

COLLECTOR: dict[str, Type] = {
    f"otelcol_{name}{suffix}": "counter"
    for name in (
        "receiver_accepted_spans",
        "receiver_refused_spans",
        "receiver_accepted_log_records",
        "receiver_refused_log_records",
        "receiver_accepted_metric_points",
        "receiver_refused_metric_points",
        "exporter_sent_spans",
        "exporter_send_failed_spans",
        "exporter_sent_log_records",
        "exporter_send_failed_log_records",
        "exporter_sent_metric_points",
        "exporter_send_failed_metric_points",
    )
    for suffix in ("", "_total")
}

METRICS: dict[str, Type] = {**_EGOBS, **_SINK, **_ENVOY, **COLLECTOR}

_NAME = re.compile(r"\b(?:egobs|envoy|otelcol|process)_[a-zA-Z0-9_]+\b")
_HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


_LABELS = re.compile(
    r"\{[^}]*\}|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    r"|,\s*[a-zA-Z_][a-zA-Z0-9_]*\)\s*$"  # the label argument of label_values(selector, label)
)


def metric_names(expr: str) -> list[tuple[int, str]]:
    """(offset, name) of every metric name in a PromQL expression (label names in
    selectors and in ``by``/``on``/``group_left`` clauses are not metric names)."""
    masked = _LABELS.sub(lambda m: " " * len(m.group(0)), expr)
    return [(m.start(), m.group(0)) for m in _NAME.finditer(masked)]


def family(name: str) -> str | None:
    """The catalogued family a series name belongs to (``x_bucket`` -> ``x``), or None."""
    if name in METRICS:
        return name
    for suffix in _HISTOGRAM_SERIES:
        base = name.removesuffix(suffix)
        if base != name and METRICS.get(base) == "histogram":
            return base
    return None


def counter_like(name: str) -> bool:
    """True for series that only grow: counters and a histogram's buckets, count, sum."""
    fam = family(name)
    return fam is not None and (METRICS[fam] == "counter" or fam != name)
