"""The building blocks every egobs dashboard is made of, on top of grafanalib.

A dashboard is a :class:`DashboardSpec`: rows of :class:`PanelSpec` values (title, unit,
PromQL queries) plus its template variables. :func:`build` turns one into a grafanalib
``Dashboard`` with what every egobs dashboard shares: the datasource variable, the
config-change and NACK annotations, links to the other egobs dashboards, a link to Jaeger
on latency panels. The question a panel answers is its description; it is written once,
in the dashboard module's docstring, and read from there (:func:`questions`)::

    spec = DashboardSpec(uid="egobs-x", title="egobs / X", doc=__doc__, rows=(...))
    dashboard = build(spec)

PromQL conventions (tests/stack/test_dashboards.py checks them): every counter is inside
``rate()`` or ``increase()`` over ``$__rate_interval``; every metric name is in
:mod:`egobs.dashboards.catalog`.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from grafanalib import core as g

__all__ = [
    "DATASOURCE",
    "JAEGER_UID",
    "PROMETHEUS_UID",
    "DashboardSpec",
    "PanelSpec",
    "Query",
    "Row",
    "Variable",
    "build",
    "questions",
]

PROMETHEUS_UID = "prometheus"  # the uid the compose stack provisions Prometheus with
JAEGER_UID = "jaeger"  # and Jaeger with
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TAG = "egobs"
SCHEMA_VERSION = 39  # Grafana 10.4+; the JSON below is in that schema, nothing to migrate
PANEL_HEIGHT = 8

Kind = Literal["timeseries", "stat", "heatmap"]


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL query of a panel and the legend of its series."""

    expr: str
    legend: str = ""


@dataclass(frozen=True, slots=True)
class PanelSpec:
    """A panel: its title (its question comes from the dashboard's docstring), Grafana unit
    id and queries. ``traces`` names the Jaeger service a latency panel links to ("" for
    a search with no service chosen); ``None``: no trace link."""

    title: str
    unit: str
    queries: tuple[Query, ...]
    kind: Kind = "timeseries"
    width: int = 12
    traces: str | None = None
    stack: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    title: str
    panels: tuple[PanelSpec, ...]


@dataclass(frozen=True, slots=True)
class Variable:
    """A query variable: the values of ``label`` on the series ``selector`` selects."""

    name: str
    label: str
    selector: str
    title: str

    @property
    def query(self) -> str:
        return f"label_values({self.selector}, {self.label})"


@dataclass(frozen=True, slots=True)
class DashboardSpec:
    """A whole dashboard. ``doc`` is its module's docstring: the summary (first
    paragraph) and, under ``Panels:``, one ``- Title: question`` item per panel."""

    uid: str
    title: str
    doc: str | None
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = field(default=())

    @property
    def summary(self) -> str:
        text = " ".join((self.doc or "").strip().split("\n\n")[0].split())
        return text.replace("``", "`")

    def panels(self) -> list[PanelSpec]:
        return [p for row in self.rows for p in row.panels]


# --------------------------------------------------------------------------- questions

_ITEM = re.compile(r"^- (?P<title>[^:]+): (?P<question>.+)$")


def questions(doc: str | None) -> dict[str, str]:
    """``{panel title: question}`` from the ``Panels:`` list of a dashboard docstring
    (an item may continue on indented lines)."""
    text = (doc or "").split("\nPanels:", 1)
    if len(text) != 2:
        return {}
    out: dict[str, str] = {}
    current: str | None = None
    for raw in text[1].splitlines():
        line = raw.strip()
        match = _ITEM.match(line)
        if match:
            current = match["title"].strip()
            question = match["question"].strip()
            out[current] = question[:1].upper() + question[1:]
        elif line and current is not None and raw.startswith("  "):
            out[current] += " " + line
        elif not line:
            current = None
    return out


# --------------------------------------------------------------------------- links


def explore_url(
    datasource_uid: str, query: Mapping[str, Any], *, raw: str = "", keep_time: bool = True
) -> str:
    """A Grafana Explore URL running ``query`` on a datasource (over the panel's time range
    with ``keep_time``). ``raw`` replaces the string ``"@RAW@"`` in the query after
    encoding (a ``{{label}}`` template an annotation fills in); Grafana's ``${__from}`` and
    ``${__to}`` stay unencoded so Grafana interpolates them."""
    left: dict[str, Any] = {
        "datasource": datasource_uid,
        "queries": [{"refId": "A", "datasource": {"uid": datasource_uid}, **query}],
    }
    if keep_time:
        left["range"] = {"from": "@FROM@", "to": "@TO@"}
    encoded = urllib.parse.quote(json.dumps(left, separators=(",", ":"), sort_keys=True))
    for placeholder, text in (("RAW", raw), ("FROM", "${__from}"), ("TO", "${__to}")):
        encoded = encoded.replace(f"%40{placeholder}%40", text)
    return "/explore?left=" + encoded


def trace_search_link(service: str) -> dict[str, Any]:
    """A panel link to a Jaeger trace search over the panel's time range."""
    query: dict[str, Any] = {"queryType": "search"}
    if service:
        query["service"] = service
    return {
        "title": f"Traces in Jaeger{f' ({service})' if service else ''}",
        "url": explore_url(JAEGER_UID, query),
        "targetBlank": True,
    }


def trace_id_url(template: str) -> str:
    """Explore URL opening one trace in Jaeger; ``template`` is e.g. ``{{trace_id}}``."""
    return explore_url(JAEGER_UID, {"query": "@RAW@"}, raw=template, keep_time=False)


# --------------------------------------------------------------------------- annotations

CHANGE_ANNOTATION = (
    'max by (gateway, trace_id) (egobs_config_change_timestamp_seconds{gateway=~"$gateway"}) * 1000'
)
NACK_ANNOTATION = (
    "(sum by (gateway, type_url) (increase(egobs_xds_nacks_total"
    '{gateway=~"$gateway"}[$__rate_interval])) > 0)'
    " * on (gateway) group_left (trace_id)"
    " (0 * topk by (gateway) (1, egobs_config_change_timestamp_seconds"
    '{gateway=~"$gateway"}) + 1)'
)


def change_annotations() -> list[dict[str, Any]]:
    """Grafana's built-in annotations, then every config change the control plane applied
    (blue, at the exact time: the gauge's value) and every NACK (red), each linking to the
    change's trace in Jaeger."""
    ds = {"type": "prometheus", "uid": PROMETHEUS_UID}
    link = f'<a href="{trace_id_url("{{trace_id}}")}">trace {{{{trace_id}}}}</a>'

    def prom(name: str, expr: str, colour: str, title: str, text: str, **kw: Any) -> dict:
        return {
            "datasource": ds,
            "enable": True,
            "expr": expr,
            "hide": False,
            "iconColor": colour,
            "name": name,
            "step": "10s",
            "tagKeys": "gateway",
            "target": {"expr": expr, "refId": name, "datasource": ds},
            "textFormat": text,
            "titleFormat": title,
            **kw,
        }

    return [
        {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        },
        prom(
            "Config changes",
            CHANGE_ANNOTATION,
            "blue",
            "config change applied: {{gateway}}",
            f"{link} (empty: the control plane's tracing is off)",
            useValueForTime=True,
        ),
        prom(
            "NACKs",
            NACK_ANNOTATION,
            "red",
            "NACK: {{gateway}} rejected {{type_url}}",
            f"Envoy rejected the change of {link}; egobs status --proxies shows the message",
            useValueForTime=False,
        ),
    ]


def annotation_queries() -> dict[str, str]:
    """Annotation name -> PromQL, for tests."""
    return {a["name"]: a["expr"] for a in change_annotations() if "expr" in a}


# --------------------------------------------------------------------------- variables

GATEWAY_ALL = ".*"


def _variables(spec: DashboardSpec) -> list[g.Template]:
    out = [
        g.Template(
            name="datasource",
            label="Prometheus",
            query="prometheus",
            type="datasource",
            default=PROMETHEUS_UID,
        )
    ]
    for var in spec.variables:
        out.append(
            g.Template(
                name=var.name,
                label=var.title,
                query=var.query,
                dataSource=DATASOURCE,
                includeAll=True,
                multi=True,
                allValue=GATEWAY_ALL,
                default="$__all",
                refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
            )
        )
    return out


# --------------------------------------------------------------------------- panels


def _targets(queries: tuple[Query, ...], *, heatmap: bool = False) -> list[g.Target]:
    return [
        g.Target(
            expr=q.expr,
            legendFormat=q.legend,
            refId=chr(ord("A") + i),
            datasource=DATASOURCE,
            intervalFactor=1,
            format="heatmap" if heatmap else "time_series",
        )
        for i, q in enumerate(queries)
    ]


def _panel(p: PanelSpec, question: str, pos: g.GridPos) -> g.Panel:
    links = [trace_search_link(p.traces)] if p.traces is not None else []
    common: dict[str, Any] = {
        "title": p.title,
        "description": question,
        "dataSource": DATASOURCE,
        "gridPos": pos,
        "links": links,
    }
    if p.kind == "stat":
        return g.Stat(
            targets=_targets(p.queries),
            format=p.unit,
            reduceCalc="lastNotNull",
            graphMode="area",
            **common,
        )
    if p.kind == "heatmap":
        return g.Heatmap(
            targets=_targets(p.queries, heatmap=True),
            dataFormat="tsbuckets",
            yAxis=g.YAxis(format=p.unit),
            extraJson={
                "fieldConfig": {"defaults": {"unit": p.unit}},
                "options": {
                    "calculate": False,
                    "cellGap": 1,
                    "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                    "yAxis": {"unit": p.unit},
                    "tooltip": {"show": True, "yHistogram": True},
                },
            },
            **common,
        )
    return g.TimeSeries(
        targets=_targets(p.queries),
        unit=p.unit,
        fillOpacity=10,
        legendDisplayMode="table",
        legendCalcs=["mean", "max", "lastNotNull"],
        tooltipMode="multi",
        stacking={"mode": "normal", "group": "A"} if p.stack else {},
        **common,
    )


def _layout(spec: DashboardSpec, asked: Mapping[str, str]) -> list[g.Panel]:
    out: list[g.Panel] = []
    y = 0
    for row in spec.rows:
        out.append(g.RowPanel(title=row.title, gridPos=g.GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        x = 0
        for p in row.panels:
            if x + p.width > 24:
                x, y = 0, y + PANEL_HEIGHT
            question = asked.get(p.title)
            if not question:
                raise ValueError(f"{spec.uid}: panel {p.title!r} has no question in the docstring")
            out.append(_panel(p, question, g.GridPos(h=PANEL_HEIGHT, w=p.width, x=x, y=y)))
            x += p.width
        y += PANEL_HEIGHT
    return out


def build(spec: DashboardSpec) -> g.Dashboard:
    """The grafanalib dashboard of ``spec`` (panel ids assigned in order)."""
    asked = questions(spec.doc)
    extra = set(asked) - {p.title for p in spec.panels()}
    if extra:
        raise ValueError(f"{spec.uid}: docstring names panels that do not exist: {extra}")
    return g.Dashboard(
        uid=spec.uid,
        title=spec.title,
        description=spec.summary,
        tags=[TAG],
        timezone="browser",
        refresh="30s",
        schemaVersion=SCHEMA_VERSION,
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        time=g.Time("now-1h", "now"),
        annotations=g.Annotations(list=change_annotations()),
        links=[
            g.DashboardLink(
                title="egobs dashboards",
                tags=[TAG],
                asDropdown=True,
                includeVars=True,
                keepTime=True,
            )
        ],
        templating=g.Templating(list=_variables(spec)),
        panels=_layout(spec, asked),
    ).auto_panel_ids()
