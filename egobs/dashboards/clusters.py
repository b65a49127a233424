"""Upstream clusters: how are the backends behind each route doing, as Envoy sees them?
From Envoy's stats listener (job ``envoy``), one series per cluster (``envoy_cluster_name``,
e.g. ``service/default/echo/8080``).

Panels:

- Requests per cluster: how many requests per second does Envoy send to each cluster?
- Latency p50/p99 per cluster: how long does each cluster take to answer?
- 5xx per cluster: how many 5xx responses per second does each cluster produce (including
  Envoy's own 503s when no endpoint is healthy)?
- 5xx ratio per cluster: what share of each cluster's responses are 5xx?
- Healthy endpoints: how many of each cluster's endpoints are healthy, out of how many?
- Circuit breakers open: is a circuit breaker (connections, requests, pending, retries) open
  on a cluster right now?
- Circuit breaker overflows: how many requests or connections per second are refused
  because a breaker is open?
- Outlier ejections: how many endpoints are ejected by outlier detection, and how often?
- Connect failures: are connections to a cluster failing or timing out?
"""

from __future__ import annotations

from egobs.dashboards.envoy import ENVOY, PROXY_VARIABLES
from egobs.dashboards.kit import DashboardSpec, PanelSpec, Query, Row, Variable

__all__ = ["SPEC"]

CL = f'{ENVOY},envoy_cluster_name=~"$cluster"'
RI = "[$__rate_interval]"
BY = "envoy_cluster_name"
LEGEND = "{{envoy_cluster_name}}"


def _rate(metric: str, legend: str = LEGEND, extra: str = "") -> Query:
    return Query(f"sum by ({BY}) (rate({metric}{{{CL}{extra}}}{RI}))", legend)


SPEC = DashboardSpec(
    uid="egobs-clusters",
    title="egobs / Upstream clusters",
    doc=__doc__,
    variables=(
        *PROXY_VARIABLES,
        Variable(
            "cluster",
            "envoy_cluster_name",
            'envoy_cluster_upstream_rq_total{gateway=~"$gateway",instance=~"$proxy"}',
            "Cluster",
        ),
    ),
    rows=(
        Row(
            "Traffic",
            (
                PanelSpec(
                    "Requests per cluster", "reqps", (_rate("envoy_cluster_upstream_rq_total"),)
                ),
                PanelSpec(
                    "Latency p50/p99 per cluster",
                    "ms",
                    tuple(
                        Query(
                            f"histogram_quantile({q}, sum by ({BY}, le) "
                            f"(rate(envoy_cluster_upstream_rq_time_bucket{{{CL}}}{RI})))",
                            f"p{int(q * 100)} {LEGEND}",
                        )
                        for q in (0.5, 0.99)
                    ),
                    traces="",
                ),
                PanelSpec(
                    "5xx per cluster",
                    "reqps",
                    (
                        _rate(
                            "envoy_cluster_upstream_rq_xx", extra=',envoy_response_code_class="5"'
                        ),
                    ),
                ),
                PanelSpec(
                    "5xx ratio per cluster",
                    "percentunit",
                    (
                        Query(
                            f"sum by ({BY}) (rate(envoy_cluster_upstream_rq_xx"
                            f'{{{CL},envoy_response_code_class="5"}}{RI}))'
                            f" / sum by ({BY}) (rate(envoy_cluster_upstream_rq_xx{{{CL}}}{RI}))",
                            LEGEND,
                        ),
                    ),
                ),
            ),
        ),
        Row(
            "Health",
            (
                PanelSpec(
                    "Healthy endpoints",
                    "short",
                    (
                        Query(
                            f"sum by ({BY}) (envoy_cluster_membership_healthy{{{CL}}})",
                            f"healthy {LEGEND}",
                        ),
                        Query(
                            f"sum by ({BY}) (envoy_cluster_membership_total{{{CL}}})",
                            f"total {LEGEND}",
                        ),
                        Query(
                            f"sum by ({BY}) (envoy_cluster_membership_degraded{{{CL}}})",
                            f"degraded {LEGEND}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Outlier ejections",
                    "short",
                    (
                        Query(
                            f"sum by ({BY}) (envoy_cluster_outlier_detection_ejections_active{{{CL}}})",
                            f"ejected now {LEGEND}",
                        ),
                        Query(
                            f"sum by ({BY}) (increase("
                            f"envoy_cluster_outlier_detection_ejections_enforced_total{{{CL}}}{RI}))",
                            f"ejections {LEGEND}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Circuit breakers open",
                    "short",
                    tuple(
                        Query(
                            f"max by ({BY}) (envoy_cluster_circuit_breakers_default_{kind}_open{{{CL}}})",
                            f"{kind} {LEGEND}",
                        )
                        for kind in ("cx", "rq", "rq_pending", "rq_retry")
                    ),
                ),
                PanelSpec(
                    "Circuit breaker overflows",
                    "ops",
                    (
                        _rate("envoy_cluster_upstream_cx_overflow", f"connections {LEGEND}"),
                        _rate("envoy_cluster_upstream_rq_pending_overflow", f"pending {LEGEND}"),
                        _rate("envoy_cluster_upstream_rq_retry_overflow", f"retries {LEGEND}"),
                    ),
                ),
                PanelSpec(
                    "Connect failures",
                    "ops",
                    (
                        _rate("envoy_cluster_upstream_cx_connect_fail", f"failed {LEGEND}"),
                        _rate("envoy_cluster_upstream_cx_connect_timeout", f"timed out {LEGEND}"),
                    ),
                    width=24,
                ),
            ),
        ),
    ),
)
