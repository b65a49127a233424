"""``egobs demo``: the whole stack on one machine, on examples/quickstart/.

Starts two echo backends, the control plane (file provider, xDS, one real Envoy per Gateway),
sends a little traffic through Envoy, prints what happened and where to look, and keeps
running until Ctrl-C (or exits after the traffic with ``once``).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egobs.config import AccessLogSinkConfig, Config
from egobs.gatewayapi.telemetry import DEFAULT_STATS_PORT

__all__ = ["DEMO_REQUESTS", "DemoResult", "default_quickstart", "run_demo"]

# (description, path, extra headers)
DEMO_REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("prefix /a -> echo-a", "/a/hello", {}),
    ("prefix /b, header set -> echo-b", "/b/hello", {}),
    ("header x-canary: true -> echo-b", "/anything", {"x-canary": "true"}),
    ("rewrite /api/v1 -> /v1 on echo-a", "/api/v1/users", {}),
    ("redirect /old -> /a (301)", "/old", {}),
    ("catch-all, 80/20 split (one request)", "/split", {}),
]


@dataclass(frozen=True, slots=True)
class DemoResult:
    description: str
    path: str
    status: int
    backend: str
    detail: str


def default_quickstart() -> Path:
    """examples/quickstart/ of the source tree this egobs runs from (or the CWD's)."""
    here = Path(__file__).resolve().parent.parent / "examples" / "quickstart"
    return here if here.is_dir() else Path("examples/quickstart")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _get(url: str, host: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, headers={"Host": host, **headers})
    try:
        with opener.open(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def send_traffic(base: str, host: str = "www.example.com") -> list[DemoResult]:
    results = []
    for desc, path, headers in DEMO_REQUESTS:
        status, resp_headers, body = _get(base + path, host, headers)
        backend, detail = "-", ""
        if status == 200:
            try:
                data = json.loads(body)
                backend = data.get("backend", "-")
                detail = f"path={data.get('path')}"
                if "x-served-by" in data.get("headers", {}):
                    detail += f" x-served-by={data['headers']['x-served-by']}"
            except ValueError:
                detail = body[:60].decode(errors="replace")
        elif 300 <= status < 400:
            detail = f"location={resp_headers.get('location') or resp_headers.get('Location')}"
        results.append(DemoResult(desc, path, status, backend, detail))
    split: dict[str, int] = {}
    for _ in range(50):
        status, _, body = _get(base + "/split", host, {})
        if status == 200:
            name = json.loads(body).get("backend", "?")
            split[name] = split.get(name, 0) + 1
    results.append(
        DemoResult(
            "80/20 split over 50 requests",
            "/split",
            200,
            ",".join(sorted(split)),
            json.dumps(split),
        )
    )
    return results


async def wait_for_http(url: str, host: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, _, _ = await asyncio.to_thread(_get, url, host, {})
            if status < 500:
                return
            last = status
        except OSError as exc:
            last = exc
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} not serving after {timeout:.0f} s (last: {last})")


def demo_config(
    *,
    paths: list[str],
    xds_port: int = 18000,
    admin_port: int = 19000,
    port_offset: int = 10000,
    stats_port: int = DEFAULT_STATS_PORT + 10000,
) -> Config:
    """The demo's config; Envoy's stats listener (19001) is mapped to ``stats_port``
    explicitly, so any ``port_offset`` works."""
    cfg = Config()
    cfg.provider.file.paths = paths
    cfg.xds.port = xds_port
    cfg.admin.port = admin_port
    cfg.infra.host.port_offset = port_offset
    cfg.infra.host.port_map = {DEFAULT_STATS_PORT: stats_port}
    return cfg


async def run_demo(
    cfg: Config,
    *,
    once: bool = False,
    echo_ports: tuple[int, int] = (18081, 18082),
    sink_ports: tuple[int, int] = (18090, 18091),
    access_log: Path | None = None,
) -> list[DemoResult]:
    """Run the demo stack; returns the traffic results (after Ctrl-C unless ``once``)."""
    import signal

    from egobs.controlplane import ControlPlane
    from egobs.echo import start_echo_in_thread
    from egobs.sink import Sink, SinkConfig

    access_log = access_log or Path(tempfile.gettempdir()) / "egobs-demo" / "access.jsonl"
    access_log.parent.mkdir(parents=True, exist_ok=True)
    sink = Sink(
        SinkConfig.model_validate(
            {
                "port": sink_ports[0],
                "metrics": {"port": sink_ports[1]},
                "jsonl": {"path": str(access_log)},
            }
        )
    )
    await sink.start()
    # The proxies stream their access logs to the port the sink really got.
    cfg.proxy_telemetry.access_log_sink = AccessLogSinkConfig(port=sink.grpc_port)

    echoes = [
        start_echo_in_thread(name="echo-a", port=echo_ports[0]),
        start_echo_in_thread(name="echo-b", port=echo_ports[1]),
    ]
    cp = ControlPlane(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await cp.start()
        port = cp.binding.port_map.map(80)
        base = f"http://{cfg.infra.host.listener_address}:{port}"
        await wait_for_http(base + "/a", "www.example.com")
        results = await asyncio.to_thread(send_traffic, base)
        print(f"\nTraffic through Envoy at {base} (Host: www.example.com):")
        for r in results:
            print(f"  {r.status:3d}  {r.backend:14s}  {r.description:38s} {r.detail}")
        admin = f"http://{cp.admin.address}:{cp.admin.port}"
        sink_metrics = f"http://127.0.0.1:{sink.metrics_port}/metrics"
        logged = await _wait_for_access_logs(sink_metrics, expected=len(results) + 49)
        print(f"\nAccess logs: the sink received {logged} entries over gRPC")
        print("\nWhere to look:")
        print(f"  proxy:         curl -H 'Host: www.example.com' {base}/a")
        print(f"  status:        egobs status --admin {admin}")
        print(f"  control plane: {admin}/metrics  {admin}/debug/syncz  {admin}/debug/status")
        print(f"  access logs:   {access_log}  (RED metrics: {sink_metrics})")
        for name, state in _envoy_admins(cp).items():
            print(f"  envoy {name}: admin {state}/config_dump")
        for name, proxy in sorted(cp.proxies.items()):
            stats = proxy.stats.prometheus
            if stats is not None:
                print(f"  envoy {name}: stats http://{stats.address}:{stats.port}/stats/prometheus")
        print("  resources:     edit examples/quickstart/*.yaml; changes apply live")
        if not once:
            print("\nRunning; Ctrl-C stops everything.")
            await stop.wait()
        return results
    finally:
        await cp.stop()
        await sink.stop()
        for e in echoes:
            e.stop()


async def _wait_for_access_logs(metrics_url: str, *, expected: int, timeout: float = 5.0) -> int:
    """Requests the sink has counted, once it reaches ``expected`` or after ``timeout``.

    Envoy flushes its access-log buffer every 500 ms, so the entries trail the traffic.
    """
    deadline = time.monotonic() + timeout
    count = 0
    while True:
        text = await asyncio.to_thread(_read, metrics_url)
        count = int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("egobs_sink_requests_total{")
            )
        )
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.2)


def _read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def _envoy_admins(cp: Any) -> dict[str, str]:
    return {
        name: f"http://{st.admin_address}"
        for name, st in cp.infra.status().items()
        if st.admin_address is not None
    }
