"""BackendTLSPolicy through a real Envoy: TLS to the backend, verified as the policy says.

One `egobs serve` with a host-mode Envoy; the backends are HTTPS servers with certificates
from a throwaway CA (and one from a second CA), each answering with the SNI it was sent.
The policies' CA certificates are ConfigMaps. What is shown: a verified connection with the
policy's hostname as SNI; a backend whose certificate does not chain to the policy's CA, or
does not carry the names the policy asks for, is never used (5xx); a policy none of whose
CA references resolve leaves its backend unresolved (5xx, never plaintext) and says why in
its status; of two policies for one Service port the older wins and the newer is
Conflicted; an edit of the ConfigMap takes effect without restarting anything.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import GATEWAY_CLASS, Serve, request
from l4_helpers import ServerCert, TestCA
from testkit import unused_port as free_port
from testkit import wait_until

pytestmark = pytest.mark.envoy

HOST = "tls.example.com"
BACKEND_NAME = "abc.example.com"  # the name in the backends' certificates


class HTTPSBackend:
    """An HTTPS server on 127.0.0.1 answering every GET with JSON naming itself, the SNI
    the client sent, the path and the common name of the client's certificate. With
    ``client_ca`` it requires a client certificate from that CA (mutual TLS)."""

    def __init__(self, name: str, cert: ServerCert, *, client_ca: str | None = None) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert.cert_file, cert.key_file)
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=client_ca)
        sni: dict[int, str | None] = {}  # by id of the TLS socket, set during its handshake

        def remember_sni(sock: ssl.SSLSocket, server_name: str | None, _: Any) -> None:
            sni[id(sock)] = server_name

        ctx.sni_callback = remember_sni  # type: ignore[assignment]

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                peer = self.connection.getpeercert()  # type: ignore[attr-defined]
                client = dict(item for rdn in peer["subject"] for item in rdn) if peer else {}
                body = json.dumps(
                    {
                        "backend": name,
                        "sni": sni.get(id(self.connection)),
                        "path": self.path,
                        "client": client.get("commonName"),
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[Any, Any]:
                sock, addr = self.socket.accept()
                sock.settimeout(5)
                return ctx.wrap_socket(sock, server_side=True), addr

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # failed handshakes are what some tests cause on purpose

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


CLIENT = "gateway.example.com"  # the common name of the Gateway's client certificate
GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: default}
spec:
  gatewayClassName: egobs
  tls: {backend: {clientCertificateRef: {name: gateway-client}}}
  listeners: [{name: http, protocol: HTTP, port: 80}]
"""


def _tls_secret(name: str, cert: ServerCert) -> str:
    def indented(path: Path) -> str:
        return "\n".join("    " + line for line in path.read_text().strip().splitlines())

    return f"""\
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{indented(cert.cert_file)}
  tls.key: |
{indented(cert.key_file)}
"""


def _service(name: str, port: int) -> str:
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: https, port: 443}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: https, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
"""


def _config_map(name: str, pem: str) -> str:
    body = "\n".join("    " + line for line in pem.strip().splitlines())
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: default}}
data:
  ca.crt: |
{body}
"""


def _policy(
    name: str, service: str, ca: str, *, sans: str = "", created: str = "2026-01-01T00:00:00Z"
) -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: {name}, namespace: default, creationTimestamp: "{created}"}}
spec:
  targetRefs: [{{group: "", kind: Service, name: {service}}}]
  validation:
    caCertificateRefs: [{{group: "", kind: ConfigMap, name: {ca}}}]
    hostname: {BACKEND_NAME}
{sans}"""


# path prefix -> Service
ROUTED = {
    "/good": "good",  # certificate from the policy's CA, names abc.example.com
    "/foreign": "foreign",  # certificate from another CA
    "/san": "san",  # policy asks for a name the certificate does not carry
    "/missing-ca": "missing-ca",  # policy's ConfigMap does not exist
    "/plain": "plain",  # no policy: plaintext to a TLS backend fails
    "/mutual": "mutual",  # requires the Gateway's client certificate (spec.tls.backend)
}


def _route() -> str:
    rules = "".join(
        f"""\
  - matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}]
    backendRefs: [{{name: {svc}, port: 443}}]
"""
        for prefix, svc in ROUTED.items()
    )
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: tls, namespace: default}}
spec:
  parentRefs: [{{name: eg}}]
  hostnames: [{HOST}]
  rules:
{rules}"""


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCA, TestCA]:
    return TestCA(tmp_path_factory.mktemp("ca")), TestCA(tmp_path_factory.mktemp("other-ca"))


@pytest.fixture(scope="module")
def backends(cas: tuple[TestCA, TestCA]) -> Iterator[dict[str, HTTPSBackend]]:
    ca, other = cas
    servers = {
        "good": HTTPSBackend("good", ca.issue(BACKEND_NAME)),
        "foreign": HTTPSBackend("foreign", other.issue(BACKEND_NAME)),
        "san": HTTPSBackend("san", ca.issue(BACKEND_NAME)),
        "missing-ca": HTTPSBackend("missing-ca", ca.issue(BACKEND_NAME)),
        "plain": HTTPSBackend("plain", ca.issue(BACKEND_NAME)),
        "mutual": HTTPSBackend("mutual", ca.issue(BACKEND_NAME), client_ca=ca.pem),
    }
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module", params=["delta", "sotw"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    cas: tuple[TestCA, TestCA],
    backends: dict[str, HTTPSBackend],
) -> Iterator[Serve]:
    ca, _ = cas
    tmp = tmp_path_factory.mktemp("backend-tls")
    port = free_port()
    # Both protocols: an in-place cluster update (a new CA) warms until its endpoints are
    # sent again, which Envoy does not ask for in delta and asks for unchanged in SotW.
    serve = Serve(tmp, port_map={80: port}, mode=request.param)
    serve.proxy_port = port  # type: ignore[attr-defined]
    serve.write("00-class.yaml", GATEWAY_CLASS + "---\n" + GATEWAY)
    serve.write("05-client-cert.yaml", _tls_secret("gateway-client", ca.issue(CLIENT, client=True)))
    serve.write("10-backends.yaml", "---\n".join(_service(n, b.port) for n, b in backends.items()))
    serve.write("20-ca.yaml", _config_map("ca", ca.pem))
    san = "    subjectAltNames: [{type: Hostname, hostname: other.example.com}]\n"
    serve.write(
        "30-policies.yaml",
        "---\n".join(
            [
                _policy("good", "good", "ca"),
                _policy("foreign", "foreign", "ca"),
                _policy("san", "san", "ca", sans=san),
                _policy("missing-ca", "missing-ca", "nope"),
                _policy("mutual", "mutual", "ca"),
                # Newer than "good" and for the same Service: Conflicted, not applied.
                _policy("late", "good", "nope", created="2026-06-01T00:00:00Z"),
            ]
        ),
    )
    serve.write("40-route.yaml", _route())
    serve.start()
    try:
        wait_until(lambda: _get(serve, "/good")[0] == 200, timeout=30, what="/good served")
        yield serve
    finally:
        serve.stop()


def _get(stack: Serve, path: str) -> tuple[int, Any]:
    status, _, body = request(
        f"http://127.0.0.1:{stack.proxy_port}{path}",  # type: ignore[attr-defined]
        host=HOST,
    )
    return status, body


def _policy_conditions(stack: Serve, name: str) -> dict[str, tuple[str, str]]:
    for obj in stack.status()["resources"]:
        if obj["kind"] == "BackendTLSPolicy" and obj["name"] == name:
            (ancestor,) = obj["status"]["ancestors"]
            assert ancestor["ancestorRef"]["name"] == "eg"
            return {c["type"]: (c["status"], c["reason"]) for c in ancestor["conditions"]}
    raise AssertionError(f"no BackendTLSPolicy {name} in status")


def test_a_verified_connection_sends_the_policy_hostname_as_sni(stack: Serve) -> None:
    status, body = _get(stack, "/good/x")
    assert status == 200, body
    # This backend asks for no client certificate, so none is sent.
    assert body == {"backend": "good", "sni": BACKEND_NAME, "path": "/good/x", "client": None}
    assert _policy_conditions(stack, "good") == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
    }


def test_a_certificate_from_another_ca_is_refused(stack: Serve) -> None:
    status, body = _get(stack, "/foreign")
    assert status == 503, body


def test_a_certificate_without_the_required_name_is_refused(stack: Serve) -> None:
    status, body = _get(stack, "/san")
    assert status == 503, body


def test_without_a_policy_plaintext_to_a_tls_backend_fails(stack: Serve) -> None:
    status, _ = _get(stack, "/plain")
    assert status >= 500  # Envoy speaks HTTP to a TLS port: no response it can use


def test_a_policy_without_a_usable_ca_leaves_its_backend_unused(stack: Serve) -> None:
    status, body = _get(stack, "/missing-ca")
    assert status == 500, body
    assert _policy_conditions(stack, "missing-ca") == {
        "Accepted": ("False", "NoValidCACertificate"),
        "ResolvedRefs": ("False", "InvalidCACertificateRef"),
    }


def test_of_two_policies_for_one_service_the_older_wins(stack: Serve) -> None:
    assert _policy_conditions(stack, "late")["Accepted"] == ("False", "Conflicted")
    assert _get(stack, "/good")[0] == 200  # "late" names a missing CA: not applied


def test_a_new_ca_bundle_takes_effect_in_place(stack: Serve, cas: tuple[TestCA, TestCA]) -> None:
    ca, other = cas
    pid = stack.envoy_pid("default/eg")
    stack.write("20-ca.yaml", _config_map("ca", other.pem))
    wait_until(lambda: _get(stack, "/foreign")[0] == 200, timeout=15, what="/foreign verified")
    assert _get(stack, "/good")[0] == 503  # its CA is no longer trusted
    stack.write("20-ca.yaml", _config_map("ca", ca.pem + other.pem))
    wait_until(lambda: _get(stack, "/good")[0] == 200, timeout=15, what="both CAs trusted")
    assert _get(stack, "/foreign")[0] == 200
    assert stack.envoy_pid("default/eg") == pid
    stack.write("20-ca.yaml", _config_map("ca", ca.pem))
    wait_until(lambda: _get(stack, "/foreign")[0] == 503, timeout=15, what="CA restored")


def test_the_status_of_every_policy_is_reported(stack: Serve) -> None:
    names = {
        obj["name"] for obj in stack.status()["resources"] if obj["kind"] == "BackendTLSPolicy"
    }
    assert names == {"good", "foreign", "san", "missing-ca", "late", "mutual"}


def test_the_gateway_presents_its_client_certificate(stack: Serve) -> None:
    """spec.tls.backend: a backend that requires a client certificate gets the Gateway's."""
    status, body = _get(stack, "/mutual")
    assert status == 200, body
    assert body["client"] == CLIENT
    (gateway,) = [
        o for o in stack.status()["resources"] if (o["kind"], o["name"]) == ("Gateway", "eg")
    ]
    resolved = {c["type"]: c for c in gateway["status"]["conditions"]}["ResolvedRefs"]
    assert (resolved["status"], resolved["reason"]) == ("True", "ResolvedRefs")
