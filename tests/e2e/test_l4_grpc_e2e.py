"""TCPRoute, UDPRoute, TLSRoute (passthrough by SNI) and GRPCRoute end to end.

One `egobs serve` with a real host-mode Envoy serves a Gateway with a TCP, a UDP, a TLS
passthrough and an HTTP listener; the backends are servers this test runs on 127.0.0.1
(TCP/UDP echo, two TLS servers with certificates from a throwaway CA, two grpcio servers).
Real traffic goes through the Gateway's listeners and each test checks which backend
answered.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from e2e_helpers import GATEWAY_CLASS, Serve, request
from l4_helpers import (
    L4Servers,
    NamedGrpcServer,
    TestCA,
    grpc_call,
    tcp_roundtrip,
    tls_roundtrip,
    udp_roundtrip,
    unused_udp_port,
)
from prometheus_client.parser import text_string_to_metric_families
from testkit import pid_alive, wait_until
from testkit import unused_port as free_port

pytestmark = [pytest.mark.envoy, pytest.mark.usefixtures("envoy_bin")]

GATEWAY = "default/l4"
GRPC_HOST = "grpc.example.test"
# The Gateway declares these ports; the port map binds each to a free host port.
TCP_PORT, UDP_PORT, TLS_PORT, HTTP_PORT = 7000, 7001, 7443, 7080

GATEWAY_YAML = f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: l4, namespace: default}}
spec:
  gatewayClassName: egobs
  listeners:
    - {{name: tcp, protocol: TCP, port: {TCP_PORT}}}
    - {{name: udp, protocol: UDP, port: {UDP_PORT}}}
    - {{name: tls, protocol: TLS, port: {TLS_PORT}, tls: {{mode: Passthrough}}}}
    - {{name: grpc, protocol: HTTP, port: {HTTP_PORT}}}
"""

ROUTES_YAML = f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {{name: tcp-echo, namespace: default}}
spec:
  parentRefs: [{{name: l4, sectionName: tcp}}]
  rules: [{{backendRefs: [{{name: tcp-echo, port: 9000}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: UDPRoute
metadata: {{name: udp-echo, namespace: default}}
spec:
  parentRefs: [{{name: l4, sectionName: udp}}]
  rules: [{{backendRefs: [{{name: udp-echo, port: 9001}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: tls-a, namespace: default}}
spec:
  parentRefs: [{{name: l4, sectionName: tls}}]
  hostnames: [a.example.test]
  rules: [{{backendRefs: [{{name: tls-a, port: 443}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: tls-b, namespace: default}}
spec:
  parentRefs: [{{name: l4, sectionName: tls}}]
  hostnames: [b.example.test]
  rules: [{{backendRefs: [{{name: tls-b, port: 443}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: grpc, namespace: default}}
spec:
  parentRefs: [{{name: l4, sectionName: grpc}}]
  hostnames: [{GRPC_HOST}]
  rules:
    # By service and method.
    - matches: [{{method: {{service: test.Alpha, method: Call}}}}]
      backendRefs: [{{name: grpc-a, port: 50051}}]
    - matches: [{{method: {{service: test.Beta, method: Call}}}}]
      backendRefs: [{{name: grpc-b, port: 50051}}]
    # By header: the same method with x-backend: b goes to b (more header matches win).
    - matches:
        - method: {{service: test.Alpha, method: Call}}
          headers: [{{name: x-backend, value: b}}]
      backendRefs: [{{name: grpc-b, port: 50051}}]
"""

# Service name -> (Service port, protocol); its EndpointSlice names the backend's real port.
SERVICES = {
    "tcp-echo": (9000, "TCP"),
    "udp-echo": (9001, "UDP"),
    "tls-a": (443, "TCP"),
    "tls-b": (443, "TCP"),
    "grpc-a": (50051, "TCP"),
    "grpc-b": (50051, "TCP"),
}


def backends_yaml(ports: dict[str, int]) -> str:
    """A Service and an EndpointSlice (127.0.0.1, the backend's real port) per backend."""
    docs = []
    for name, (port, proto) in SERVICES.items():
        docs.append(
            f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: main, port: {port}, protocol: {proto}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: main, port: {ports[name]}, protocol: {proto}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
"""
        )
    return "---\n".join(docs)


@dataclass
class Stack:
    serve: Serve
    tcp: int  # host ports of the Gateway's listeners
    udp: int
    tls: int
    http: int
    ca: TestCA
    certs: dict[str, bytes]  # backend name -> DER of the certificate it serves
    l4: L4Servers
    grpc: dict[str, NamedGrpcServer]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, envoy_bin: str) -> Iterator[Stack]:
    # envoy_bin: a missing Envoy fails here, before egobs serve would fail to start one.
    tmp = tmp_path_factory.mktemp("l4")
    ca = TestCA(tmp)
    cert_a, cert_b = ca.issue("a.example.test"), ca.issue("b.example.test")
    l4 = L4Servers()
    grpc_servers: dict[str, NamedGrpcServer] = {}
    serve: Serve | None = None
    envoy_pid: int | None = None
    try:
        # Every backend serves every method the tests call, routed or not.
        services = {"test.Alpha": ["Call", "Other"], "test.Beta": ["Call"], "test.Gamma": ["Call"]}
        for name in ("grpc-a", "grpc-b"):
            grpc_servers[name] = NamedGrpcServer(name, services)
        ports = {
            "tcp-echo": l4.tcp_echo("tcp-echo"),
            "udp-echo": l4.udp_echo("udp-echo"),
            "tls-a": l4.tls_named("tls-a", cert_a),
            "tls-b": l4.tls_named("tls-b", cert_b),
            **{name: s.port for name, s in grpc_servers.items()},
        }
        host = {
            "tcp": free_port(),
            "udp": unused_udp_port(),
            "tls": free_port(),
            "http": free_port(),
        }
        serve = running = Serve(
            tmp,
            port_map={
                TCP_PORT: host["tcp"],
                UDP_PORT: host["udp"],
                TLS_PORT: host["tls"],
                HTTP_PORT: host["http"],
            },
        )
        running.write("00-class.yaml", GATEWAY_CLASS)
        running.write("10-gateway.yaml", GATEWAY_YAML)
        running.write("20-backends.yaml", backends_yaml(ports))
        running.write("30-routes.yaml", ROUTES_YAML)
        running.start()
        envoy_pid = wait_until(lambda: running.envoy_pid(GATEWAY), timeout=30, what="Envoy running")
        st = Stack(
            running,
            host["tcp"],
            host["udp"],
            host["tls"],
            host["http"],
            ca,
            {"tls-a": cert_a.der, "tls-b": cert_b.der},
            l4,
            grpc_servers,
        )
        # Every listener comes in one LDS push; wait for the plain TCP one to pass bytes.
        wait_until(
            lambda: tcp_roundtrip(st.tcp, b"ready") == b"tcp-echo:ready",
            timeout=30,
            what="TCP listener forwarding",
        )
        yield st
    finally:
        if serve is not None:
            serve.stop()
        if envoy_pid is not None:
            wait_until(lambda: not pid_alive(envoy_pid), timeout=15, what="Envoy stopped")
        for s in grpc_servers.values():
            s.stop()
        l4.stop()


def envoy_counter(stack: Stack, name: str, **labels: str) -> float:
    """One counter from Envoy's Prometheus stats listener (0 when absent)."""
    status, _, body = request(f"http://127.0.0.1:{stack.serve.stats_port}/stats/prometheus")
    assert status == 200, body
    for family in text_string_to_metric_families(str(body)):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


# --------------------------------------------------------------------------- TCP


def test_tcp_route_carries_bytes_both_ways(stack: Stack) -> None:
    before = stack.l4.connections.get("tcp-echo", 0)
    payload = bytes(range(256)) * 1024  # 256 KiB, every byte value, larger than one read
    answer = tcp_roundtrip(stack.tcp, payload, timeout=10)
    assert answer == b"tcp-echo:" + payload
    assert stack.l4.connections["tcp-echo"] == before + 1


# --------------------------------------------------------------------------- UDP


def test_udp_route_carries_a_datagram_and_its_reply(stack: Stack) -> None:
    # UDP has no handshake: retry the first datagram until the listener answers.
    first = wait_until(
        lambda: udp_roundtrip(stack.udp, b"ping-0"), timeout=15, what="UDP listener forwarding"
    )
    assert first == b"udp-echo:ping-0"
    for i in range(1, 4):
        assert udp_roundtrip(stack.udp, f"ping-{i}".encode(), timeout=3) == (
            f"udp-echo:ping-{i}".encode()
        )


# --------------------------------------------------------------------------- TLS


def unverified() -> ssl.SSLContext:
    """A client context that accepts any certificate: only the routing is under test."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_tls_passthrough_routes_by_sni(stack: Stack) -> None:
    for sni, backend in (("a.example.test", "tls-a"), ("b.example.test", "tls-b")):
        got = wait_until(
            lambda sni=sni: tls_roundtrip(stack.tls, sni, unverified()),
            timeout=15,
            what=f"TLS listener passing {sni} through",
        )
        # Passthrough: the backend's own certificate reaches the client, and it answers.
        assert got.peer_der == stack.certs[backend], f"{sni}: not {backend}'s certificate"
        assert got.answer == f"{backend}:hello\n".encode()
        # And a client that checks the certificate against the name it asked for accepts it.
        verified = tls_roundtrip(stack.tls, sni, stack.ca.client_context(), line=b"checked\n")
        assert verified.answer == f"{backend}:checked\n".encode()


def test_tls_passthrough_unknown_sni_gets_no_backend(stack: Stack) -> None:
    # The listener is up: a known name goes through.
    wait_until(
        lambda: tls_roundtrip(stack.tls, "a.example.test", unverified()).answer == b"tls-a:hello\n",
        timeout=15,
        what="TLS listener up",
    )
    seen = dict(stack.l4.connections)
    address = f"127.0.0.1_{stack.tls}"
    no_match = "envoy_listener_no_filter_chain_match_total"
    misses = envoy_counter(stack, no_match, envoy_listener_address=address)
    for sni in ("c.example.test", "example.test"):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_roundtrip(stack.tls, sni, unverified())
    # Envoy refused them itself (no filter chain for the name); no backend saw a connection.
    wait_until(
        lambda: envoy_counter(stack, no_match, envoy_listener_address=address) >= misses + 2,
        timeout=10,
        what="no_filter_chain_match counted",
    )
    assert stack.l4.connections == seen


# --------------------------------------------------------------------------- gRPC


@pytest.fixture
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    ch = grpc.insecure_channel(
        f"127.0.0.1:{stack.http}", options=[("grpc.default_authority", GRPC_HOST)]
    )
    try:
        grpc.channel_ready_future(ch).result(timeout=15)
        yield ch
    finally:
        ch.close()


def test_grpc_route_matches_by_method_and_header(stack: Stack, channel: grpc.Channel) -> None:
    alpha = wait_until(
        lambda: grpc_call(channel, "/test.Alpha/Call", b"1"),
        timeout=15,
        what="GRPCRoute served",
    )
    assert alpha == b"grpc-a /test.Alpha/Call 1"
    assert grpc_call(channel, "/test.Beta/Call", b"2") == b"grpc-b /test.Beta/Call 2"
    by_header = grpc_call(channel, "/test.Alpha/Call", b"3", metadata=(("x-backend", "b"),))
    assert by_header == b"grpc-b /test.Alpha/Call 3"
    other = grpc_call(channel, "/test.Alpha/Call", b"4", metadata=(("x-backend", "c"),))
    assert other == b"grpc-a /test.Alpha/Call 4"
    # The backends saw real gRPC calls, with the header the client sent.
    path, metadata = stack.grpc["grpc-b"].calls[-1]
    assert path == "/test.Alpha/Call" and metadata["x-backend"] == "b"


def test_grpc_call_matching_no_rule_is_unimplemented(stack: Stack, channel: grpc.Channel) -> None:
    wait_until(lambda: grpc_call(channel, "/test.Alpha/Call"), timeout=15, what="GRPCRoute served")
    calls = {name: len(s.calls) for name, s in stack.grpc.items()}
    # Both backends serve these methods, but no rule routes them: Envoy's 404 is gRPC
    # UNIMPLEMENTED, and no backend sees the call.
    for path in ("/test.Gamma/Call", "/test.Alpha/Other"):
        with pytest.raises(grpc.RpcError) as err:
            grpc_call(channel, path)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, err.value
    assert {name: len(s.calls) for name, s in stack.grpc.items()} == calls
