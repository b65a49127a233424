"""egobs control plane: is the control plane turning changes into configuration the proxies
accept, how fast, and at what cost?

Panels:

- Config changes applied: how many configuration changes (xDS snapshots) does the control
  plane apply per second, per gateway?
- Provider events: which file events (created, modified, deleted) is the provider handling?
- Translation latency p50/p99: how long does each translation stage (gatewayapi, xds) take,
  typically and at worst?
- Errors: which load problems is the control plane finding, and are translation runs
  failing (and with which exception)?
- Resources loaded: how many objects of each kind does the control plane hold, and how many
  did the last translation reject (and why)?
- Config size p50/p99: how large are the xDS responses pushed, per type, and are they
  nearing gRPC's 4 MiB message limit?
- Pushes: how many xDS responses per second go out, per type?
- ACKs vs NACKs: do the proxies accept what is pushed, or reject it (per gateway)?
- Push to ACK p99: how long does a proxy take to ACK or NACK a push, per type?
- Convergence p50/p99: how long from a file event until each gateway's proxies have ACKed
  everything the change pushed?
- Convergence heatmap: how are convergence times distributed over time (outliers, bimodal
  behaviour)?
- Connected proxies: how many Envoys hold an ADS stream to the control plane, per gateway?
- Stale proxies: how many connected Envoys run a configuration older than the latest sent
  (push in flight, or rejected)?
- Envoy restarts: is a host-mode Envoy crashing and being restarted?
- Managed Envoys: how many Envoy processes does the infra backend run, by state?
- Process CPU: how much CPU does the control plane use (100% is one core)?
- Process memory: how much resident memory does the control plane hold?
"""

from __future__ import annotations

from egobs.dashboards.kit import DashboardSpec, PanelSpec, Query, Row, Variable

__all__ = ["SPEC"]

GW = 'gateway=~"$gateway"'
RI = "[$__rate_interval]"
EGOBS_JOB = 'job="egobs"'


def _quantiles(metric: str, by: str, legend: str) -> tuple[Query, ...]:
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}{RI})))",
            f"p{int(q * 100)} {legend}",
        )
        for q in (0.5, 0.99)
    )


SPEC = DashboardSpec(
    uid="egobs-control-plane",
    title="egobs / Control plane",
    doc=__doc__,
    variables=(Variable("gateway", "gateway", "egobs_xds_snapshot_builds_total", "Gateway"),),
    rows=(
        Row(
            "Changes and translation",
            (
                PanelSpec(
                    "Config changes applied",
                    "ops",
                    (
                        Query(
                            f"sum by (gateway) (rate(egobs_xds_snapshot_builds_total{{{GW}}}{RI}))",
                            "{{gateway}}",
                        ),
                    ),
                    width=8,
                ),
                PanelSpec(
                    "Provider events",
                    "ops",
                    (
                        Query(
                            f"sum by (operation) (rate(egobs_provider_events_total{RI}))",
                            "{{operation}}",
                        ),
                    ),
                    width=8,
                ),
                PanelSpec(
                    "Translation latency p50/p99",
                    "s",
                    _quantiles(
                        "egobs_translation_duration_seconds_bucket", "translator", "{{translator}}"
                    ),
                    width=8,
                    traces="egobs",
                ),
                PanelSpec(
                    "Errors",
                    "ops",
                    (
                        Query(
                            f"sum by (reason) (rate(egobs_provider_load_errors_total{RI}))",
                            "load error: {{reason}}",
                        ),
                        Query(
                            f"sum by (translator, reason) (rate(egobs_translation_errors_total{RI}))",
                            "{{translator}} raised {{reason}}",
                        ),
                        Query(
                            f"sum by (result) (rate(egobs_translation_runs_total{RI}))",
                            "translation runs: {{result}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Resources loaded",
                    "short",
                    (
                        Query("sum by (kind) (egobs_provider_resources)", "{{kind}}"),
                        Query(
                            "sum by (kind, reason) (egobs_rejected_objects)",
                            "rejected {{kind}}: {{reason}}",
                        ),
                    ),
                ),
            ),
        ),
        Row(
            "xDS",
            (
                PanelSpec(
                    "Config size p50/p99",
                    "bytes",
                    _quantiles("egobs_xds_config_size_bytes_bucket", "type_url", "{{type_url}}"),
                ),
                PanelSpec(
                    "Pushes",
                    "ops",
                    (
                        Query(
                            f"sum by (type_url) (rate(egobs_xds_pushes_total{RI}))",
                            "{{type_url}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "ACKs vs NACKs",
                    "ops",
                    (
                        Query(f"sum(rate(egobs_xds_acks_total{RI}))", "ACKs"),
                        Query(
                            f"sum by (gateway) (rate(egobs_xds_nacks_total{{{GW}}}{RI}))",
                            "NACKs {{gateway}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Push to ACK p99",
                    "s",
                    (
                        Query(
                            "histogram_quantile(0.99, sum by (type_url, le) "
                            f"(rate(egobs_xds_push_duration_seconds_bucket{RI})))",
                            "{{type_url}}",
                        ),
                    ),
                    traces="egobs",
                ),
            ),
        ),
        Row(
            "Convergence",
            (
                PanelSpec(
                    "Convergence p50/p99",
                    "s",
                    _quantiles(
                        f"egobs_proxy_convergence_seconds_bucket{{{GW}}}", "gateway", "{{gateway}}"
                    ),
                    traces="egobs",
                ),
                PanelSpec(
                    "Convergence heatmap",
                    "s",
                    (
                        Query(
                            "sum by (le) (increase("
                            f"egobs_proxy_convergence_seconds_bucket{{{GW}}}{RI}))",
                            "{{le}}",
                        ),
                    ),
                    kind="heatmap",
                ),
            ),
        ),
        Row(
            "Proxies",
            (
                PanelSpec(
                    "Connected proxies",
                    "short",
                    (
                        Query(
                            f"sum by (gateway) (egobs_xds_connected_proxies{{{GW}}})",
                            "{{gateway}}",
                        ),
                    ),
                    width=6,
                ),
                PanelSpec(
                    "Stale proxies",
                    "short",
                    (Query(f"sum by (gateway) (egobs_xds_stale_proxies{{{GW}}})", "{{gateway}}"),),
                    width=6,
                ),
                PanelSpec(
                    "Envoy restarts",
                    "short",
                    (
                        Query(
                            f"sum by (gateway) (increase(egobs_infra_restarts_total{{{GW}}}{RI}))",
                            "{{gateway}}",
                        ),
                    ),
                    width=6,
                ),
                PanelSpec(
                    "Managed Envoys",
                    "short",
                    (Query("sum by (state) (egobs_infra_proxies)", "{{state}}"),),
                    width=6,
                ),
            ),
        ),
        Row(
            "Process",
            (
                PanelSpec(
                    "Process CPU",
                    "percentunit",
                    (
                        Query(
                            f"sum by (instance) (rate(process_cpu_seconds_total{{{EGOBS_JOB}}}{RI}))",
                            "{{instance}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Process memory",
                    "bytes",
                    (
                        Query(
                            f"sum by (instance) (process_resident_memory_bytes{{{EGOBS_JOB}}})",
                            "{{instance}}",
                        ),
                    ),
                ),
            ),
        ),
    ),
)
