"""Every ``egobs_`` metric, defined in one place on a dedicated registry.

The registry is separate from prometheus-client's global one so that ``/metrics`` shows the
control plane's own metrics only (no accidental process collectors from imported
libraries), and so that tests can assert the exposed set equals the documented set.

Labels are bounded: kinds, type URLs, gateways, stages, reasons from a fixed vocabulary.
Nothing is labelled per stream, per node id or per request.

``python -m egobs.telemetry.metrics --markdown > docs/metrics.md`` writes the reference: these
metrics, then the access-log sink's (:mod:`egobs.sink.metrics`), each from its registry.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.metrics import MetricWrapperBase

from egobs.telemetry.statuses import StatusGauges

__all__ = ["REGISTRY", "definitions", "markdown", "sink_definitions"]

REGISTRY = CollectorRegistry(auto_describe=True)
# The standard process_* metrics of this process (CPU seconds, resident memory, open fds),
# deliberately: the control plane's own cost is part of what it reports.
ProcessCollector(registry=REGISTRY)

# Istio's pilot_proxy_convergence_time buckets, extended below 0.1 s: on one host a change
# usually reaches every proxy in tens of milliseconds, which Istio's buckets cannot resolve.
CONVERGENCE_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 3, 5, 10, 20, 30, float("inf"),
)  # fmt: skip
# Stage timings: sub-millisecond for small inputs, seconds for 10k routes.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
    float("inf"),
)  # fmt: skip
# Powers of four from 1 KiB to 64 MiB: gRPC's default 4 MiB limit is a bucket edge, and
# configs beyond it are still visible.
SIZE_BUCKETS = (
    *(1024 * 4**i for i in range(9)),
    float("inf"),
)
STREAM_BUCKETS = (1, 10, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600, float("inf"))


def _c(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labels, registry=REGISTRY)


def _g(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    return Gauge(name, doc, labels, registry=REGISTRY)


def _h(
    name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = DURATION_BUCKETS
) -> Histogram:
    return Histogram(name, doc, labels, registry=REGISTRY, buckets=buckets)


# --------------------------------------------------------------------------- provider
PROVIDER_EVENTS = _c(
    "egobs_provider_events_total",
    "File events handled by a provider, by provider kind and operation "
    "(created, modified, deleted).",
    ("kind", "operation"),
)
PROVIDER_LOAD_ERRORS = _c(
    "egobs_provider_load_errors_total",
    "Resource load errors (the file's last good objects keep serving), by reason: "
    "read, parse, validation, duplicate.",
    ("reason",),
)
PROVIDER_RESOURCES = _g(
    "egobs_provider_resources",
    "Resources currently loaded, by kind.",
    ("kind",),
)
PROVIDER_FAILING_SOURCES = _g(
    "egobs_provider_failing_sources",
    "Sources (files) whose current content fails to load, in whole or in part, and whose "
    "refused objects serve their last good version; by provider kind. Goes back to 0 once "
    "they load again.",
    ("kind",),
)

# --------------------------------------------------------------------------- bus
BUS_DEPTH = _g(
    "egobs_bus_depth",
    "Keys with a change not yet taken by the slowest subscriber of a store.",
    ("store",),
)
BUS_PUBLISHES = _c("egobs_bus_publishes_total", "Values published to a store.", ("store",))
BUS_HANDLE_DURATION = _h(
    "egobs_bus_handle_duration_seconds",
    "Time a subscribing stage took to handle one change taken from a store.",
    ("store", "stage"),
)

# --------------------------------------------------------------------------- translation
TRANSLATION_DURATION = _h(
    "egobs_translation_duration_seconds",
    "Duration of one translation run, by translator (gatewayapi: resources to IR and "
    "statuses; xds: IR to Envoy resources, all Gateways).",
    ("translator",),
)
TRANSLATION_RUNS = _c(
    "egobs_translation_runs_total",
    "Translation runs, by result (success, error).",
    ("result",),
)
TRANSLATION_ERRORS = _c(
    "egobs_translation_errors_total",
    "Translation runs that raised, by translator and exception type (a run that raised "
    "publishes nothing; objects a translation rejects are egobs_rejected_objects).",
    ("translator", "reason"),
)
# egobs_routes, egobs_listeners and egobs_rejected_objects: read from the last statuses
# when scraped, not while a change is built.
STATUSES = StatusGauges()
REGISTRY.register(STATUSES)

# --------------------------------------------------------------------------- snapshots, xDS
SNAPSHOT_BUILDS = _c(
    "egobs_xds_snapshot_builds_total",
    "xDS snapshots installed in the cache, by gateway.",
    ("gateway",),
)
CONFIG_CHANGE = _g(
    "egobs_config_change_timestamp_seconds",
    "Unix time of the last configuration change installed for a gateway (its xDS snapshot); "
    "trace_id is that change's trace (empty when untraced or not sampled). One series per "
    "gateway, replaced on each change: the dashboards' config-change annotation.",
    ("gateway", "trace_id"),
)
CONFIG_SIZE = _h(
    "egobs_xds_config_size_bytes",
    "Serialized size of each xDS response pushed, by type URL.",
    ("type_url",),
    SIZE_BUCKETS,
)
PUSHES = _c("egobs_xds_pushes_total", "xDS responses pushed, by type URL.", ("type_url",))
PUSH_DURATION = _h(
    "egobs_xds_push_duration_seconds",
    "Time from pushing an xDS response to the proxy's ACK or NACK of it, by type URL.",
    ("type_url",),
)
ACKS = _c("egobs_xds_acks_total", "xDS responses a proxy accepted, by type URL.", ("type_url",))
NACKS = _c(
    "egobs_xds_nacks_total",
    "xDS responses a proxy rejected, by type URL and gateway.",
    ("type_url", "gateway"),
)
STREAMS_REFUSED = _c(
    "egobs_xds_streams_refused_total",
    "xDS streams refused (PERMISSION_DENIED) because the client certificate does not name "
    "the Gateway asked for (reason not_certified) or a stream asked for a second Gateway "
    "(reason gateway_switched); gateway is the Gateway asked for.",
    ("reason", "gateway"),
)
CONNECTED_PROXIES = _g(
    "egobs_xds_connected_proxies",
    "ADS streams currently open, by gateway.",
    ("gateway",),
)
STALE_PROXIES = _g(
    "egobs_xds_stale_proxies",
    "Connected proxies whose acked version differs from the latest sent (push in flight "
    "or rejected), by gateway.",
    ("gateway",),
)
STREAM_DURATION = _h(
    "egobs_xds_stream_duration_seconds",
    "Lifetime of closed ADS streams, by protocol mode (sotw, delta).",
    ("mode",),
    STREAM_BUCKETS,
)
CONVERGENCE = _h(
    "egobs_proxy_convergence_seconds",
    "Time from the provider event that caused a config change to a proxy's ACK of every "
    "resource type the change pushed to it, by gateway.",
    ("gateway",),
    CONVERGENCE_BUCKETS,
)

# --------------------------------------------------------------------------- infra
INFRA_PROXIES = _g(
    "egobs_infra_proxies",
    "Envoy processes managed by the infra backend, by state.",
    ("state",),
)
INFRA_RESTARTS = _c(
    "egobs_infra_restarts_total",
    "Unexpected Envoy exits followed by a restart, by gateway.",
    ("gateway",),
)
INFRA_START_DURATION = _h(
    "egobs_infra_start_duration_seconds",
    "Time from spawning an Envoy until its admin server answered.",
)
INFRA_APPLY_DURATION = _h(
    "egobs_infra_apply_duration_seconds",
    "Time the infra backend took to reconcile proxies after a translation.",
)

# --------------------------------------------------------------------------- build
BUILD_INFO = _g(
    "egobs_build_info",
    "Always 1; labels carry the egobs, Envoy and Python versions.",
    ("version", "envoy_version", "python_version"),
)


Definition = tuple[str, str, str, tuple[str, ...]]


def definitions(registry: CollectorRegistry = REGISTRY) -> Iterator[Definition]:
    """(name, type, help, labels) of every ``egobs_`` metric on ``registry``, sorted by name.

    Counters are named as exposed (with ``_total``). Metric wrappers (``Counter`` ...) are
    read directly; a custom collector is read from its ``describe()`` families, so the RED
    families the sink builds at scrape time are listed even before they have samples.
    """
    rows: list[Definition] = []
    for collector in set(registry._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            name, kind = collector._name, str(collector._type)
            rows.append(
                (
                    name + "_total" if kind == "counter" else name,
                    kind,
                    collector._documentation,
                    tuple(collector._labelnames),
                )
            )
            continue
        describe = getattr(collector, "describe", None)
        if describe is None:  # e.g. ProcessCollector: process_* metrics, not ours
            continue
        for family in describe():
            if not family.name.startswith("egobs_"):
                continue
            rows.append(
                (
                    family.name + "_total" if family.type == "counter" else family.name,
                    family.type,
                    family.documentation,
                    tuple(getattr(family, "_labelnames", ())),
                )
            )
    yield from sorted(rows)


def sink_definitions() -> Iterator[Definition]:
    """(name, type, help, labels) of every metric of the access-log sink (``egobs sink``)."""
    from egobs.sink.metrics import SinkMetrics

    yield from definitions(SinkMetrics().registry)


def _table(rows: Iterator[Definition]) -> list[str]:
    lines = ["| Metric | Type | Labels | Description |", "|---|---|---|---|"]
    for name, kind, doc, labels in rows:
        label_text = ", ".join(f"`{label}`" for label in labels) or "-"
        lines.append(f"| `{name}` | {kind} | {label_text} | {doc} |")
    return lines


SINK_HEADING = "## Access-log sink (`egobs sink`)"


def markdown() -> str:
    """The metrics reference page (``docs/metrics.md``): the control plane's, then the sink's."""
    lines = [
        "# egobs metrics",
        "",
        "<!-- Generated by `python -m egobs.telemetry.metrics --markdown > docs/metrics.md`;",
        "     tests/telemetry/test_telemetry_metrics_doc.py fails when it is out of date. -->",
        "",
        "## Control plane (`egobs serve`)",
        "",
        "Served at the admin server's `/metrics` (Prometheus text format). Histograms, never",
        "summaries, so they aggregate across replicas. Labels are bounded: no per-stream,",
        "per-node or per-request labels. The standard `process_*` metrics of the control",
        "plane's own process (CPU seconds, resident memory, open file descriptors) are served",
        "too.",
        "",
        *_table(definitions()),
        "",
        SINK_HEADING,
        "",
        "Served at the sink's metrics address (`metrics` in its config, 127.0.0.1:18091 by",
        "default; `egobs demo` prints it). The RED metrics (`requests`, durations, bytes,",
        "response flags) are derived from the access-log entries Envoy streams to the sink;",
        "`route`, `upstream_cluster` and `gateway` values beyond the cardinality cap",
        "(`labelCap`) are counted under `other`. The rest are the sink's own health.",
        "",
        *_table(sink_definitions()),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m egobs.telemetry.metrics --markdown")
    sys.stdout.write(markdown())
