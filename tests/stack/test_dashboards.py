"""The dashboards in code and their checked-in JSON and docs: the JSON under dashboards/
and docs/dashboards.md are what ``egobs dashboards generate`` writes now; every panel has
a unit and a description; every counter in a query is inside rate()/increase(); every
metric is catalogued; every dashboard has the config-change and NACK annotations, the
variables and the links."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from egobs.cli import main
from egobs.dashboards import (
    DASHBOARDS,
    all_queries,
    markdown,
    readme_with_dashboards,
    render_all,
)
from egobs.dashboards.catalog import counter_like, family, metric_names
from egobs.dashboards.kit import CHANGE_ANNOTATION, NACK_ANNOTATION

REPO = Path(__file__).resolve().parents[2]
CHECKED_IN = REPO / "dashboards"
DOC = REPO / "docs" / "dashboards.md"
FIX = "run `egobs dashboards generate` in the repo and commit the result"


def load(name: str) -> dict[str, Any]:
    return json.loads(render_all()[name])  # type: ignore[no-any-return]


DASHBOARD_FILES = sorted(render_all())


def panels(name: str) -> list[dict[str, Any]]:
    return [p for p in load(name)["panels"] if p["type"] != "row"]


# --------------------------------------------------------------------------- staleness


def test_generate_writes_what_is_checked_in(tmp_path: Path) -> None:
    out, doc, readme = tmp_path / "dashboards", tmp_path / "dashboards.md", tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text())
    result = CliRunner().invoke(
        main,
        ["dashboards", "generate", "--out", str(out), "--docs", str(doc), "--readme", str(readme)],
    )
    assert result.exit_code == 0, result.output
    generated = sorted(p.name for p in out.iterdir())
    assert generated == sorted(p.name for p in CHECKED_IN.glob("*.json")), FIX
    for name in generated:
        text = (out / name).read_text()
        assert text.endswith("}\n")
        assert text == (CHECKED_IN / name).read_text(), f"dashboards/{name} is stale: {FIX}"
    assert doc.read_text() == DOC.read_text(), f"docs/dashboards.md is stale: {FIX}"
    assert readme.read_text() == (REPO / "README.md").read_text(), f"README.md is stale: {FIX}"


def test_readme_lists_every_dashboard_as_generated() -> None:
    """README.md's dashboard section is what `egobs dashboards generate` writes there."""
    readme = (REPO / "README.md").read_text()
    assert readme_with_dashboards(readme) == readme, f"README.md's dashboard list is stale: {FIX}"
    for spec in DASHBOARDS:
        assert f"#### {spec.title}" in readme


def test_output_is_stable_and_sorted() -> None:
    first = render_all()
    assert first == render_all()
    for text in first.values():
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_docs_name_every_panel_and_its_question() -> None:
    doc = markdown()
    for name in DASHBOARD_FILES:
        data = load(name)
        assert f"## {data['title']}" in doc
        for p in panels(name):
            assert f"{p['title']} | " in doc and p["description"] in doc, p["title"]


# --------------------------------------------------------------------------- panels


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_every_panel_has_unit_description_and_queries(name: str) -> None:
    for p in panels(name):
        unit = p["fieldConfig"]["defaults"].get("unit")
        assert unit and unit != "none", f"{name}: {p['title']} has no unit"
        assert len(p.get("description") or "") > 20, f"{name}: {p['title']} has no description"
        assert p["description"].endswith("?"), p["description"]
        assert p["targets"], f"{name}: {p['title']} has no query"
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_panels_do_not_overlap() -> None:
    for name in DASHBOARD_FILES:
        taken: set[tuple[int, int]] = set()
        for p in load(name)["panels"]:
            pos = p["gridPos"]
            assert pos["x"] + pos["w"] <= 24
            cells = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not cells & taken, f"{name}: {p['title']} overlaps another panel"
            taken |= cells


def test_latency_panels_link_to_traces() -> None:
    for name in DASHBOARD_FILES:
        for p in panels(name):
            if p["fieldConfig"]["defaults"]["unit"] in {"s", "ms"} and p["type"] == "timeseries":
                urls = [link["url"] for link in p["links"]]
                assert any("jaeger" in u and "${__from}" in u for u in urls), p["title"]


# --------------------------------------------------------------------------- PromQL


def test_every_metric_is_catalogued() -> None:
    for q in all_queries():
        names = metric_names(q.expr)
        assert names, f"{q}: no metric in the expression"
        for _, metric in names:
            assert family(metric), f"{q.dashboard} {q.panel}: {metric} is not in the catalog"


_IN_RATE = re.compile(r"(?:\b(?:rate|increase|irate)\(\s*)$")
_RANGE = re.compile(r"^[a-zA-Z0-9_:]*(?:\{[^}]*\})?\[\$__rate_interval\]")


def test_counters_only_inside_rate_or_increase() -> None:
    checked = 0
    for q in all_queries():
        if q.panel.startswith("variable: "):
            continue  # label_values() reads label values, not samples
        for pos, metric in metric_names(q.expr):
            if not counter_like(metric):
                continue
            checked += 1
            where = f"{q.dashboard} / {q.panel} / {q.ref}: {metric}"
            assert _IN_RATE.search(q.expr[:pos]), f"{where} is not inside rate()/increase()"
            assert _RANGE.match(q.expr[pos:]), f"{where}: range must be [$__rate_interval]"
    assert checked > 50


def test_the_check_catches_a_raw_counter() -> None:
    expr = "sum(egobs_xds_pushes_total)"
    ((pos, metric),) = metric_names(expr)
    assert counter_like(metric) and not _IN_RATE.search(expr[:pos])
    ((pos, metric),) = metric_names('rate(envoy_cluster_upstream_rq_time_bucket{a="b"}[5m])')
    assert counter_like(metric)
    assert not counter_like("envoy_server_live")


def test_histogram_quantiles_aggregate_by_le() -> None:
    for q in all_queries():
        if "histogram_quantile" in q.expr:
            assert re.search(r"sum by \([^)]*\ble\)", q.expr), q


# --------------------------------------------------------------------------- dashboard-wide


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_annotations_variables_and_links(name: str) -> None:
    data = load(name)
    anns = {a["name"]: a for a in data["annotations"]["list"]}
    change, nack = anns["Config changes"], anns["NACKs"]
    assert change["expr"] == CHANGE_ANNOTATION and change["useValueForTime"] is True
    assert nack["expr"] == NACK_ANNOTATION
    assert change["iconColor"] != nack["iconColor"]
    for ann in (change, nack):
        assert ann["enable"] is True
        assert ann["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert "{{trace_id}}" in ann["textFormat"] and "jaeger" in ann["textFormat"]
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert "gateway" in variables
    for var in variables.values():
        if var["type"] == "query":
            assert var["includeAll"] and var["allValue"] == ".*"
            assert var["datasource"]["uid"] == "${datasource}"
    exprs = " ".join(t["expr"] for p in panels(name) for t in p["targets"])
    for var in variables:
        if var != "datasource":
            assert f"${var}" in exprs, f"{name}: variable {var} is used by no panel"
    (link,) = data["links"]
    assert link["type"] == "dashboards" and link["tags"] == ["egobs"]
    assert link["includeVars"] and link["keepTime"]
    assert data["tags"] == ["egobs"] and data["uid"] == name.removesuffix(".json")


def test_required_dashboards_and_panels() -> None:
    titles = {spec.uid: {p.title for p in spec.panels()} for spec in DASHBOARDS}
    assert set(titles) == {
        "egobs-control-plane",
        "egobs-envoy",
        "egobs-clusters",
        "egobs-routes",
        "egobs-telemetry-pipeline",
    }
    assert {"Convergence heatmap", "ACKs vs NACKs", "Envoy restarts", "Process CPU"} <= titles[
        "egobs-control-plane"
    ]
    assert {"xDS connected", "xDS updates rejected", "Latency quantiles"} <= titles["egobs-envoy"]
    assert {"Outlier ejections", "Circuit breakers open", "Connect failures"} <= titles[
        "egobs-clusters"
    ]
    kinds = {p["type"] for name in DASHBOARD_FILES for p in panels(name)}
    assert kinds == {"timeseries", "stat", "heatmap"}
