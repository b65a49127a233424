"""docs/metrics.md is generated from the registry and must match it exactly; every metric the
issue names exists; nothing outside the registry exposes an ``egobs_`` metric."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest

from egobs.telemetry import metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"

REQUIRED = {
    "egobs_provider_events_total",
    "egobs_provider_load_errors_total",
    "egobs_provider_resources",
    "egobs_bus_depth",
    "egobs_bus_publishes_total",
    "egobs_bus_handle_duration_seconds",
    "egobs_translation_duration_seconds",
    "egobs_translation_runs_total",
    "egobs_translation_errors_total",
    "egobs_routes",
    "egobs_listeners",
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


def documented() -> set[str]:
    return set(re.findall(r"^\| `(egobs_[a-z_]+)` \|", DOC.read_text(), re.MULTILINE))


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


def undocumented(exposition: str) -> set[str]:
    """``egobs_`` families in a Prometheus text exposition that the reference lacks."""
    exposed = set(re.findall(r"^# TYPE (egobs_\w+) ", exposition, re.MULTILINE))
    doc = documented()
    # prometheus-client adds a "<name>_created" timestamp family to counters and histograms.
    bases = {n.removesuffix("_created") if n.endswith("_created") else n for n in exposed}
    return {n for n in bases if n not in doc and f"{n}_total" not in doc}


def test_exposition_has_no_undocumented_egobs_metric() -> None:
    assert undocumented(generate_latest(metrics.REGISTRY).decode()) == set()
