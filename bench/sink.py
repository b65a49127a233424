"""`egobs sink` under load: a real Envoy streaming access logs to it, then synthetic clients.

Phase 1: Envoy (direct-response route) with gRPC access logs to a sink writing JSON lines
and RED metrics; ``wrk`` (or a Python keep-alive client when wrk is missing) drives it for
``--seconds``. Reports requests served (Envoy's ``downstream_rq_completed``), entries the
sink received, Envoy's ``logs_dropped``, the sink's drops, entries/s, sink CPU and peak RSS.

Phase 2: a fresh sink (metrics on, JSON lines off) fed by a separate process sending
pre-serialized 100-entry messages over several streams for ``--synthetic-seconds``: the
sink's own ceiling. The last line is JSON.

    python bench/sink.py --seconds 20 --synthetic-seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
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
from prometheus_client.parser import text_string_to_metric_families

from egobs import ir
from egobs.gatewayapi import SinkAddress, sink_access_log
from egobs.infra.host import find_envoy
from egobs.xds.dump import static_bootstrap
from egobs.xds.translate import translate


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class _Sink:
    def __init__(self, tmp: Path, *args: str) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self._log = (tmp / f"sink-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "egobs.cli",
                "sink",
                "--port",
                str(self.port),
                "--metrics-port",
                str(self.metrics_port),
                "--log-level",
                "warning",
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: http_get(self._url("/readyz")) == b"ready\n", 30, "sink ready")

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port}{path}"

    def sums(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(http_get(self._url("/metrics")).decode()):
            for s in family.samples:
                out[s.name] = out.get(s.name, 0.0) + s.value
        return out

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _envoy(tmp: Path, sink_port: int, http_port: int, concurrency: int) -> subprocess.Popen[bytes]:
    route = ir.HTTPRoute(
        "httproute/default/bench/rule/0/match/0",
        "*",
        path_match=ir.PathMatch(ir.StringMatchType.PREFIX, "/"),
        direct_response=ir.DirectResponse(200, "ok"),
    )
    gw = ir.Gateway(
        "default/bench",
        http=(ir.HTTPListener("default/bench/http", "127.0.0.1", http_port, ("*",), (route,)),),
        access_logs=(sink_access_log(SinkAddress("127.0.0.1", sink_port), name="bench"),),
    )
    config = tmp / "envoy.json"
    config.write_text(json.dumps(static_bootstrap(translate(gw), node_cluster=gw.name)))
    admin_path = tmp / "admin.txt"
    proc = subprocess.Popen(
        [
            find_envoy(),
            "-c",
            str(config),
            "--disable-hot-restart",
            "--concurrency",
            str(concurrency),
            "--log-level",
            "error",
            "--admin-address-path",
            str(admin_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "envoy.log").open("ab"),
    )
    wait_for(lambda: admin_path.exists() and admin_path.read_text().strip(), 30, "Envoy admin")
    proc.admin = "http://" + admin_path.read_text().strip()  # type: ignore[attr-defined]
    wait_for(lambda: http_get(f"http://127.0.0.1:{http_port}/") == b"ok", 30, "Envoy listener")
    return proc


def _envoy_stats(admin: str) -> dict[str, int]:
    doc = json.loads(http_get(admin + "/stats?format=json"))
    return {s["name"]: s["value"] for s in doc["stats"] if "value" in s}


def _load(url: str, seconds: float, connections: int) -> None:
    wrk = shutil.which("wrk")
    if wrk:
        subprocess.run(
            [wrk, "-t", "1", "-c", str(connections), "-d", f"{max(1, round(seconds))}s", url],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return
    # Fallback: keep-alive HTTP/1.1 clients on threads; far below wrk's rate.
    import http.client

    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    stop = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        while time.monotonic() < stop:
            conn.request("GET", "/")
            conn.getresponse().read()
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(min(connections, 16))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def envoy_phase(
    tmp: Path, seconds: float, concurrency: int, connections: int, jsonl: bool
) -> dict[str, Any]:
    args = ("--jsonl", str(tmp / "access.jsonl"), "--rotate-bytes", str(256 << 20))
    sink = _Sink(tmp, *(args if jsonl else ()))
    http_port = free_port()
    envoy = _envoy(tmp, sink.port, http_port, concurrency)
    admin: str = envoy.admin  # type: ignore[attr-defined]
    try:
        cpu0, t0 = cpu_seconds(sink.proc.pid), time.monotonic()
        _load(f"http://127.0.0.1:{http_port}/", seconds, connections)
        elapsed = time.monotonic() - t0
        stats = _envoy_stats(admin)
        # Everything Envoy served, the readiness probe included: each is one log entry.
        served = stats[f"http.http-{http_port}.downstream_rq_completed"]
        written = stats.get("access_logs.grpc_access_log.logs_written", 0)

        def settled() -> dict[str, float] | None:
            m = sink.sums()
            done = m.get("egobs_sink_entries_received_total", 0) >= written
            return m if done and m.get("egobs_sink_queue_depth", 1) == 0 else None

        time.sleep(1.0)  # Envoy's flush interval
        m = wait_for(settled, 30, "sink caught up")
        cpu = cpu_seconds(sink.proc.pid) - cpu0
        rss = _peak_rss_mib(sink.proc.pid)
        stats = _envoy_stats(admin)
    finally:
        envoy.send_signal(signal.SIGTERM)
        envoy.wait(15)
        sink.stop()
    received = int(m.get("egobs_sink_entries_received_total", 0))
    # The file rotates at 256 MiB: count the rotated files too.
    lines = sum(sum(1 for _ in f.open("rb")) for f in tmp.glob("access.jsonl*"))
    return {
        "served": int(served),
        "received": received,
        "jsonl_lines": lines,
        "red_requests": int(m.get("egobs_sink_requests_total", 0)),
        "envoy_written": int(stats.get("access_logs.grpc_access_log.logs_written", 0)),
        "envoy_dropped": int(stats.get("access_logs.grpc_access_log.logs_dropped", 0)),
        "sink_dropped": int(m.get("egobs_sink_entries_dropped_total", 0)),
        "entries_per_s": round(received / elapsed),
        "sink_cpu_percent": round(100 * cpu / elapsed),
        "sink_rss_mib": round(rss, 1),
    }


def _client(port: int, seconds: float, streams: int, batch: int) -> None:
    import grpc

    from egobs.sink._synthetic import http_message

    first = http_message(batch).SerializeToString()
    rest = http_message(batch, identifier=False).SerializeToString()

    async def stream(channel: grpc.aio.Channel, stop: float) -> None:
        call = channel.stream_unary(
            "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )()
        await call.write(first)
        while time.monotonic() < stop:
            await call.write(rest)
        await call.done_writing()
        await call

    async def main() -> None:
        stop = time.monotonic() + seconds
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.gather(*(stream(channel, stop) for _ in range(streams)))

    asyncio.run(main())


def synthetic_phase(tmp: Path, seconds: float, streams: int, batch: int) -> dict[str, Any]:
    sink = _Sink(tmp)
    try:
        cpu0, t0 = cpu_seconds(sink.proc.pid), time.monotonic()
        client = multiprocessing.Process(target=_client, args=(sink.port, seconds, streams, batch))
        client.start()
        client.join(seconds + 60)

        def settled() -> dict[str, float] | None:
            m = sink.sums()
            return m if m.get("egobs_sink_queue_depth", 1) == 0 else None

        m = wait_for(settled, 60, "synthetic queue drained")
        elapsed_all = time.monotonic() - t0
        cpu = cpu_seconds(sink.proc.pid) - cpu0
        rss = _peak_rss_mib(sink.proc.pid)
    finally:
        sink.stop()
    processed = m.get("egobs_sink_requests_total", 0)
    return {
        "synthetic_received": int(m.get("egobs_sink_entries_received_total", 0)),
        "synthetic_processed": int(processed),
        "synthetic_dropped": int(m.get("egobs_sink_entries_dropped_total", 0)),
        "synthetic_entries_per_s": round(processed / elapsed_all),
        "synthetic_cpu_percent": round(100 * cpu / elapsed_all),
        "synthetic_rss_mib": round(rss, 1),
    }


def jsonl_micro(batches: int = 200) -> dict[str, Any]:
    """In-process cost per entry of a JSON line and of the RED metrics, on Envoy-like entries.

    The entries look like the Envoy phase's (a logged request header, two response headers,
    a UUID request id), decoded afresh from bytes as the server does.
    """
    from envoy.service.accesslog.v3 import als_pb2

    from egobs.sink._synthetic import http_message
    from egobs.sink.metrics import SinkMetrics
    from egobs.sink.records import HeaderPolicy, HttpLines, Origin

    msg = http_message(100, headers={"x-forwarded-for": "192.0.2.2"})
    for i, e in enumerate(msg.http_logs.log_entry):
        e.request.request_id = f"37e0b4df-af4b-4e3f-b0ea-{i:012d}"
        e.request.user_agent = "wrk"
        e.response.response_code_details = "direct_response"
        e.response.response_headers.update({"content-type": "text/plain", "content-length": "2"})
    entries = als_pb2.StreamAccessLogsMessage.FromString(
        msg.SerializeToString()
    ).http_logs.log_entry
    origin = Origin("default/bench", "bench", "egobs")
    lines = HttpLines(HeaderPolicy(allowlist=None, redact=("authorization", "cookie")))
    metrics = SinkMetrics()

    def per_entry(fn: Any) -> float:
        fn()
        t = time.perf_counter()
        for _ in range(batches):
            fn()
        return round((time.perf_counter() - t) / (batches * len(entries)) * 1e6, 2)

    return {
        "jsonl_us_per_entry": per_entry(lambda: lines.lines(entries, origin)[0].encode()),
        "metrics_us_per_entry": per_entry(lambda: metrics.account_http("default/bench", entries)),
        # What the sink runs with both outputs on: one pass for the line and the metrics.
        "line_and_metrics_us_per_entry": per_entry(
            lambda: lines.lines(entries, origin, metrics.http_account("default/bench"))[0].encode()
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--synthetic-seconds", type=float, default=10.0)
    # Two workers on two cores is Envoy's full rate here (~40k req/s with access logs); one
    # worker tops out near 31k and would not test the sink at the rate.
    parser.add_argument("--envoy-concurrency", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--no-jsonl", action="store_true", help="Envoy phase: metrics only.")
    args = parser.parse_args()
    micro = jsonl_micro()
    print(", ".join(f"{k}: {v}" for k, v in micro.items()))
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="egobs-bench-sink-") as d:
        tmp = Path(d)
        if args.seconds > 0:
            print(f"envoy phase: {args.seconds:g} s, wrk={shutil.which('wrk') or 'none'}")
            result.update(
                envoy_phase(
                    tmp, args.seconds, args.envoy_concurrency, args.connections, not args.no_jsonl
                )
            )
            for k, v in result.items():
                print(f"  {k}: {v}")
        if args.synthetic_seconds > 0:
            print(f"synthetic phase: {args.synthetic_seconds:g} s, {args.streams} streams")
            synthetic = synthetic_phase(tmp, args.synthetic_seconds, args.streams, args.batch)
            for k, v in synthetic.items():
                print(f"  {k}: {v}")
            result.update(synthetic)
    keys = (
        "served",
        "received",
        "envoy_dropped",
        "sink_dropped",
        "entries_per_s",
        "sink_rss_mib",
        "synthetic_entries_per_s",
    )
    print(json.dumps({k: result.get(k) for k in keys} | result | micro))


if __name__ == "__main__":
    main()
