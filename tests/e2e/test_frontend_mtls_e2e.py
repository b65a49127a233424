"""Client certificate validation (Gateway ``spec.tls.frontend``) through a real Envoy.

One `egobs serve` with a host-mode Envoy serving one HTTPS hostname on three ports: 443
without client validation, 8443 requiring a client certificate from the ConfigMap's CA
(AllowValidOnly), 9443 with AllowInsecureFallback. The clients are Python TLS sockets with
or without a certificate, from that CA or from another one. Editing the ConfigMap changes
which clients get in, on the same Envoy.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import GATEWAY_CLASS, Serve, echo_backends, echo_servers
from l4_helpers import ServerCert, TestCA
from testkit import unused_port as free_port
from testkit import wait_until

pytestmark = pytest.mark.envoy

HOST = "www.example.com"
PORTS = {"plain": 443, "mtls": 8443, "fallback": 9443}


def _gateway() -> str:
    listeners = "".join(
        f"""\
    - name: {name}
      protocol: HTTPS
      port: {port}
      hostname: {HOST}
      tls: {{mode: Terminate, certificateRefs: [{{name: www}}]}}
"""
        for name, port in PORTS.items()
    )
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: eg, namespace: default}}
spec:
  gatewayClassName: egobs
  tls:
    frontend:
      default: {{}}
      perPort:
        - port: 8443
          tls: {{validation: {{caCertificateRefs: [{{group: "", kind: ConfigMap, name: clients}}]}}}}
        - port: 9443
          tls:
            validation:
              mode: AllowInsecureFallback
              caCertificateRefs: [{{group: "", kind: ConfigMap, name: clients}}]
  listeners:
{listeners}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: default}}
spec:
  parentRefs: [{{name: eg}}]
  rules: [{{backendRefs: [{{name: web, port: 8080}}]}}]
"""


def _indented(text: str) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines())


def _secret(cert: ServerCert) -> str:
    return f"""\
apiVersion: v1
kind: Secret
metadata: {{name: www, namespace: default}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{_indented(cert.cert_file.read_text())}
  tls.key: |
{_indented(cert.key_file.read_text())}
"""


def _clients(pem: str) -> str:
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: clients, namespace: default}}
data:
  ca.crt: |
{_indented(pem)}
"""


class Certs:
    """The server's CA and certificate; two client CAs, each with a client certificate."""

    def __init__(self, tmp: Path) -> None:
        self.server_ca = TestCA(tmp / "server")
        self.client_ca = TestCA(tmp / "clients")
        self.other_ca = TestCA(tmp / "other")
        for ca in (self.server_ca, self.client_ca, self.other_ca):
            ca.tmp.mkdir(parents=True, exist_ok=True)
        self.server = self.server_ca.issue(HOST)
        self.client = self.client_ca.issue("client.example.com", client=True)
        self.stranger = self.other_ca.issue("stranger.example.com", client=True)


def _get(port: int, client: ServerCert | None, ca: TestCA) -> int | str:
    """The status of ``GET /`` over TLS to 127.0.0.1:``port`` with SNI and Host ``HOST``,
    presenting ``client``'s certificate (or none); the error's name when TLS fails."""
    ctx = ca.client_context()
    if client is not None:
        ctx.load_cert_chain(client.cert_file, client.key_file)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            head = tls.recv(64).decode(errors="replace")
    except (ssl.SSLError, ConnectionError) as exc:
        return type(exc).__name__
    if not head.startswith("HTTP/1.1 "):
        return head or "closed"
    return int(head.split()[1])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Serve]:
    with echo_servers("web") as echoes:
        tmp = tmp_path_factory.mktemp("frontend-mtls")
        ports = {port: free_port() for port in PORTS.values()}
        serve = Serve(tmp, port_map=ports)
        serve.ports = ports  # type: ignore[attr-defined]
        serve.write("00-gateway.yaml", GATEWAY_CLASS + "---\n" + _gateway())
        serve.write("10-backends.yaml", echo_backends({"web": echoes["web"].port}))
        serve.write("20-secret.yaml", _secret(certs.server))
        serve.write("30-clients.yaml", _clients(certs.client_ca.pem))
        serve.start()
        try:
            wait_until(
                lambda: _get(ports[8443], certs.client, certs.server_ca) == 200,
                timeout=30,
                what="8443 served",
            )
            yield serve
        finally:
            serve.stop()


def _port(stack: Serve, name: str) -> int:
    return int(stack.ports[PORTS[name]])  # type: ignore[attr-defined]


def test_a_port_without_validation_takes_any_client(stack: Serve, certs: Certs) -> None:
    assert _get(_port(stack, "plain"), None, certs.server_ca) == 200


def test_allow_valid_only_needs_a_certificate_from_the_ca(stack: Serve, certs: Certs) -> None:
    port = _port(stack, "mtls")
    assert _get(port, certs.client, certs.server_ca) == 200
    assert _get(port, None, certs.server_ca) != 200
    assert _get(port, certs.stranger, certs.server_ca) != 200


def test_insecure_fallback_lets_every_client_in(stack: Serve, certs: Certs) -> None:
    port = _port(stack, "fallback")
    assert _get(port, certs.client, certs.server_ca) == 200
    assert _get(port, None, certs.server_ca) == 200
    assert _get(port, certs.stranger, certs.server_ca) == 200


def test_a_new_ca_changes_who_gets_in_on_the_same_envoy(stack: Serve, certs: Certs) -> None:
    pid = stack.envoy_pid("default/eg")
    port = _port(stack, "mtls")
    stack.write("30-clients.yaml", _clients(certs.other_ca.pem))
    wait_until(
        lambda: _get(port, certs.stranger, certs.server_ca) == 200,
        timeout=15,
        what="the other CA trusted",
    )
    assert _get(port, certs.client, certs.server_ca) != 200
    stack.write("30-clients.yaml", _clients(certs.client_ca.pem))
    wait_until(
        lambda: _get(port, certs.client, certs.server_ca) == 200, timeout=15, what="restored"
    )
    assert stack.envoy_pid("default/eg") == pid
