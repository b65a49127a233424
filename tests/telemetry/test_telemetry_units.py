"""The telemetry layer without Envoy: convergence bookkeeping, span links, log correlation,
NACK conditions, the syncz table and config."""

from __future__ import annotations

import io
import json
import logging
import time

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from egobs._status_table import render_syncz
from egobs.config import Config
from egobs.controlplane import ChangeContext, ControlPlane
from egobs.gatewayapi import XDS_REJECTED
from egobs.resources import Resources
from egobs.telemetry import metrics as m
from egobs.telemetry.core import Telemetry
from egobs.telemetry.logging import JsonFormatter
from egobs.telemetry.observers import XdsTelemetry
from egobs.telemetry.statuses import StatusGauges
from egobs.telemetry.tracing import setup_tracing
from egobs.xds.server import ProxyStatus

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


def value(name: str, **labels: str) -> float:
    got = m.REGISTRY.get_sample_value(name, labels)
    return 0.0 if got is None else got


def proxy(gateway: str, stream_id: int = 1) -> ProxyStatus:
    return ProxyStatus(stream_id, f"{gateway}/{stream_id}", gateway, True, "peer", time.time())


def test_convergence_waits_for_every_pushed_type_and_counts_from_the_event() -> None:
    gw = "unit/converge"
    obs = XdsTelemetry()
    p = proxy(gw)
    obs.on_connect(p)
    ctx = ChangeContext(event_time=time.time() - 0.2)
    obs.on_push(p, CDS, "v1", 1, 100, ctx)
    obs.on_push(p, RDS, "v1", 1, 100, ctx)
    obs.on_ack(p, CDS, "v1", ctx)
    assert value("egobs_proxy_convergence_seconds_count", gateway=gw) == 0
    assert value("egobs_xds_stale_proxies", gateway=gw) == 1
    obs.on_ack(p, RDS, "v1", ctx)
    assert value("egobs_proxy_convergence_seconds_count", gateway=gw) == 1
    assert value("egobs_proxy_convergence_seconds_sum", gateway=gw) >= 0.2
    assert value("egobs_xds_stale_proxies", gateway=gw) == 0

    # A NACK keeps the proxy stale and unconverged until a later version is ACKed.
    bad = ChangeContext(event_time=time.time())
    obs.on_push(p, RDS, "v2", 1, 100, bad)
    obs.on_nack(p, RDS, "v2", "bad regex", bad)
    assert value("egobs_xds_nacks_total", type_url=RDS, gateway=gw) == 1
    assert value("egobs_xds_stale_proxies", gateway=gw) == 1
    fixed = ChangeContext(event_time=time.time())
    obs.on_push(p, RDS, "v3", 1, 100, fixed)
    obs.on_ack(p, RDS, "v3", fixed)
    assert value("egobs_proxy_convergence_seconds_count", gateway=gw) == 2
    assert value("egobs_xds_stale_proxies", gateway=gw) == 0

    obs.on_disconnect(p)
    assert value("egobs_xds_connected_proxies", gateway=gw) == 0


def traced() -> tuple[Telemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(enabled=True, exporter=exporter, export_interval_s=0.01)
    return Telemetry(tracing=tracing), exporter


def test_coalesced_changes_are_linked_and_push_spans_end_at_nack() -> None:
    tel, exporter = traced()
    cp = ControlPlane(Config(), telemetry=tel)
    from egobs.resources import Resources

    first = tel.change_started(time.time(), Resources())
    second = tel.change_started(time.time(), Resources())
    assert first is not None and second is not None and first.trace_id != second.trace_id
    cp.build(Resources(), contexts=(first, second))
    p = proxy("unit/trace")
    obs = tel.xds_observer
    obs.on_connect(p)
    ctx = ChangeContext(time.time(), span_context=first)
    obs.on_push(p, RDS, "v1", 3, 300, ctx)
    obs.on_nack(p, RDS, "v1", "x" * 2000, ctx)
    assert tel.tracing is not None and tel.tracing.flush()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    translate = spans["translate"]
    assert translate.parent is not None and translate.parent.span_id == first.span_id
    assert [link.context.span_id for link in translate.links] == [second.span_id]
    push = spans["xds.push RouteConfiguration"]
    assert push.parent is not None and push.parent.trace_id == first.trace_id
    assert push.status.status_code.name == "ERROR"
    assert len(push.status.description or "") <= 512
    assert [e.name for e in push.events] == ["nack"]
    tel.shutdown()


def test_tracing_off_creates_no_spans() -> None:
    tel = Telemetry(metrics=False, tracing=None)
    from egobs.resources import Resources

    assert tel.change_started(time.time(), Resources()) is None
    with tel.span("x", contexts=()) as span:
        assert span is None


def test_json_logs_carry_trace_ids_inside_a_span_only() -> None:
    tel, _ = traced()
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("egobs.unit")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("outside")
        from egobs.resources import Resources

        root = tel.change_started(time.time(), Resources())
        with tel.span("stage", contexts=(root,)):
            logger.info("inside %s", "span", extra={"gateway": "a/b"})
    finally:
        logger.removeHandler(handler)
        tel.shutdown()
    outside, inside = (json.loads(line) for line in buf.getvalue().splitlines())
    assert "trace_id" not in outside
    assert root is not None and inside["trace_id"] == format(root.trace_id, "032x")
    assert inside["msg"] == "inside span" and inside["gateway"] == "a/b"


def test_nack_sets_gateway_and_route_conditions_and_ack_clears_them() -> None:
    cp = ControlPlane(Config(), telemetry=Telemetry(metrics=False))
    gw_status = {"conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed"}]}
    route_status = {"parents": [{"parentRef": {"name": "eg", "namespace": "ns"}, "conditions": []}]}
    cp.statuses = {("Gateway", "ns", "eg"): gw_status, ("HTTPRoute", "ns", "web"): route_status}
    p = proxy("ns/eg")
    cp.rejections.on_nack(
        p, RDS, "v2", "route httproute/ns/web/rule/0/match/0: invalid regex", None
    )
    statuses = cp.computed_statuses()
    (programmed,) = statuses[("Gateway", "ns", "eg")]["conditions"]
    assert programmed["status"] == "False" and programmed["reason"] == "Invalid"
    assert "invalid regex" in programmed["message"]
    (route_cond,) = statuses[("HTTPRoute", "ns", "web")]["parents"][0]["conditions"]
    assert route_cond["type"] == XDS_REJECTED
    assert gw_status["conditions"][0]["status"] == "True", "translator output is not mutated"
    cp.rejections.on_ack(p, RDS, "v3", None)
    assert cp.computed_statuses() == cp.statuses


def test_syncz_table() -> None:
    doc = {
        "proxies": [
            {
                "node": "ns/eg/1",
                "gateway": "ns/eg",
                "mode": "delta",
                "latestSnapshot": "abc",
                "connectedSince": "2026-01-01T00:00:00.000Z",
                "types": {
                    "CDS": {"state": "SYNCED"},
                    "RDS": {
                        "state": "NACK",
                        "lastNack": {"version": "v2", "message": "bad\nregex"},
                    },
                },
            }
        ]
    }
    table = render_syncz(doc)
    header, row = table.splitlines()[:2]
    assert header.split()[:9] == [
        *("NODE", "GATEWAY", "MODE", "CDS", "EDS", "LDS", "SRDS", "RDS", "SDS")
    ]
    assert row.split()[:9] == ["ns/eg/1", "ns/eg", "delta", "SYNCED", "-", "-", "-", "NACK", "-"]
    assert "LAST NACK" in table and "bad regex" in table
    assert render_syncz({"proxies": []}) == "no proxies connected"


def test_telemetry_config_section() -> None:
    cfg = Config.model_validate(
        {
            "telemetry": {
                "metrics": {"enabled": False},
                "tracing": {
                    "enabled": True,
                    "endpoint": "http://127.0.0.1:4318",
                    "protocol": "http",
                    "headers": {"x-tenant": "p"},
                    "samplingRatio": 0.25,
                    "exportIntervalS": 2,
                },
                "logging": {"format": "console", "components": {"egobs.xds": "debug"}},
            }
        }
    )
    t = cfg.telemetry
    assert not t.metrics.enabled and t.tracing.sampling_ratio == 0.25
    assert t.tracing.protocol == "http" and t.logging.components == {"egobs.xds": "debug"}
    tracing = setup_tracing(
        enabled=True, endpoint=t.tracing.endpoint, protocol="http", sampling_ratio=0.25
    )
    assert tracing is not None
    tracing.shutdown()


def _status_samples(gauges: StatusGauges) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in gauges.collect()
        for s in fam.samples
    }


def test_status_gauges_remembered_across_scrapes_equal_a_fresh_read() -> None:
    """A scrape reads again only the route statuses it has not seen (by identity); after
    patched translations (unchanged routes keep their status objects, changed ones get new
    ones, some lose theirs) it counts what a collector reading every status counts."""
    from pathlib import Path

    from egobs import gatewayapi
    from egobs.resources import HTTPRoute, Resources, load_paths

    case = Path(__file__).parents[1] / "gatewayapi/testdata/http_match_precedence.in.yaml"
    objs = list(load_paths([case]))
    routes = [i for i, o in enumerate(objs) if isinstance(o, HTTPRoute)]
    translator = gatewayapi.Translator()
    remembering = StatusGauges()
    patched = 0
    rejected = 0
    for step in range(8):
        i = routes[step % len(routes)]
        route = objs[i].model_copy(deep=True)
        assert isinstance(route, HTTPRoute)
        if step % 2:
            # Names a Gateway that does not exist: the route loses its status entirely.
            route.spec.parent_refs = [route.spec.parent_refs[0].model_copy(update={"name": "nope"})]
        elif step % 4 == 0:
            route.spec.hostnames = [f"h{step}.example.com"]
        else:  # a backend that does not exist: ResolvedRefs=False/BackendNotFound
            rule = route.spec.rules[0]
            rule.backend_refs = [rule.backend_refs[0].model_copy(update={"name": "gone"})]
        objs[i] = route
        result = translator.translate(Resources.of(objs), now="2026-01-01T00:00:00Z")
        patched += result.changed is not None
        remembering.update(result.statuses)
        got = _status_samples(remembering)
        fresh = StatusGauges()
        fresh.update(result.statuses)
        assert got == _status_samples(fresh), step
        rejected += got.get(
            ("egobs_rejected_objects", (("kind", "HTTPRoute"), ("reason", "BackendNotFound"))), 0
        )
    assert patched >= 6
    assert rejected > 0


def test_status_gauges_count_routes_listeners_and_rejections() -> None:
    ok = {"type": "Accepted", "status": "True", "reason": "Accepted"}
    refs_ok = {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs"}
    missing = {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound"}
    not_allowed = {"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners"}
    statuses = {
        ("HTTPRoute", "default", "a"): {"parents": [{"conditions": [ok, refs_ok]}]},
        ("HTTPRoute", "default", "b"): {"parents": [{"conditions": [ok, missing]}]},
        ("HTTPRoute", "default", "c"): {
            "parents": [{"conditions": [ok, refs_ok]}, {"conditions": [not_allowed, refs_ok]}]
        },
        ("TCPRoute", "default", "d"): {"parents": [{"conditions": [ok, refs_ok]}]},
        ("Gateway", "default", "eg"): {
            "conditions": [ok],
            "listeners": [
                {"conditions": [ok, {"type": "Programmed", "status": "True"}]},
                {"conditions": [ok, {"type": "Programmed", "status": "False"}]},
                {"conditions": [ok, {"type": "Programmed", "status": "False"}]},
            ],
        },
        ("GatewayClass", "", "other"): {"conditions": [not_allowed]},
        ("BackendTLSPolicy", "default", "p"): {
            "ancestors": [
                {"conditions": [{"type": "Accepted", "status": "False", "reason": "Conflicted"}]}
            ]
        },
    }
    gauges = StatusGauges()
    gauges.update(statuses)
    got = {k: v for k, v in _status_samples(gauges).items() if v}

    def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return (name, tuple(sorted(labels.items())))

    assert got == {
        key("egobs_routes", kind="HTTPRoute", accepted="true"): 2,
        key("egobs_routes", kind="HTTPRoute", accepted="false"): 1,
        key("egobs_routes", kind="TCPRoute", accepted="true"): 1,
        key("egobs_listeners", gateway="default/eg", accepted="true", programmed="true"): 1,
        key("egobs_listeners", gateway="default/eg", accepted="true", programmed="false"): 2,
        key("egobs_rejected_objects", kind="HTTPRoute", reason="BackendNotFound"): 1,
        key("egobs_rejected_objects", kind="HTTPRoute", reason="NotAllowedByListeners"): 1,
        key("egobs_rejected_objects", kind="GatewayClass", reason="NotAllowedByListeners"): 1,
        key("egobs_rejected_objects", kind="BackendTLSPolicy", reason="Conflicted"): 1,
    }
    # A Gateway that is gone takes its listener series with it.
    gauges.update({k: v for k, v in statuses.items() if k[0] != "Gateway"})
    assert not any(name == "egobs_listeners" for name, _ in _status_samples(gauges))


def test_status_table_shows_each_proxys_stats_listener() -> None:
    from egobs._status_table import render

    doc = {
        "resources": [],
        "proxies": [
            {
                "name": "default/eg",
                "listeners": [
                    {"name": "http", "protocol": "HTTP", "port": 80, "address": "127.0.0.1:10080"}
                ],
                "stats": "http://127.0.0.1:29001/stats/prometheus",
                "infra": {"state": "running", "pid": 4242, "restarts": 0},
            }
        ],
    }
    lines = render(doc).splitlines()
    (row,) = [line for line in lines if "(stats)" in line]
    assert row.split() == [
        "default/eg",
        "(stats)",
        "HTTP",
        "-",
        "http://127.0.0.1:29001/stats/prometheus",
        "running",
        "4242",
        "0",
    ]


def test_config_change_series_follow_each_gateways_last_change() -> None:
    """egobs_config_change_timestamp_seconds: one series per gateway, labelled with the
    trace of its last change, replaced on each change and removed with the gateway."""
    tel, _ = traced()
    gw = "unit/changes"

    def series() -> dict[str, float]:
        return {
            s.labels["trace_id"]: s.value
            for family in m.REGISTRY.collect()
            if family.name == "egobs_config_change_timestamp_seconds"
            for s in family.samples
            if s.labels["gateway"] == gw
        }

    trace_ids = []
    for _ in range(2):
        root = tel.change_started(time.time(), Resources())
        with tel.span("xds.translate", contexts=(root,)) as span:
            assert span is not None
            trace_ids.append(f"{span.get_span_context().trace_id:032x}")
            before = time.time()
            tel.record_snapshot(gw)
        (only,) = series().items()
        assert only[0] == trace_ids[-1] and before <= only[1] <= time.time()
    assert trace_ids[0] != trace_ids[1]
    tel.record_snapshot_deleted(gw)
    assert series() == {}
