"""mTLS on the xDS server (issue 13): a proxy gets only the snapshot of the Gateway its
client certificate names.

Raw gRPC clients present one Gateway's certificate, another's, one from another CA, or
none, and the tests assert on what each receives and how its stream ends; a real Envoy
with a bootstrap from `egobs.infra.bootstrap` gets its configuration over mTLS and serves
it, and one presenting another Gateway's certificate is served nothing. In process, on
127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from mtls_helpers import GW, OTHER, ads_stream, client_credentials, make_certs
from testkit import envoy_binary, unused_port, wait_until_async

from egobs import ir
from egobs.certs import Layout, ServerTLS
from egobs.infra.bootstrap import ProxyTLS, UpstreamTLS, bootstrap
from egobs.telemetry.metrics import REGISTRY
from egobs.telemetry.observers import XdsTelemetry
from egobs.xds.resources import ResourceSet
from egobs.xds.server import XdsServer, serve
from egobs.xds.snapshot import SnapshotCache

BODY = {GW: "served to default/eg", OTHER: "served to default/other"}


def _resources(gateway: str, port: int, body: str | None = None) -> ResourceSet:
    """A listener on ``port`` answering every request with the Gateway's own body, and a
    cluster named after the Gateway (so a response shows whose snapshot it came from)."""
    rc = route_pb2.RouteConfiguration(name="rc")
    route = rc.virtual_hosts.add(name="all", domains=["*"]).routes.add()
    route.match.prefix = "/"
    route.direct_response.status = 200
    route.direct_response.body.inline_string = body or BODY[gateway]
    hcm = hcm_pb2.HttpConnectionManager(stat_prefix="http")
    hcm.route_config.CopyFrom(rc)
    router = hcm.http_filters.add(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router())
    lst = listener_pb2.Listener(name="http")
    lst.address.socket_address.address = "127.0.0.1"
    lst.address.socket_address.port_value = port
    f = lst.filter_chains.add().filters.add(name="envoy.filters.network.http_connection_manager")
    f.typed_config.Pack(hcm)
    marker = cluster_pb2.Cluster(name=f"marker/{gateway}", type=cluster_pb2.Cluster.STATIC)
    marker.connect_timeout.seconds = 1
    marker.load_assignment.cluster_name = marker.name
    return ResourceSet(listeners={lst.name: lst}, clusters={marker.name: marker})


def _cluster_names(response: object) -> set[str]:
    names = set()
    for item in getattr(response, "resources", ()):
        packed = item.resource if hasattr(item, "resource") else item
        c = cluster_pb2.Cluster()
        packed.Unpack(c)
        names.add(c.name)
    return names


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    return make_certs(tmp_path_factory.mktemp("mtls") / "certs", GW, OTHER)


class _Running:
    def __init__(self, server: XdsServer, cache: SnapshotCache, ports: dict[str, int]) -> None:
        self.server = server
        self.cache = cache
        self.ports = ports


async def _start(layout: Layout) -> _Running:
    cache = SnapshotCache()
    ports = {GW: unused_port(), OTHER: unused_port()}
    for gateway, port in ports.items():
        cache.set_snapshot(gateway, _resources(gateway, port))
    tls = ServerTLS.load(
        str(layout.xds.cert), str(layout.xds.key), str(layout.ca.cert), what="xds.tls"
    )
    # egobs's own telemetry observer: refusals are counted in its metrics.
    observer = XdsTelemetry(metrics=True)
    return _Running(await serve(cache, tls=tls, observer=observer), cache, ports)


def _refused(reason: str, gateway: str) -> float:
    value = REGISTRY.get_sample_value(
        "egobs_xds_streams_refused_total", {"reason": reason, "gateway": gateway}
    )
    return value or 0.0


def _run(coro: object) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro, 60)  # type: ignore[arg-type]

    asyncio.run(bounded())


# --------------------------------------------------------------------------- raw clients


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_a_proxy_gets_the_gateway_its_certificate_names(layout: Layout, delta: bool) -> None:
    async def main() -> None:
        running = await _start(layout)
        try:
            for gateway in (GW, OTHER):
                creds = client_credentials(layout, gateway)
                out = await ads_stream(running.server.port, creds, cluster=gateway, delta=delta)
                assert out.code is None, out  # open, serving
                (response,) = out.responses
                assert _cluster_names(response) == {f"marker/{gateway}"}
        finally:
            await running.server.stop(None)

    _run(main())


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_another_gateways_certificate_is_refused(
    layout: Layout, delta: bool, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        running = await _start(layout)
        try:
            creds = client_credentials(layout, OTHER)
            before = _refused("not_certified", GW)
            with caplog.at_level(logging.WARNING, logger="egobs.xds.server"):
                out = await ads_stream(running.server.port, creds, cluster=GW, delta=delta)
            assert _refused("not_certified", GW) == before + 1
            assert out.responses == []
            assert out.code is grpc.StatusCode.PERMISSION_DENIED
            assert out.details == (
                "node 'raw-client' asks for Gateway default/eg, but its client certificate "
                "names default/other"
            )
            assert len(running.server.registry) == 0
            (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
            assert line.startswith("xDS stream from ipv4:127.0.0.1:")
            assert line.endswith(out.details)
        finally:
            await running.server.stop(None)

    _run(main())


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_a_stream_cannot_switch_to_another_gateway(layout: Layout, delta: bool) -> None:
    async def main() -> None:
        running = await _start(layout)
        try:
            creds = client_credentials(layout, GW)
            before = _refused("gateway_switched", OTHER)
            out = await ads_stream(
                running.server.port, creds, cluster=GW, delta=delta, switch_to=OTHER
            )
            assert _refused("gateway_switched", OTHER) == before + 1
            # Its own Gateway's clusters, then nothing of the other's: the stream ends.
            assert [_cluster_names(r) for r in out.responses] == [{f"marker/{GW}"}]
            assert out.code is grpc.StatusCode.PERMISSION_DENIED
            assert out.details == (
                "node 'raw-client' asks for Gateway default/other on a stream opened for "
                "default/eg: a stream serves one Gateway"
            )
        finally:
            await running.server.stop(None)

    _run(main())


def test_no_certificate_or_plaintext_gets_nothing(layout: Layout) -> None:
    async def main() -> None:
        running = await _start(layout)
        try:
            port = running.server.port
            no_cert = await ads_stream(
                port, client_credentials(layout, None), cluster=GW, delta=True
            )
            plaintext = await ads_stream(port, None, cluster=GW, delta=True)
            for out in (no_cert, plaintext):
                # The TLS handshake fails: the call never reaches the server's handler.
                assert out.responses == []
                assert out.code is grpc.StatusCode.UNAVAILABLE, out
            assert len(running.server.registry) == 0
        finally:
            await running.server.stop(None)

    _run(main())


def test_a_certificate_from_another_ca_gets_nothing(layout: Layout, tmp_path: Path) -> None:
    # Same Gateway name, same layout, another CA: the server must not trust it.
    stranger = make_certs(tmp_path / "other-ca", GW)
    ca = layout.ca.cert.read_bytes()  # the client trusts the real server...
    pair = stranger.gateway(GW)  # ...but presents a certificate the server did not issue
    creds = grpc.ssl_channel_credentials(ca, pair.key.read_bytes(), pair.cert.read_bytes())

    async def main() -> None:
        running = await _start(layout)
        try:
            out = await ads_stream(running.server.port, creds, cluster=GW, delta=False)
            assert out.responses == []
            assert out.code is grpc.StatusCode.UNAVAILABLE, out
        finally:
            await running.server.stop(None)

    _run(main())


# --------------------------------------------------------------------------- real Envoy


@pytest.fixture
def envoy_bin() -> str:
    return envoy_binary()


class _Envoy:
    def __init__(self, envoy_bin: str, tmp: Path, config: dict[str, object]) -> None:
        self.log = tmp / "envoy.log"
        path = tmp / "bootstrap.json"
        path.write_text(json.dumps(config))
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [envoy_bin, "-c", str(path), "--disable-hot-restart", "--log-level", "info"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def envoys(envoy_bin: str, tmp_path: Path) -> Iterator[list[_Envoy]]:
    started: list[_Envoy] = []
    yield started
    for envoy in started:  # by the handle we started, never by name
        envoy.stop()


def _proxy_tls(cert_dir: Path, layout: Layout) -> ProxyTLS:
    return ProxyTLS(xds=UpstreamTLS(str(layout.ca.cert), str(cert_dir)))


def _fetch(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        return 0, str(err)


@pytest.mark.envoy
@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_envoy_gets_its_config_over_mtls(
    layout: Layout, envoy_bin: str, envoys: list[_Envoy], tmp_path: Path, delta: bool
) -> None:
    async def main() -> None:
        running = await _start(layout)
        try:
            config = bootstrap(
                ir.Proxy(GW, "egobs", ()),
                node_id="e2e-1",
                xds_host="127.0.0.1",
                xds_port=running.server.port,
                admin_port=0,
                delta=delta,
                tls=_proxy_tls(layout.gateways_dir, layout),
            )
            envoy = _Envoy(envoy_bin, tmp_path, config)
            envoys.append(envoy)
            port = running.ports[GW]
            await wait_until_async(
                lambda: envoy.proc.poll() is None and _fetch(port) == (200, BODY[GW]),
                f"Envoy serving {GW} over mTLS xDS",
                timeout=15,
            )
            (proxy,) = running.server.registry
            assert (proxy.node_id, proxy.cluster, proxy.delta) == ("e2e-1", GW, delta)
            # And it follows changes, as a plaintext stream does.
            running.cache.set_snapshot(GW, _resources(GW, port, "changed"))
            await wait_until_async(
                lambda: _fetch(port) == (200, "changed"), "the change served", timeout=15
            )
        finally:
            await running.server.stop(None)

    _run(main())


@pytest.mark.envoy
def test_envoy_with_another_gateways_certificate_is_served_nothing(
    layout: Layout,
    envoy_bin: str,
    envoys: list[_Envoy],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # default/other's certificate and key, where the bootstrap of default/eg looks for its own.
    stolen = tmp_path / "stolen"
    (stolen / "default").mkdir(parents=True)
    shutil.copytree(layout.gateway(OTHER).cert.parent, stolen / "default" / "eg")

    async def main() -> None:
        running = await _start(layout)
        try:
            config = bootstrap(
                ir.Proxy(GW, "egobs", ()),
                node_id="thief",
                xds_host="127.0.0.1",
                xds_port=running.server.port,
                admin_port=0,
                delta=True,
                tls=_proxy_tls(stolen, layout),
            )
            with caplog.at_level(logging.WARNING, logger="egobs.xds.server"):
                envoys.append(_Envoy(envoy_bin, tmp_path, config))

                def refused() -> bool:
                    return any(
                        "certificate names default/other" in r.getMessage() for r in caplog.records
                    )

                await wait_until_async(refused, "the server refusing the stream", timeout=15)
            assert len(running.server.registry) == 0
            # Neither Gateway's listener was ever given to it.
            assert _fetch(running.ports[GW])[0] == 0
            assert _fetch(running.ports[OTHER])[0] == 0
        finally:
            await running.server.stop(None)

    _run(main())
