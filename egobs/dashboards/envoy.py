"""Envoy proxies: what is each Gateway's Envoy serving, how well, and does it hold the
configuration the control plane sent? From Envoy's own stats listener (job ``envoy``; the
scrape config adds a ``gateway`` target label naming the Gateway, ``NAMESPACE/NAME``).

Panels:

- Downstream RPS: how many requests per second does each proxy serve on Gateway listeners?
- Response classes: how do responses split into 1xx-5xx, all proxies selected together?
- Latency quantiles: how long do requests take end to end through Envoy (p50, p90, p99)?
- Active connections and requests: how many downstream connections and requests are open
  right now?
- Memory: how much memory has each Envoy allocated, and how large is its heap?
- Uptime: how long has each Envoy been running (a reset means a restart)?
- Live: is each Envoy live (1) or draining/initialising (0)?
- xDS connected: does Envoy consider itself connected to the control plane (1) or not (0)?
- xDS updates accepted: how many LDS, CDS and RDS updates per second does Envoy apply?
- xDS updates rejected: is Envoy rejecting LDS, CDS or RDS updates (its own view of NACKs)?
"""

from __future__ import annotations

from egobs.dashboards.kit import DashboardSpec, PanelSpec, Query, Row, Variable

__all__ = ["ENVOY", "SPEC"]

ENVOY = 'gateway=~"$gateway",instance=~"$proxy"'
# The variables ENVOY filters on, shared by every dashboard that charts Envoy's stats: the
# Gateway (a target label of the envoy job) and the proxy (its scrape target).
PROXY_VARIABLES = (
    Variable("gateway", "gateway", 'envoy_server_live{job="envoy"}', "Gateway"),
    Variable("proxy", "instance", 'envoy_server_live{job="envoy",gateway=~"$gateway"}', "Proxy"),
)
# The Gateway listeners' HTTP connection managers, not Envoy's admin or egobs's stats listener.
HCM = f'{ENVOY},envoy_http_conn_manager_prefix!~"admin|egobs-stats"'
RI = "[$__rate_interval]"

_XDS = (
    ("LDS", "envoy_listener_manager_lds"),
    ("CDS", "envoy_cluster_manager_cds"),
    ("RDS", "envoy_http_rds"),
)


def _xds(result: str) -> tuple[Query, ...]:
    return tuple(
        Query(
            f"sum by (instance) (rate({prefix}_update_{result}{{{ENVOY}}}{RI}))",
            f"{kind} {{{{instance}}}}",
        )
        for kind, prefix in _XDS
    )


SPEC = DashboardSpec(
    uid="egobs-envoy",
    title="egobs / Envoy proxies",
    doc=__doc__,
    variables=(*PROXY_VARIABLES,),
    rows=(
        Row(
            "Traffic",
            (
                PanelSpec(
                    "Downstream RPS",
                    "reqps",
                    (
                        Query(
                            f"sum by (instance) (rate(envoy_http_downstream_rq_total{{{HCM}}}{RI}))",
                            "{{instance}}",
                        ),
                    ),
                    width=8,
                ),
                PanelSpec(
                    "Response classes",
                    "reqps",
                    (
                        Query(
                            "sum by (envoy_response_code_class) "
                            f"(rate(envoy_http_downstream_rq_xx{{{HCM}}}{RI}))",
                            "{{envoy_response_code_class}}xx",
                        ),
                    ),
                    width=8,
                    stack=True,
                ),
                PanelSpec(
                    "Latency quantiles",
                    "ms",
                    tuple(
                        Query(
                            f"histogram_quantile({q}, sum by (le) "
                            f"(rate(envoy_http_downstream_rq_time_bucket{{{HCM}}}{RI})))",
                            f"p{int(q * 100)}",
                        )
                        for q in (0.5, 0.9, 0.99)
                    ),
                    width=8,
                    traces="",
                ),
                PanelSpec(
                    "Active connections and requests",
                    "short",
                    (
                        Query(
                            f"sum by (instance) (envoy_http_downstream_cx_active{{{HCM}}})",
                            "connections {{instance}}",
                        ),
                        Query(
                            f"sum by (instance) (envoy_http_downstream_rq_active{{{HCM}}})",
                            "requests {{instance}}",
                        ),
                    ),
                ),
            ),
        ),
        Row(
            "Process",
            (
                PanelSpec(
                    "Memory",
                    "bytes",
                    (
                        Query(
                            f"max by (instance) (envoy_server_memory_allocated{{{ENVOY}}})",
                            "allocated {{instance}}",
                        ),
                        Query(
                            f"max by (instance) (envoy_server_memory_heap_size{{{ENVOY}}})",
                            "heap {{instance}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Uptime",
                    "s",
                    (Query(f"max by (instance) (envoy_server_uptime{{{ENVOY}}})", "{{instance}}"),),
                    kind="stat",
                    width=6,
                ),
                PanelSpec(
                    "Live",
                    "bool",
                    (Query(f"min by (instance) (envoy_server_live{{{ENVOY}}})", "{{instance}}"),),
                    kind="stat",
                    width=6,
                ),
            ),
        ),
        Row(
            "Envoy's view of the control plane",
            (
                PanelSpec(
                    "xDS connected",
                    "bool",
                    (
                        Query(
                            f"min by (instance) (envoy_control_plane_connected_state{{{ENVOY}}})",
                            "{{instance}}",
                        ),
                    ),
                    width=6,
                ),
                PanelSpec("xDS updates accepted", "ops", _xds("success"), width=9),
                PanelSpec("xDS updates rejected", "ops", _xds("rejected"), width=9),
            ),
        ),
    ),
)
