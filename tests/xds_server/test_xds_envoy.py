"""End to end with the real Envoy: bootstrap → ADS (SotW and delta) → requests served.

Every Envoy started here is stopped by the ``envoys`` fixture's finalizer (SIGTERM, then
SIGKILL); every wait is bounded; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import http.client
import http.server
import json
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from testkit import envoy_binary, unused_port
from testkit import wait_until_async as wait_until
from xds_server_helpers import (
    TYPES4,
    Recorder,
    cluster,
    endpoints,
    listener,
    resource_set,
    route_config,
    run,
    running,
)

from egobs import ir
from egobs.infra.bootstrap import bootstrap
from egobs.xds.resources import CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE, SECRET_TYPE, ResourceSet
from egobs.xds.server import XdsServer, serve
from egobs.xds.snapshot import Snapshot, SnapshotCache
from egobs.xds.translate import translate

pytestmark = pytest.mark.envoy

GW = "default/e2e"
WAIT_S = 10.0


class Envoy:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path, admin_path: Path) -> None:
        self.proc = proc
        self.log = log
        self.admin_path = admin_path

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""

    def admin_get(self, path: str) -> str:
        address = self.admin_path.read_text().strip()
        with urllib.request.urlopen(f"http://{address}{path}", timeout=2) as resp:
            return str(resp.read().decode())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def envoy_bin() -> str:
    return envoy_binary()


@pytest.fixture
def envoys(envoy_bin: str, tmp_path: Path) -> Iterator[Callable[[dict[str, object]], Envoy]]:
    started: list[Envoy] = []

    def start(config: dict[str, object]) -> Envoy:
        n = len(started)
        path = tmp_path / f"bootstrap-{n}.json"
        path.write_text(json.dumps(config))
        log = tmp_path / f"envoy-{n}.log"
        admin_path = tmp_path / f"admin-{n}"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    envoy_bin,
                    "-c",
                    str(path),
                    "--disable-hot-restart",
                    "--log-level",
                    "warn",
                    "--admin-address-path",
                    str(admin_path),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        envoy = Envoy(proc, log, admin_path)
        started.append(envoy)
        return envoy

    yield start
    for envoy in started:
        envoy.stop()


def start_proxy(
    start: Callable[[dict[str, object]], Envoy], server: XdsServer, *, delta: bool
) -> Envoy:
    return start(
        bootstrap(
            ir.Proxy(GW, "egobs", ()),
            node_id="e2e-1",
            xds_host="127.0.0.1",
            xds_port=server.port,
            admin_port=0,
            delta=delta,
        )
    )


def converged(server: XdsServer, snap: Snapshot, types: tuple[str, ...] = TYPES4) -> bool:
    proxies = server.registry.for_cluster(snap.node_cluster)
    return bool(proxies) and all(
        (s := p.types.get(t)) is not None and s.acked_version == snap.type_versions[t]
        for p in proxies
        for t in types
    )


async def wait(envoy: Envoy, pred: Callable[[], bool], what: str) -> None:
    try:
        await wait_until(pred, what, WAIT_S)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- envoy log ---\n{envoy.log_tail()}") from None


def fetch(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        return 0, str(err)


async def wait_body(envoy: Envoy, port: int, body: str) -> None:
    deadline = time.monotonic() + WAIT_S
    last: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(fetch, port)
        if last == (200, body):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected 200 {body!r}, last got {last}\n{envoy.log_tail()}")


# --------------------------------------------------------------------------- direct responses


def direct(port: int, backend_port: int, body: str, *, bad_regex: bool = False) -> ResourceSet:
    return resource_set(
        listeners=[listener("http", port)],
        routes=[route_config(body=body, bad_regex=bad_regex)],
        clusters=[cluster("backend")],
        cla=[endpoints("backend", backend_port)],
    )


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_push_update_and_nack(envoys: Callable[[dict[str, object]], Envoy], delta: bool) -> None:
    async def scenario() -> None:
        port, backend = unused_port(), unused_port()
        cache = SnapshotCache()
        first = cache.set_snapshot(GW, direct(port, backend, "one"), context="v1")
        rec = Recorder()
        async with running(cache, rec) as server:
            envoy = start_proxy(envoys, server, delta=delta)
            await wait(envoy, lambda: converged(server, first), "all four types ACKed")
            (proxy,) = server.registry.for_cluster(GW)
            assert proxy.node_id == "e2e-1" and proxy.delta is delta
            await wait_body(envoy, port, "one")
            assert {e[1] for e in rec.of("ack")} == set(TYPES4)
            assert all(e[-1] == "v1" for e in rec.of("ack"))

            # A new body: only RDS changes, Envoy ACKs it and serves the new body.
            pushes = len(rec.of("push"))
            second = cache.set_snapshot(GW, direct(port, backend, "two"), context="v2")
            await wait(envoy, lambda: converged(server, second), "RDS update ACKed")
            assert [e[1] for e in rec.of("push")[pushes:]] == [ROUTE_TYPE]
            await wait_body(envoy, port, "two")

            # An invalid regex: Envoy NACKs, keeps serving the last good routes.
            rds = proxy.types[ROUTE_TYPE]
            cache.set_snapshot(GW, direct(port, backend, "three", bad_regex=True), context="v3")
            await wait(envoy, lambda: rds.nack_message is not None, "NACK")
            assert rds.nack_message is not None and "((" in rds.nack_message
            assert len(rds.nack_message.encode()) <= 1024
            assert rds.acked_version == second.type_versions[ROUTE_TYPE]
            assert rds.nack_version == rds.sent_version != rds.acked_version
            (nack,) = rec.of("nack")
            assert nack[1] == ROUTE_TYPE and nack[-1] == "v3"
            for _ in range(3):
                assert await asyncio.to_thread(fetch, port) == (200, "two")
            assert converged(server, second, (CLUSTER_TYPE, ENDPOINT_TYPE))

            # A good change after the NACK converges again.
            fourth = cache.set_snapshot(GW, direct(port, backend, "four"), context="v4")
            await wait(envoy, lambda: converged(server, fourth), "recovery ACKed")
            await wait_body(envoy, port, "four")
            assert len(rec.of("nack")) == 1
            assert envoy.proc.poll() is None

    run(scenario())


# --------------------------------------------------------------------------- make-before-break


@contextmanager
def backend(body: str) -> Iterator[int]:
    payload = body.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # header and body are two writes: avoid 40 ms stalls

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def routed(port: int, name: str, backend_port: int) -> ResourceSet:
    return resource_set(
        listeners=[listener("http", port)],
        routes=[route_config(cluster=name)],
        clusters=[cluster(name)],
        cla=[endpoints(name, backend_port)],
    )


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_switching_clusters_drops_no_request(
    envoys: Callable[[dict[str, object]], Envoy], delta: bool
) -> None:
    """Route moves from cluster a to a new cluster b while a is removed: with the push order
    (new cluster, its endpoints, routes, then the removal) no request sees a 503."""

    async def scenario() -> None:
        port = unused_port()
        with backend("A") as port_a, backend("B") as port_b:
            cache = SnapshotCache()
            first = cache.set_snapshot(GW, routed(port, "svc-a", port_a))
            rec = Recorder()
            async with running(cache, rec) as server:
                envoy = start_proxy(envoys, server, delta=delta)
                await wait(envoy, lambda: converged(server, first), "initial ACKs")
                await wait_body(envoy, port, "A")

                results: list[tuple[int, str]] = []
                stop = threading.Event()

                def load() -> None:
                    # Kept-alive connections: requests back to back, so even a window of
                    # a millisecond without a usable cluster shows up.
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    try:
                        while not stop.is_set():
                            try:
                                conn.request("GET", "/")
                                resp = conn.getresponse()
                                results.append((resp.status, resp.read().decode()))
                            except (OSError, http.client.HTTPException) as err:
                                results.append((0, repr(err)))
                                conn.close()
                    finally:
                        conn.close()

                loaders = [threading.Thread(target=load, daemon=True) for _ in range(4)]
                for loader in loaders:
                    loader.start()
                try:
                    await asyncio.sleep(0.2)
                    rec.events.clear()
                    second = cache.set_snapshot(GW, routed(port, "svc-b", port_b))
                    await wait(envoy, lambda: converged(server, second), "switch ACKed")
                    await wait_body(envoy, port, "B")
                    await asyncio.sleep(0.2)
                finally:
                    stop.set()
                    for loader in loaders:
                        await asyncio.to_thread(loader.join, 5)

                bad = [r for r in results if r[0] != 200]
                assert not bad, f"{len(bad)} of {len(results)} failed, e.g. {bad[:3]}"
                assert {body for _, body in results} == {"A", "B"}
                pushed = [e[1] for e in rec.of("push")]
                assert pushed[0] == CLUSTER_TYPE
                assert pushed.index(ENDPOINT_TYPE) < pushed.index(ROUTE_TYPE)
                assert CLUSTER_TYPE in pushed[pushed.index(ROUTE_TYPE) :]  # the removal
                clusters = envoy.admin_get("/clusters")
                assert "svc-b::" in clusters and "svc-a::" not in clusters

    run(scenario())


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_reconnect_resends_nothing(
    envoys: Callable[[dict[str, object]], Envoy], delta: bool
) -> None:
    """The control plane restarts on the same port: Envoy reconnects, says what it holds
    and is sent nothing, since the content versions are unchanged."""

    async def scenario() -> None:
        port, backend_port = unused_port(), unused_port()
        cache = SnapshotCache()
        snap = cache.set_snapshot(GW, direct(port, backend_port, "one"))
        first_server = await serve(cache)
        xds_port = first_server.port
        envoy = start_proxy(envoys, first_server, delta=delta)
        try:
            await wait(envoy, lambda: converged(first_server, snap), "initial ACKs")
            await wait_body(envoy, port, "one")
        finally:
            await first_server.stop(None)

        rec = Recorder()
        cache2 = SnapshotCache()
        snap2 = cache2.set_snapshot(GW, direct(port, backend_port, "one"))
        second = await serve(cache2, port=xds_port, observer=rec)
        try:
            await wait(envoy, lambda: converged(second, snap2), "reconnected in sync")
            await asyncio.sleep(0.3)
            assert rec.of("push") == [], rec.of("push")
            assert await asyncio.to_thread(fetch, port) == (200, "one")
        finally:
            await second.stop(None)

    run(scenario())


# --------------------------------------------------------------------------- translated Gateway


def self_signed(tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=example.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert.read_text(), key.read_text()


def gateway(
    http_port: int, https_port: int, backend_port: int, cert: tuple[str, str]
) -> ir.Gateway:
    echo = ir.Cluster(
        "service/default/echo/80",
        ir.AppProtocol.HTTP1,
        ir.AddressType.IP,
    )

    def route(listener: str) -> ir.HTTPRoute:
        return ir.HTTPRoute(
            name=f"httproute/default/{listener}/rule/0/match/0",
            hostname="*",
            path_match=ir.PathMatch(ir.StringMatchType.PREFIX, "/"),
            destination=ir.RouteDestination(
                f"httproute/default/{listener}/rule/0", (ir.DestinationSetting(echo, 1),)
            ),
        )

    tls = ir.TLSConfig((ir.Certificate("default/cert", cert[0], cert[1]),))
    return ir.Gateway(
        name=GW,
        http=(
            ir.HTTPListener("default/e2e/http", "127.0.0.1", http_port, ("*",), (route("http"),)),
            ir.HTTPListener(
                "default/e2e/https", "127.0.0.1", https_port, ("*",), (route("https"),), tls
            ),
        ),
        endpoints=(ir.ClusterEndpoints(echo.name, (ir.Endpoint("127.0.0.1", backend_port),)),),
    )


def fetch_tls(port: int) -> tuple[int, str]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/", timeout=2, context=ctx) as r:
            return r.status, r.read().decode()
    except (urllib.error.URLError, OSError) as err:
        return 0, str(err)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_translated_gateway_with_tls(
    envoys: Callable[[dict[str, object]], Envoy], delta: bool, tmp_path: Path
) -> None:
    """The translator's output, secrets included, served over ADS to a real Envoy."""

    async def scenario() -> None:
        http_port, https_port = unused_port(), unused_port()
        cert = self_signed(tmp_path)
        with backend("hello") as backend_port:
            cache = SnapshotCache()
            snap = cache.set_snapshot(
                GW, translate(gateway(http_port, https_port, backend_port, cert))
            )
            assert snap.resources[SECRET_TYPE]
            async with running(cache) as server:
                envoy = start_proxy(envoys, server, delta=delta)
                everything = (*TYPES4, SECRET_TYPE)
                await wait(envoy, lambda: converged(server, snap, everything), "all ACKed")
                await wait_body(envoy, http_port, "hello")
                assert await asyncio.to_thread(fetch_tls, https_port) == (200, "hello")
                (proxy,) = server.registry.for_cluster(GW)
                assert all(s.nack_message is None for s in proxy.types.values())

    run(scenario())
