"""HTTPRoute retries, backendRef filters and session persistence through a real Envoy.

One `egobs serve` with a host-mode Envoy; backends are egobs echo servers (they answer with
their name and the headers they got) and a flaky backend that fails the first attempts of
each request (counted by Envoy's x-request-id, which stays the same across retries).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from e2e_helpers import GATEWAY_CLASS, Serve, echo_servers, request
from testkit import unused_port as free_port
from testkit import wait_until

from egobs.echo import EchoServer

pytestmark = pytest.mark.envoy

HOST = "features.example.com"


class FlakyBackend:
    """Answers 503 to the first ``fail`` attempts of each request, then 200, where ``fail``
    comes from the path (``/<anything>/fail/<n>``); counts attempts per x-request-id."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                request_id = self.headers.get("x-request-id", "")
                with lock:
                    backend.attempts[request_id] += 1
                    attempt = backend.attempts[request_id]
                fail = int(self.path.rsplit("/fail/", 1)[1]) if "/fail/" in self.path else 0
                body = f"attempt {attempt}".encode()
                self.send_response(503 if attempt <= fail else 200)
                self.send_header("content-length", str(len(body)))
                self.send_header("x-attempt", str(attempt))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _service(name: str, port: int, *, slices: dict[str, int]) -> str:
    """A Service and one EndpointSlice per (slice name, echo port): all on 127.0.0.1."""
    docs = [
        f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: http, port: {port}}}]
"""
    ]
    for slice_name, target in slices.items():
        docs.append(f"""\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {slice_name}
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: {target}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
""")
    return "---\n".join(docs)


ROUTES = f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: eg, namespace: default}}
spec:
  gatewayClassName: egobs
  listeners:
    - {{name: http, protocol: HTTP, port: 80}}
    - {{name: alt, protocol: HTTP, port: 8080}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: features, namespace: default}}
spec:
  parentRefs: [{{name: eg}}]
  hostnames: [{HOST}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /retry-503}}}}]
      retry: {{codes: [503], attempts: 2, backoff: 10ms}}
      backendRefs: [{{name: flaky, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /no-codes}}}}]
      retry: {{attempts: 2, backoff: 10ms}}
      backendRefs: [{{name: flaky, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /split}}}}]
      backendRefs:
        - name: a
          port: 80
          filters:
            - type: RequestHeaderModifier
              requestHeaderModifier: {{set: [{{name: x-backend, value: for-a}}]}}
            - type: ResponseHeaderModifier
              responseHeaderModifier: {{set: [{{name: x-chosen, value: a}}]}}
        - name: b
          port: 80
          filters:
            - type: RequestHeaderModifier
              requestHeaderModifier: {{set: [{{name: x-backend, value: for-b}}]}}
            - type: ResponseHeaderModifier
              responseHeaderModifier: {{set: [{{name: x-chosen, value: b}}]}}
    - matches: [{{path: {{type: PathPrefix, value: /cookie}}}}]
      sessionPersistence: {{sessionName: egobs-e2e}}
      backendRefs: [{{name: pair, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /header}}}}]
      sessionPersistence: {{type: Header, sessionName: x-session}}
      backendRefs: [{{name: pair, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /loose}}}}]
      backendRefs: [{{name: pair, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /moved}}}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {{hostname: moved.example.com}}
    - matches: [{{path: {{type: PathPrefix, value: /secure}}}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {{scheme: https}}
"""


@pytest.fixture(scope="module")
def echoes() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("a", "b", "p1", "p2") as servers:
        yield servers


@pytest.fixture(scope="module")
def flaky() -> Iterator[FlakyBackend]:
    backend = FlakyBackend()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    echoes: dict[str, EchoServer],
    flaky: FlakyBackend,
) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("features")
    proxy_port, alt_port = free_port(), free_port()
    serve = Serve(tmp, port_map={80: proxy_port, 8080: alt_port})
    serve.proxy_port = proxy_port  # type: ignore[attr-defined]
    serve.alt_port = alt_port  # type: ignore[attr-defined]
    serve.write("00-class.yaml", GATEWAY_CLASS)
    backends = [
        _service("a", 80, slices={"a-1": echoes["a"].port}),
        _service("b", 80, slices={"b-1": echoes["b"].port}),
        _service("pair", 80, slices={"pair-1": echoes["p1"].port, "pair-2": echoes["p2"].port}),
        _service("flaky", 80, slices={"flaky-1": flaky.port}),
    ]
    serve.write("10-backends.yaml", "---\n".join(backends))
    serve.write("20-routes.yaml", ROUTES)
    serve.start()
    try:
        wait_until(lambda: _backend(serve, "/loose") is not None, timeout=30, what="routes served")
        yield serve
    finally:
        serve.stop()


def _get(stack: Serve, path: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
    kw.setdefault("host", HOST)
    return request(f"http://127.0.0.1:{stack.proxy_port}{path}", **kw)  # type: ignore[attr-defined]


def _backend(stack: Serve, path: str, **kw: Any) -> str | None:
    status, _, body = _get(stack, path, **kw)
    return body.get("backend") if status == 200 and isinstance(body, dict) else None


def test_retry_codes_turn_a_failed_attempt_into_a_success(
    stack: Serve, flaky: FlakyBackend
) -> None:
    status, headers, body = _get(stack, "/retry-503/fail/1")
    assert (status, headers.get("x-attempt")) == (200, "2"), body
    # attempts: 2 means at most two retries: a backend failing three times fails the request.
    status, headers, _ = _get(stack, "/retry-503/fail/3")
    assert (status, headers.get("x-attempt")) == (503, "3")


def test_without_codes_a_503_is_not_retried(stack: Serve) -> None:
    status, headers, _ = _get(stack, "/no-codes/fail/1")
    assert (status, headers.get("x-attempt")) == (503, "1")


def test_backend_filters_apply_to_their_backend_only(stack: Serve) -> None:
    seen: Counter[str] = Counter()
    for _ in range(40):
        status, headers, body = _get(stack, "/split")
        assert status == 200 and isinstance(body, dict), body
        name = body["backend"]
        # The request header was set for the backend that got it, and the response header
        # says the same backend: never another backend's filter.
        assert body["headers"].get("x-backend") == f"for-{name}", body
        assert headers.get("x-chosen") == name
        seen[name] += 1
    assert set(seen) == {"a", "b"}, seen


def test_a_session_cookie_keeps_a_client_on_one_endpoint(stack: Serve) -> None:
    # Without a session, the two endpoints share the requests.
    assert {_backend(stack, "/loose") for _ in range(20)} == {"p1", "p2"}
    status, headers, body = _get(stack, "/cookie")
    assert status == 200, body
    cookie = headers.get("set-cookie", "")
    assert cookie.startswith("egobs-e2e="), headers
    first = body["backend"]
    pinned = {
        _backend(stack, "/cookie", headers={"cookie": cookie.split(";", 1)[0]}) for _ in range(20)
    }
    assert pinned == {first}


def test_a_session_header_keeps_a_client_on_one_endpoint(stack: Serve) -> None:
    status, headers, body = _get(stack, "/header")
    assert status == 200, body
    session = headers.get("x-session")
    assert session, headers
    first = body["backend"]
    pinned = {_backend(stack, "/header", headers={"x-session": session}) for _ in range(20)}
    assert pinned == {first}


def test_a_redirect_without_scheme_or_port_takes_the_listener_port(stack: Serve) -> None:
    # Gateway API: with neither scheme nor port, the redirect port MUST be the listener's,
    # left out of Location when it is the scheme's well-known one. Host mode serves the
    # listener ports elsewhere (8080 on a free port here), and Location names that port.
    alt, main = stack.alt_port, stack.proxy_port  # type: ignore[attr-defined]
    status, headers, _ = request(f"http://127.0.0.1:{alt}/moved/x?q=1", host=f"{HOST}:{alt}")
    assert (status, headers["location"]) == (302, f"http://moved.example.com:{alt}/moved/x?q=1")
    status, headers, _ = _get(stack, "/moved/x?q=1")
    assert (status, headers["location"]) == (302, f"http://moved.example.com:{main}/moved/x?q=1")
    # A new scheme without a port: that scheme's well-known port (443 is not remapped here),
    # left out; never the port the client used.
    status, headers, _ = request(f"http://127.0.0.1:{alt}/secure/x", host=f"{HOST}:{alt}")
    assert (status, headers["location"]) == (302, f"https://{HOST}/secure/x")
