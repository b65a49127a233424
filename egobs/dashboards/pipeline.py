"""Telemetry pipeline: is every access log, span and metric the gateway produces arriving,
or is some stage dropping it? From the egobs sink (job ``egobs-sink``), Envoy's stats
(job ``envoy``) and the OpenTelemetry Collector's own metrics (any job).

Panels:

- Sink entries: how many access-log entries per second does the sink receive (per source),
  write, and drop (per reason)?
- Sink queue: how many entries wait for the sink's outputs and its OTLP forwarder?
- Sink queue memory: how much memory do the queued entries hold (the sink drops past its
  limit)?
- Sink streams: how many gRPC streams (Envoy workers' access-log streams, OTLP calls) are
  open on the sink?
- Envoy access-log delivery: how many access-log entries per second does Envoy hand to gRPC
  and how many does it drop?
- Envoy span export: how many spans per second does Envoy's tracer send, and drop?
- Telemetry cluster overflows: are requests to the telemetry clusters (sink, collector)
  refused by their circuit breakers, losing logs or spans?
- Collector receivers: how many spans, log records and metric points per second does the
  collector accept, and refuse?
- Collector exporters: how many spans, log records and metric points per second does the
  collector send on, and fail to send?
"""

from __future__ import annotations

from egobs.dashboards.envoy import ENVOY, PROXY_VARIABLES
from egobs.dashboards.kit import DashboardSpec, PanelSpec, Query, Row

__all__ = ["SPEC"]

RI = "[$__rate_interval]"
TELEMETRY = f'{ENVOY},envoy_cluster_name=~"telemetry/.*"'
SIGNALS = (("spans", "spans"), ("log records", "log_records"), ("metric points", "metric_points"))


def _collector(component: str, verbs: tuple[str, str]) -> tuple[Query, ...]:
    """Both names of each collector counter: ``_total`` (0.106+) and the older one."""
    out = []
    for label, signal in SIGNALS:
        for verb in verbs:
            name = f"otelcol_{component}_{verb}_{signal}"
            out.append(
                Query(
                    f"sum by ({component}) (rate({name}_total{RI}))"
                    f" or sum by ({component}) (rate({name}{RI}))",
                    f"{verb.replace('_', ' ')} {label} {{{{{component}}}}}",
                )
            )
    return tuple(out)


SPEC = DashboardSpec(
    uid="egobs-telemetry-pipeline",
    title="egobs / Telemetry pipeline",
    doc=__doc__,
    variables=(*PROXY_VARIABLES,),
    rows=(
        Row(
            "egobs sink",
            (
                PanelSpec(
                    "Sink entries",
                    "ops",
                    (
                        Query(
                            f"sum by (source) (rate(egobs_sink_entries_received_total{RI}))",
                            "received {{source}}",
                        ),
                        Query(f"sum(rate(egobs_sink_entries_written_total{RI}))", "written"),
                        Query(
                            f"sum by (reason) (rate(egobs_sink_entries_dropped_total{RI}))",
                            "dropped {{reason}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Sink queue",
                    "short",
                    (
                        Query("sum(egobs_sink_queue_depth)", "outputs"),
                        Query("sum(egobs_sink_forward_queue_depth)", "OTLP forwarder"),
                    ),
                    width=6,
                ),
                PanelSpec(
                    "Sink queue memory",
                    "bytes",
                    (Query("sum(egobs_sink_queue_bytes)", "queued"),),
                    width=6,
                ),
                PanelSpec(
                    "Sink streams",
                    "short",
                    (Query("sum by (service) (egobs_sink_active_streams)", "{{service}}"),),
                    width=24,
                ),
            ),
        ),
        Row(
            "Envoy",
            (
                PanelSpec(
                    "Envoy access-log delivery",
                    "ops",
                    (
                        Query(
                            "sum by (instance) (rate("
                            f"envoy_access_logs_grpc_access_log_logs_written{{{ENVOY}}}{RI}))",
                            "written {{instance}}",
                        ),
                        Query(
                            "sum by (instance) (rate("
                            f"envoy_access_logs_grpc_access_log_logs_dropped{{{ENVOY}}}{RI}))",
                            "dropped {{instance}}",
                        ),
                    ),
                    width=8,
                ),
                PanelSpec(
                    "Envoy span export",
                    "ops",
                    (
                        Query(
                            "sum by (instance) (rate("
                            f"envoy_tracing_opentelemetry_spans_sent{{{ENVOY}}}{RI}))",
                            "sent {{instance}}",
                        ),
                        Query(
                            "sum by (instance) (rate("
                            f"envoy_tracing_opentelemetry_spans_dropped{{{ENVOY}}}{RI}))",
                            "dropped {{instance}}",
                        ),
                    ),
                    width=8,
                ),
                PanelSpec(
                    "Telemetry cluster overflows",
                    "ops",
                    (
                        Query(
                            "sum by (envoy_cluster_name) (rate("
                            f"envoy_cluster_upstream_rq_active_overflow{{{TELEMETRY}}}{RI}))",
                            "active {{envoy_cluster_name}}",
                        ),
                        Query(
                            "sum by (envoy_cluster_name) (rate("
                            f"envoy_cluster_upstream_rq_pending_overflow{{{TELEMETRY}}}{RI}))",
                            "pending {{envoy_cluster_name}}",
                        ),
                    ),
                    width=8,
                ),
            ),
        ),
        Row(
            "OpenTelemetry Collector",
            (
                PanelSpec(
                    "Collector receivers", "ops", _collector("receiver", ("accepted", "refused"))
                ),
                PanelSpec(
                    "Collector exporters", "ops", _collector("exporter", ("sent", "send_failed"))
                ),
            ),
        ),
    ),
)
