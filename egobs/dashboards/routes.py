"""Routes: rate, errors and duration of every route, from the access logs Envoy streams to
the egobs sink (job ``egobs-sink``). ``route`` is Envoy's route name
(``httproute/NAMESPACE/NAME/rule/N/match/M``; empty when no route matched, e.g. 404s).

Panels:

- Requests per route: how many requests per second does each route serve?
- Responses by class: how do each route's responses split into 2xx, 3xx, 4xx and 5xx?
- 5xx ratio per route: what share of each route's requests fail with a 5xx?
- Duration p50/p99 per route: how long do each route's requests take, typically and at
  worst?
- Response flags: why did Envoy fail or shortcut requests (no route, no healthy upstream,
  upstream reset...), per route?
- Bytes per route: how much data does each route receive and send?
"""

from __future__ import annotations

from egobs.dashboards.kit import DashboardSpec, PanelSpec, Query, Row, Variable

__all__ = ["SPEC"]

RT = 'gateway=~"$gateway",route=~"$route"'
RI = "[$__rate_interval]"

SPEC = DashboardSpec(
    uid="egobs-routes",
    title="egobs / Routes",
    doc=__doc__,
    variables=(
        Variable("gateway", "gateway", "egobs_sink_requests_total", "Gateway"),
        Variable("route", "route", 'egobs_sink_requests_total{gateway=~"$gateway"}', "Route"),
    ),
    rows=(
        Row(
            "Rate and errors",
            (
                PanelSpec(
                    "Requests per route",
                    "reqps",
                    (
                        Query(
                            f"sum by (route) (rate(egobs_sink_requests_total{{{RT}}}{RI}))",
                            "{{route}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Responses by class",
                    "reqps",
                    (
                        Query(
                            f"sum by (route, code_class) (rate(egobs_sink_requests_total{{{RT}}}{RI}))",
                            "{{code_class}} {{route}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "5xx ratio per route",
                    "percentunit",
                    (
                        Query(
                            "sum by (route) (rate(egobs_sink_requests_total"
                            f'{{{RT},code_class="5xx"}}{RI}))'
                            f" / sum by (route) (rate(egobs_sink_requests_total{{{RT}}}{RI}))",
                            "{{route}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Response flags",
                    "ops",
                    (
                        Query(
                            "sum by (route, flag) "
                            f"(rate(egobs_sink_response_flags_total{{{RT}}}{RI}))",
                            "{{flag}} {{route}}",
                        ),
                    ),
                ),
            ),
        ),
        Row(
            "Duration and size",
            (
                PanelSpec(
                    "Duration p50/p99 per route",
                    "s",
                    tuple(
                        Query(
                            f"histogram_quantile({q}, sum by (route, le) "
                            f"(rate(egobs_sink_request_duration_seconds_bucket{{{RT}}}{RI})))",
                            f"p{int(q * 100)} {{{{route}}}}",
                        )
                        for q in (0.5, 0.99)
                    ),
                    traces="",
                ),
                PanelSpec(
                    "Bytes per route",
                    "Bps",
                    (
                        Query(
                            f"sum by (route) (rate(egobs_sink_received_bytes_total{{{RT}}}{RI}))",
                            "received {{route}}",
                        ),
                        Query(
                            f"sum by (route) (rate(egobs_sink_sent_bytes_total{{{RT}}}{RI}))",
                            "sent {{route}}",
                        ),
                    ),
                ),
            ),
        ),
    ),
)
