"""What Envoy's own telemetry costs, as egobs configures it, and whether it loses anything.

One real Envoy (direct-response route) driven by ``wrk`` for ``--seconds`` per phase,
three phases in one run:

* off: an EnvoyProxy that turns everything off (no access logs, no stats listener);
* all on, 100 % sampling: gRPC ALS and OTLP access logs, OpenTelemetry tracing (OTLP/gRPC),
  the OTLP metrics sink (1 s flushes), and the Prometheus stats listener scraped every
  second by this script;
* all on, 1 % sampling.

The telemetry comes from an EnvoyProxy through egobs's own translation (Gateway API
translator, then the xDS translator and the bootstrap renderer), inlined into a static
bootstrap. The receivers run in a separate process and only count what they get (spans,
OTLP log records, ALS entries, metric exports). Expected counts come from Envoy itself:
every request (``downstream_rq_total``) is one ALS entry and one OTLP log record; every
request the HCM did not decide against tracing (``downstream_rq_total`` minus
``tracing.not_traceable``) is one server span (with ``--upstream`` also a client span per
attempt). Logs lost = expected - received; spans lost = what Envoy's exporter counted as
sent (``tracing.opentelemetry.spans_sent``) - received; traced requests that got no span
at all (reset as wrk stops) are reported apart, as traced_without_span.

``--placement shared`` (the default) runs everything on both cores: Envoy 2 workers, wrk 2
threads, the receivers. ``--placement isolated`` gives Envoy CPU 0 alone (1 worker) and puts
the rest on CPU 1, so the rps ratio is Envoy's own cost and not the scheduler's split.
Each phase also reports Envoy's CPU per request (``envoy_us_per_request``), the figure
that says what each part costs Envoy whatever the placement.

    python bench/telemetry_overhead.py --seconds 10 [--placement isolated] [--upstream]

The last line is JSON with rps_off, rps_all_on, ratio_100pct, ratio_1pct, spans_lost and
logs_lost (plus the 1 % figures, Envoy's CPU per request and its own drop counters).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _proc import cpu_seconds, free_port, http_get, wait_for  # bench/ is on sys.path

from egobs import gatewayapi, ir
from egobs.infra.bootstrap import XDS_CLUSTER, bootstrap
from egobs.infra.host import ENVOY_FLAGS, find_envoy
from egobs.resources import Resources, load_text
from egobs.xds.dump import static_bootstrap
from egobs.xds.translate import translate

GATEWAY = "default/bench"


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where each process runs. ``shared``: everything on every core, as a small host runs
    it (Envoy 2 workers, wrk 2 threads). ``isolated``: Envoy alone on CPU 0 with 1 worker,
    wrk (1 thread), the receivers and any upstream on CPU 1, so rps is Envoy's own per-request
    cost and not how the scheduler splits 2 cores between Envoy, wrk and the receivers."""

    envoy_cpus: str | None
    others_cpus: str | None
    envoy_workers: int
    wrk_threads: int

    def receiver_cpus(self) -> set[int] | None:
        return None if self.others_cpus is None else {int(self.others_cpus)}


def _pinned(cmd: list[str], cpus: str | None) -> list[str]:
    """``cmd`` run on ``cpus`` (taskset execs it: the pid is the command's)."""
    return cmd if cpus is None else ["taskset", "-c", cpus, *cmd]


PLACEMENTS = {
    "shared": Placement(envoy_cpus=None, others_cpus=None, envoy_workers=2, wrk_threads=2),
    "isolated": Placement(envoy_cpus="0", others_cpus="1", envoy_workers=1, wrk_threads=1),
}

_RESOURCES = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: egobs}}
spec: {{controllerName: gateway.egobs.dev/gatewayclass-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: bench, namespace: default}}
spec:
  gatewayClassName: egobs
  infrastructure:
    parametersRef: {{group: gateway.envoyproxy.io, kind: EnvoyProxy, name: bench}}
  listeners: [{{name: http, protocol: HTTP, port: {http_port}}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyProxy
metadata: {{name: bench, namespace: default}}
spec:
  telemetry:
{telemetry}
"""


def _telemetry(
    *,
    receiver: int,
    stats_port: int,
    als: bool = False,
    otlp_logs: bool = False,
    sampling: int | None = None,
    metrics: bool = False,
) -> str:
    """The EnvoyProxy ``spec.telemetry`` (YAML, indented) with the chosen parts on; the
    rest off (no access logs, no stats listener, no tracing)."""
    sinks = []
    if als:
        sinks.append(
            "            - type: ALS\n"
            "              als:\n"
            "                type: HTTP\n"
            "                logName: bench\n"
            "                backendRefs: [{group: gateway.envoyproxy.io, kind: Backend, "
            "name: receiver}]\n"
        )
    if otlp_logs:
        sinks.append(
            "            - type: OpenTelemetry\n"
            f"              openTelemetry: {{host: 127.0.0.1, port: {receiver}}}\n"
        )
    out = "    accessLog:\n"
    out += (
        "      settings:\n        - sinks:\n" + "".join(sinks) if sinks else "      disable: true\n"
    )
    if metrics:
        out += (
            "    metrics:\n"
            f"      prometheus: {{port: {stats_port}}}\n"
            "      sinks:\n"
            "        - type: OpenTelemetry\n"
            f"          openTelemetry: {{host: 127.0.0.1, port: {receiver}, "
            "reportCountersAsDeltas: true}\n"
        )
    else:
        out += "    metrics:\n      prometheus: {disable: true}\n"
    if sampling is not None:
        out += (
            "    tracing:\n"
            f"      samplingRate: {sampling}\n"
            f"      provider: {{host: 127.0.0.1, port: {receiver}}}\n"
        )
    return out + (
        "---\n"
        "apiVersion: gateway.envoyproxy.io/v1alpha1\n"
        "kind: Backend\n"
        "metadata: {name: receiver, namespace: default}\n"
        f"spec: {{endpoints: [{{ip: {{address: 127.0.0.1, port: {receiver}}}}}]}}\n"
    )


# --------------------------------------------------------------------------- receivers

# Shared counters: server spans (one per sampled request), all spans, OTLP log records,
# ALS entries, metric exports.
_SPANS, _ALL_SPANS, _LOGS, _ALS, _METRICS = range(5)


def _receive(port: int, counts: Any, ready: Any, cpus: set[int] | None) -> None:
    """A counting-only gRPC receiver (its own process) for everything Envoy sends; on
    ``cpus`` only when given (set before gRPC starts its threads, so they inherit it)."""
    import asyncio
    import os

    if cpus is not None:
        os.sched_setaffinity(0, cpus)

    import grpc
    from envoy.service.accesslog.v3 import als_pb2
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    def add(i: int, n: int) -> None:
        counts[i] += n  # one thread (the event loop) writes: no lock needed

    async def traces(request: bytes, context: Any) -> bytes:
        msg = trace_service_pb2.ExportTraceServiceRequest.FromString(request)
        spans = [s for rs in msg.resource_spans for ss in rs.scope_spans for s in ss.spans]
        add(_ALL_SPANS, len(spans))
        add(_SPANS, sum(1 for s in spans if s.kind == trace_pb2.Span.SPAN_KIND_SERVER))
        return b""

    async def logs(request: bytes, context: Any) -> bytes:
        msg = logs_service_pb2.ExportLogsServiceRequest.FromString(request)
        add(_LOGS, sum(len(sl.log_records) for rl in msg.resource_logs for sl in rl.scope_logs))
        return b""

    async def metrics(request: bytes, context: Any) -> bytes:
        add(_METRICS, 1)
        return b""

    async def access_logs(stream: Any, context: Any) -> bytes:
        async for raw in stream:
            msg = als_pb2.StreamAccessLogsMessage.FromString(raw)
            add(_ALS, len(msg.http_logs.log_entry) + len(msg.tcp_logs.log_entry))
        return b""

    def unary(fn: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(fn)

    handlers = [
        grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": unary(traces)}
        ),
        grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.logs.v1.LogsService", {"Export": unary(logs)}
        ),
        grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.metrics.v1.MetricsService", {"Export": unary(metrics)}
        ),
        grpc.method_handlers_generic_handler(
            "envoy.service.accesslog.v3.AccessLogService",
            {"StreamAccessLogs": grpc.stream_unary_rpc_method_handler(access_logs)},
        ),
    ]

    async def main() -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.http2.bdp_probe", 0),  # see shared notes: bounded buffers
            ]
        )
        server.add_generic_rpc_handlers(handlers)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()

    asyncio.run(main())


# --------------------------------------------------------------------------- Envoy


@dataclasses.dataclass
class _Phase:
    """One Envoy configuration to load: its EnvoyProxy telemetry, which access-log sinks it
    has (their entries are waited for), and the stats listener to scrape (if any)."""

    name: str
    telemetry: str
    stats_port: int | None = None
    als: bool = False
    otlp_logs: bool = False
    traced: bool = False


_DIRECT = ir.HTTPRoute(
    "httproute/default/bench/rule/0/match/0",
    "*",
    path_match=ir.PathMatch(ir.StringMatchType.PREFIX, "/"),
    direct_response=ir.DirectResponse(200, "ok"),
)


def _config(
    tmp: Path, phase: _Phase, http_port: int, admin_port: int, upstream: int | None
) -> dict[str, Any]:
    """The static bootstrap Envoy runs: egobs's xDS inlined, plus the bootstrap's
    telemetry (stats sinks, stats listener, tracer runtime). Its one route answers
    directly, or proxies to 127.0.0.1:``upstream``."""
    docs = _RESOURCES.format(http_port=http_port, telemetry=phase.telemetry)
    result = gatewayapi.translate(Resources.of(load_text(docs, file="bench.yaml")))
    gw, proxy = result.gateways.get(GATEWAY), result.proxies.get(GATEWAY)
    if gw is None or proxy is None:
        raise SystemExit(f"the bench Gateway was not programmed: {result.statuses}")
    route, endpoints = _DIRECT, gw.endpoints
    if upstream is not None:
        cluster = ir.Cluster("backend/default/upstream", ir.AppProtocol.HTTP1, ir.AddressType.IP)
        destination = ir.RouteDestination("upstream", (ir.DestinationSetting(cluster, 1),))
        route = dataclasses.replace(_DIRECT, direct_response=None, destination=destination)
        row = ir.ClusterEndpoints(cluster.name, (ir.Endpoint("127.0.0.1", upstream),))
        endpoints = tuple(sorted((*endpoints, row), key=lambda r: r.cluster))
    listener = dataclasses.replace(gw.http[0], address="127.0.0.1", routes=(route,))
    gw = dataclasses.replace(gw, http=(listener,), endpoints=endpoints)
    if proxy.stats.prometheus is not None:
        stats = dataclasses.replace(proxy.stats.prometheus, address="127.0.0.1")
        proxy = dataclasses.replace(proxy, stats=dataclasses.replace(proxy.stats, prometheus=stats))
    out = static_bootstrap(translate(gw), admin_port=admin_port, node_cluster=gw.name)
    boot = bootstrap(
        proxy,
        node_id="bench",
        xds_host="127.0.0.1",
        xds_port=1,  # unused: everything is static
        admin_port=admin_port,
        stats_flush_interval_s=1.0,
    )
    static = out["staticResources"]
    static.setdefault("clusters", []).extend(
        c for c in boot["static_resources"]["clusters"] if c["name"] != XDS_CLUSTER
    )
    static.setdefault("listeners", []).extend(boot["static_resources"].get("listeners", []))
    for key in ("stats_sinks", "stats_config", "layered_runtime", "stats_flush_interval"):
        if key in boot:
            out[key] = boot[key]
    return out


def _upstream_config(http_port: int, admin_port: int) -> dict[str, Any]:
    """A second Envoy answering "ok" directly: the fastest upstream this machine has."""
    listener = ir.HTTPListener("default/upstream/http", "127.0.0.1", http_port, ("*",), (_DIRECT,))
    gw = ir.Gateway("default/upstream", http=(listener,))
    return static_bootstrap(translate(gw), admin_port=admin_port, node_cluster=gw.name)


class _Envoy:
    def __init__(
        self,
        tmp: Path,
        config: dict[str, Any],
        http_port: int,
        admin_port: int,
        *,
        concurrency: int,
        cpus: str | None,
    ) -> None:
        path = tmp / f"envoy-{http_port}.json"
        path.write_text(json.dumps(config))
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.http_port = http_port
        self.proc = subprocess.Popen(
            _pinned(
                [
                    str(find_envoy()),
                    "-c",
                    str(path),
                    "--disable-hot-restart",
                    *ENVOY_FLAGS,
                    "--concurrency",
                    str(concurrency),
                    "--log-level",
                    "error",
                ],
                cpus,
            ),
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "envoy.log").open("ab"),
        )
        wait_for(lambda: http_get(f"http://127.0.0.1:{http_port}/") == b"ok", 30, "Envoy listener")

    def stats(self) -> dict[str, int]:
        doc = json.loads(http_get(self.admin + "/stats?format=json"))
        return {s["name"]: s["value"] for s in doc["stats"] if "value" in s}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _wrk(url: str, seconds: int, connections: int, placement: Placement) -> float:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found (apt-get install wrk)")
    cmd = [wrk, "-t", str(placement.wrk_threads), "-c", str(connections), "-d", f"{seconds}s"]
    out = subprocess.run(
        _pinned([*cmd, url], placement.others_cpus),
        check=True,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    return float(found.group(1))


def _scraper(url: str, stop: threading.Event, scrapes: list[int]) -> None:
    while not stop.wait(1.0):
        body = http_get(url)
        if b"envoy_" not in body:
            raise SystemExit(f"the stats listener answered without Envoy stats: {body[:200]!r}")
        scrapes.append(len(body))


def _quiesce(counts: Any, *, still_s: float = 0.5, limit_s: float = 5.0) -> None:
    """Wait until the receivers' counts stay still for ``still_s`` (at most ``limit_s``)."""
    deadline = time.monotonic() + limit_s
    last, since = list(counts), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < still_s:
        time.sleep(0.05)
        now = list(counts)
        if now != last:
            last, since = now, time.monotonic()


def run_phase(
    tmp: Path,
    phase: _Phase,
    counts: Any,
    receiver_pid: int,
    seconds: int,
    connections: int,
    upstream: int | None,
    placement: Placement,
) -> dict[str, Any]:
    http_port, admin_port = free_port(), free_port()
    # Counted from before Envoy starts: its readiness probes are served and logged too.
    before = list(counts)
    config = _config(tmp, phase, http_port, admin_port, upstream)
    envoy = _Envoy(
        tmp,
        config,
        http_port,
        admin_port,
        concurrency=placement.envoy_workers,
        cpus=placement.envoy_cpus,
    )
    prefix = f"http.http-{http_port}."
    try:
        stop, scrapes = threading.Event(), []
        scraper = None
        if phase.stats_port is not None:
            stats_url = f"http://127.0.0.1:{phase.stats_port}/stats/prometheus"
            scraper = threading.Thread(target=_scraper, args=(stats_url, stop, scrapes))
            scraper.start()
        cpu0 = cpu_seconds(envoy.proc.pid), cpu_seconds(receiver_pid)
        try:
            rps = _wrk(f"http://127.0.0.1:{http_port}/", seconds, connections, placement)
        finally:
            stop.set()
            if scraper is not None:
                scraper.join()
        envoy_cpu = cpu_seconds(envoy.proc.pid) - cpu0[0]
        receiver_cpu = cpu_seconds(receiver_pid) - cpu0[1]

        def expected() -> tuple[int, int]:
            # Requests wrk left in flight complete, or are reset and logged all the same,
            # after it exits: count every request Envoy started, read again each time.
            stats = envoy.stats()
            served = stats[prefix + "downstream_rq_total"]
            # Traced: every request the HCM did not decide against. Its random_sampling
            # counter alone misses a few requests reset while wrk stops (seen through an
            # upstream), which are traced and exported all the same.
            untraced = sum(
                stats.get(prefix + "tracing." + why, 0) for why in ("not_traceable", "health_check")
            )
            return served, served - untraced if phase.traced else 0

        def got() -> list[int]:
            return [now - then for now, then in zip(counts, before, strict=True)]

        def settled() -> bool:
            served, sampled = expected()
            g = got()
            return (
                (not phase.als or g[_ALS] >= served)
                and (not phase.otlp_logs or g[_LOGS] >= served)
                and g[_SPANS] >= sampled
            )

        # Envoy flushes access logs every 0.5 s and spans every 1 s (or 512 spans): wait
        # for everything it served, at most 15 s; what has not come by then is lost.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not settled():
            time.sleep(0.2)
        time.sleep(1.0)  # anything beyond the expected (duplicates) would arrive by now
        served, sampled = expected()
        received = got()
        stats = envoy.stats()
    finally:
        envoy.stop()
        # What Envoy flushed on its way out belongs to this phase, not the next one.
        _quiesce(counts)
    return {
        "rps": round(rps),
        "envoy_cpu_percent": round(100 * envoy_cpu / seconds),
        # Envoy's CPU per request: what its telemetry costs it, whoever else shares the cores.
        "envoy_us_per_request": round(1e6 * envoy_cpu / max(served, 1), 1),
        "receiver_cpu_percent": round(100 * receiver_cpu / seconds),
        "served": served,
        "sampled": sampled,
        "server_spans": received[_SPANS],
        "spans": received[_ALL_SPANS],
        "als_entries": received[_ALS],
        "otlp_logs": received[_LOGS],
        "metric_exports": received[_METRICS],
        "scrapes": len(scrapes),
        "scrape_bytes": max(scrapes, default=0),
        "envoy_als_dropped": stats.get("access_logs.grpc_access_log.logs_dropped", 0),
        "envoy_spans_sent": stats.get("tracing.opentelemetry.spans_sent", 0),
        "envoy_tracing_overflow": sum(
            v for k, v in stats.items() if k.startswith("cluster.telemetry/") and "overflow" in k
        ),
        # Why the HCM traced or did not trace each request (random_sampling, not_traceable, ...).
        "tracing_decisions": {
            k.removeprefix(prefix + "tracing."): v
            for k, v in stats.items()
            if k.startswith(prefix + "tracing.") and v
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per phase")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--upstream",
        action="store_true",
        help="proxy to an upstream (a second Envoy answering directly, 1 worker) instead of "
        "answering directly: a gateway's real per-request work, and upstream spans",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also run each part alone (ALS, OTLP logs, tracing at 100 %%, metrics)",
    )
    parser.add_argument(
        "--placement",
        choices=sorted(PLACEMENTS),
        default="shared",
        help="shared: all processes on both cores; isolated: Envoy alone on CPU 0 (1 worker), "
        "everything else on CPU 1",
    )
    args = parser.parse_args()
    placement = PLACEMENTS[args.placement]
    if not 1 <= args.seconds <= 120:
        raise SystemExit("--seconds must be within 1..120")

    receiver_port, stats_port = free_port(), free_port()
    counts = multiprocessing.Array("q", 5, lock=False)
    ready = multiprocessing.Event()
    receiver = multiprocessing.Process(
        target=_receive,
        args=(receiver_port, counts, ready, placement.receiver_cpus()),
        daemon=True,
    )
    receiver.start()
    if not ready.wait(30):
        raise SystemExit("receiver did not start")

    def phase(name: str, **parts: Any) -> _Phase:
        telemetry = _telemetry(receiver=receiver_port, stats_port=stats_port, **parts)
        stats = stats_port if parts.get("metrics") else None
        return _Phase(
            name,
            telemetry,
            stats,
            als=parts.get("als", False),
            otlp_logs=parts.get("otlp_logs", False),
            traced=parts.get("sampling") is not None,
        )

    everything = {"als": True, "otlp_logs": True, "metrics": True}
    phases = [
        phase("off"),
        phase("all_on_100pct", sampling=100, **everything),
        phase("all_on_1pct", sampling=1, **everything),
    ]
    if args.breakdown:
        phases += [
            phase("als_only", als=True),
            phase("otlp_logs_only", otlp_logs=True),
            phase("tracing_100pct_only", sampling=100),
            phase("metrics_only", metrics=True),
        ]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="egobs-bench-telemetry-") as tmp:
        upstream = upstream_port = None
        try:
            if args.upstream:
                upstream_port, upstream_admin = free_port(), free_port()
                config = _upstream_config(upstream_port, upstream_admin)
                upstream = _Envoy(
                    Path(tmp),
                    config,
                    upstream_port,
                    upstream_admin,
                    concurrency=1,
                    cpus=placement.others_cpus,
                )
            for phase in phases:
                results[phase.name] = r = run_phase(
                    Path(tmp),
                    phase,
                    counts,
                    receiver.pid,
                    args.seconds,
                    args.connections,
                    upstream_port,
                    placement,
                )
                print(f"{phase.name:15s} {json.dumps(r)}", flush=True)
        finally:
            if upstream is not None:
                upstream.stop()
            receiver.terminate()
            receiver.join(10)

    off, full, sampled = (results[p.name] for p in phases[:3])

    def lost(r: dict[str, Any]) -> tuple[int, int]:
        # Expected minus received, raw: a negative figure would mean duplicates. Spans are
        # counted against what Envoy's exporter says it sent, so this is what the export
        # path lost, exactly.
        spans = r["envoy_spans_sent"] - r["spans"]
        logs = (r["served"] - r["als_entries"]) + (r["served"] - r["otlp_logs"])
        return spans, logs

    def unspanned(r: dict[str, Any]) -> int:
        # Traced requests without a server span: at wrk's stop a request Envoy counted can
        # be reset before its span starts (seen once in 1 s phases on a loaded machine).
        # Bounded by the requests in flight then, one per connection.
        return int(r["sampled"] - r["server_spans"])

    spans_100, logs_100 = lost(full)
    spans_1, logs_1 = lost(sampled)
    summary = {
        "rps_off": off["rps"],
        "rps_all_on": full["rps"],
        "rps_all_on_1pct": sampled["rps"],
        "ratio_100pct": round(full["rps"] / off["rps"], 3),
        "ratio_1pct": round(sampled["rps"] / off["rps"], 3),
        "spans_lost": spans_100 + spans_1,
        "traced_without_span": unspanned(full) + unspanned(sampled),
        "logs_lost": logs_100 + logs_1,
        "envoy_us_per_request_off": off["envoy_us_per_request"],
        "envoy_us_per_request_100pct": full["envoy_us_per_request"],
        "envoy_us_per_request_1pct": sampled["envoy_us_per_request"],
        "spans_sent_100pct": full["envoy_spans_sent"],
        "logs_expected_100pct": 2 * full["served"],
        "envoy_als_dropped": full["envoy_als_dropped"] + sampled["envoy_als_dropped"],
        "seconds_per_phase": args.seconds,
        "upstream": args.upstream,
        "placement": args.placement,
    }
    for p in phases[3:]:
        summary[f"ratio_{p.name}"] = round(results[p.name]["rps"] / off["rps"], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
