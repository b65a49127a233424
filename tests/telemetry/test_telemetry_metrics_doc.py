"""docs/metrics.md is generated from the registries and must match them exactly; every metric
the issue names exists; nothing outside the registry exposes an ``egobs_`` metric; the
access-log sink's metrics have their own section, checked against a real SinkMetrics."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest

from egobs.sink.metrics import SinkMetrics
from egobs.telemetry import metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"

REQUIRED = {
    "egobs_provider_events_total",
    "egobs_provider_load_errors_total",
    "egobs_provider_resources",
    "egobs_provider_failing_sources",
    "egobs_bus_depth",
    "egobs_bus_publishes_total",
    "egobs_bus_handle_duration_seconds",
    "egobs_translation_duration_seconds",
    "egobs_translation_runs_total",
    "egobs_translation_errors_total",
    "egobs_routes",
    "egobs_listeners",
    "egobs_rejected_objects",
    "egobs_xds_snapshot_builds_total",
    "egobs_xds_config_size_bytes",
    "egobs_xds_pushes_total",
    "egobs_xds_push_duration_seconds",
    "egobs_xds_acks_total",
    "egobs_xds_nacks_total",
    "egobs_xds_connected_proxies",
    "egobs_xds_stale_proxies",
    "egobs_xds_stream_duration_seconds",
    "egobs_proxy_convergence_seconds",
    "egobs_infra_proxies",
    "egobs_infra_restarts_total",
    "egobs_infra_start_duration_seconds",
    "egobs_infra_apply_duration_seconds",
    "egobs_build_info",
}


def _rows(text: str) -> set[str]:
    return set(re.findall(r"^\| `(egobs_[a-z_]+)` \|", text, re.MULTILINE))


def _sections() -> tuple[str, str]:
    """The control plane's part of the reference and the sink's."""
    control_plane, heading, sink = DOC.read_text().partition(metrics.SINK_HEADING)
    assert heading, f"docs/metrics.md has no {metrics.SINK_HEADING!r} section"
    return control_plane, sink


def documented() -> set[str]:
    """Metrics in the control plane's section."""
    return _rows(_sections()[0])


def documented_sink() -> set[str]:
    """Metrics in the sink's section."""
    return _rows(_sections()[1])


def registered() -> set[str]:
    return {name for name, *_ in metrics.definitions()}


def test_doc_is_generated_from_the_current_registry() -> None:
    assert DOC.read_text() == metrics.markdown(), (
        "docs/metrics.md is stale: python -m egobs.telemetry.metrics --markdown > docs/metrics.md"
    )


def test_documented_metrics_equal_registered_metrics() -> None:
    assert documented() == registered()
    assert all(name.startswith("egobs_") for name in registered())


def test_every_metric_of_the_issue_exists() -> None:
    assert registered() >= REQUIRED, sorted(REQUIRED - registered())


def test_histograms_not_summaries_and_help_everywhere() -> None:
    for name, kind, doc, _ in metrics.definitions():
        assert kind in {"counter", "gauge", "histogram"}, name
        assert doc.strip(), f"{name} has no help text"


def undocumented(exposition: str, doc: set[str] | None = None) -> set[str]:
    """``egobs_`` families in a Prometheus text exposition that the reference (``doc``, by
    default the control plane's section) lacks."""
    exposed = set(re.findall(r"^# TYPE (egobs_\w+) ", exposition, re.MULTILINE))
    doc = documented() if doc is None else doc
    # prometheus-client adds a "<name>_created" timestamp family to counters and histograms.
    bases = {n.removesuffix("_created") if n.endswith("_created") else n for n in exposed}
    return {n for n in bases if n not in doc and f"{n}_total" not in doc}


def test_exposition_has_no_undocumented_egobs_metric() -> None:
    assert undocumented(generate_latest(metrics.REGISTRY).decode()) == set()


def test_sink_section_lists_every_sink_metric() -> None:
    sink = set(name for name, *_ in metrics.sink_definitions())
    assert sink and all(name.startswith("egobs_sink_") for name in sink)
    assert documented_sink() == sink
    assert not documented() & sink, "sink metrics belong in the sink's section"


def test_sink_exposition_has_no_undocumented_metric() -> None:
    """Read a real SinkMetrics exposition, RED families included (built at scrape time)."""
    exposition = generate_latest(SinkMetrics().registry).decode()
    exposed = set(re.findall(r"^# TYPE (egobs_\w+) ", exposition, re.MULTILINE))
    assert "egobs_sink_requests_total" in exposed and "egobs_sink_queue_depth" in exposed
    assert undocumented(exposition, documented_sink()) == set()
