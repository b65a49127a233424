"""``egobs demo``: the whole stack on one machine, on examples/quickstart/.

Starts two echo backends, the control plane (file provider, xDS, one real Envoy per Gateway),
sends a little traffic through Envoy, prints what happened and where to look, and keeps
running until Ctrl-C (or exits after the traffic with ``once``).

Echo ports: the quickstart's EndpointSlices say the backends listen on 127.0.0.1:18081 and
:18082 (:data:`QUICKSTART_ECHO_PORTS`), so by default the echoes bind exactly those and the
resources are served as they are (edits apply live). Any other ports (``0``: free ones) are
only honest if the EndpointSlices say so too: the demo then serves a copy of the resources,
with every EndpointSlice port 18081/18082 rewritten to the echoes' real ports, and says where
the copy is. The access-log file starts empty on every run; the previous one is kept as
``<file>.1``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egobs.config import AccessLogSinkConfig, Config
from egobs.gatewayapi.telemetry import DEFAULT_STATS_PORT

__all__ = [
    "DEMO_REQUESTS",
    "QUICKSTART_ECHO_PORTS",
    "DemoResult",
    "default_quickstart",
    "parse_echo_ports",
    "rewrite_endpoint_ports",
    "run_demo",
    "start_access_log",
]

# Where examples/quickstart/backends.yaml's EndpointSlices say echo-a and echo-b listen.
QUICKSTART_ECHO_PORTS = (18081, 18082)

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


def parse_echo_ports(text: str) -> tuple[int, int]:
    """``"18081,18082"`` -> ``(18081, 18082)``: echo-a's port, then echo-b's (0: a free one)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(p.isdigit() and int(p) <= 65535 for p in parts):
        raise ValueError(f"expected two ports A,B (0 picks a free one), got {text!r}")
    return int(parts[0]), int(parts[1])


def rewrite_endpoint_ports(paths: list[str], ports: dict[int, int], dest: Path) -> Path:
    """Copy the YAML resources of ``paths`` into ``dest`` (emptied first), with every
    EndpointSlice port that is a key of ``ports`` replaced by its value; returns ``dest``.

    Comments are not copied; objects keep their order, one output file per input file.
    """
    import yaml

    from egobs.resources.loader import yaml_files

    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.yaml"):
        old.unlink()
    n = 0
    for path in paths:
        for src in yaml_files(Path(path)):
            docs = [d for d in yaml.safe_load_all(src.read_text(encoding="utf-8")) if d]
            for doc in docs:
                if isinstance(doc, dict) and doc.get("kind") == "EndpointSlice":
                    for port in doc.get("ports") or []:
                        if isinstance(port, dict) and port.get("port") in ports:
                            port["port"] = ports[port["port"]]
            n += 1
            out = dest / f"{n:03d}-{src.stem}.yaml"
            out.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    return dest


def start_access_log(path: Path) -> Path | None:
    """Make ``path`` a fresh, empty access-log file; the previous one (if any) becomes
    ``<path>.1`` (replacing an older ``.1``), which is returned."""
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = path.with_name(path.name + ".1")
    if path.exists():
        os.replace(path, previous)
        path.touch()
        return previous
    path.touch()
    return None


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
    explicitly, so any ``port_offset`` works. ``stats_port`` 0 picks a port free now (Envoy
    binds it a moment later; the demo prints where)."""
    if stats_port == 0:
        stats_port = _free_port()
    cfg = Config()
    cfg.provider.file.paths = paths
    cfg.xds.port = xds_port
    cfg.admin.port = admin_port
    cfg.infra.host.port_offset = port_offset
    cfg.infra.host.keep_proxies = False  # a demo leaves nothing running
    cfg.infra.host.port_map = {DEFAULT_STATS_PORT: stats_port}
    return cfg


async def run_demo(
    cfg: Config,
    *,
    once: bool = False,
    echo_ports: tuple[int, int] = QUICKSTART_ECHO_PORTS,
    sink_ports: tuple[int, int] = (18090, 18091),
    access_log: Path | None = None,
) -> list[DemoResult]:
    """Run the demo stack; returns the traffic results (after Ctrl-C unless ``once``).

    ``echo_ports`` other than :data:`QUICKSTART_ECHO_PORTS` (0: free) serve a rewritten copy
    of ``cfg.provider.file.paths`` (see the module docstring)."""
    import signal

    from egobs.controlplane import ControlPlane
    from egobs.echo import EchoServer, start_echo_in_thread
    from egobs.sink import Sink, SinkConfig

    access_log = access_log or Path(tempfile.gettempdir()) / "egobs-demo" / "access.jsonl"
    previous_log = start_access_log(access_log)
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

    echoes: list[EchoServer] = []
    try:
        for name, echo_port in zip(("echo-a", "echo-b"), echo_ports, strict=True):
            echoes.append(start_echo_in_thread(name=name, port=echo_port))
    except BaseException:  # a port in use: what started stops, the error goes up
        for e in echoes:
            e.stop()
        await sink.stop()
        raise
    bound = (echoes[0].port, echoes[1].port)
    print(f"Echo backends: echo-a on 127.0.0.1:{bound[0]}, echo-b on 127.0.0.1:{bound[1]}")
    cp: ControlPlane | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        resources = "examples/quickstart/*.yaml"
        if bound != QUICKSTART_ECHO_PORTS:
            copy = rewrite_endpoint_ports(
                cfg.provider.file.paths,
                dict(zip(QUICKSTART_ECHO_PORTS, bound, strict=True)),
                access_log.parent / "resources",
            )
            cfg.provider.file.paths = [str(copy)]
            resources = f"{copy}/*.yaml (a copy: EndpointSlice ports rewritten to the echoes')"
            print(f"Serving {resources}")
        cp = ControlPlane(cfg)
        await cp.start()
        port = cp.binding.port_map.map(80)
        base = f"http://{cfg.infra.host.listener_address}:{port}"
        await wait_for_http(base + "/a", "www.example.com")
        results = await asyncio.to_thread(send_traffic, base)
        print(f"\nTraffic through Envoy at {base} (Host: www.example.com):")
        for r in results:
            print(f"  {r.status:3d}  {r.backend:14s}  {r.description:38s} {r.detail}")
        assert cp.admin is not None, "started"
        admin = f"http://{cp.admin.address}:{cp.admin.port}"
        sink_metrics = f"http://127.0.0.1:{sink.metrics_port}/metrics"
        logged = await _wait_for_access_logs(sink_metrics, expected=len(results) + 49)
        print(f"\nAccess logs: the sink received {logged} entries over gRPC")
        if previous_log is not None:
            print(f"  ({access_log} starts fresh each run; the previous run's is {previous_log})")
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
        print(f"  resources:     edit {resources}; changes apply live")
        if not once:
            print("\nRunning; Ctrl-C stops everything.")
            await stop.wait()
        return results
    finally:
        if cp is not None:
            await cp.stop()
        await sink.stop()
        for e in echoes:
            e.stop()


async def _wait_for_access_logs(
    metrics_url: str, *, expected: int, timeout: float = 5.0, settle: float = 1.0
) -> int:
    """Requests the sink has counted, once it reaches ``expected`` and has not changed for
    ``settle`` seconds, or after ``timeout``.

    Envoy flushes its access-log buffer every 500 ms, so the entries trail the traffic; the
    settle time (two flushes) lets the last ones land, so the count printed is the file's.
    """
    deadline = time.monotonic() + timeout
    count, since = -1, time.monotonic()
    while True:
        text = await asyncio.to_thread(_read, metrics_url)
        now = int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("egobs_sink_requests_total{")
            )
        )
        if now != count:
            count, since = now, time.monotonic()
        settled = time.monotonic() - since >= settle
        if (count >= expected and settled) or time.monotonic() > deadline:
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
