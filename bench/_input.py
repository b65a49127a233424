"""The benchmark input shape shared by bench/translate.py and bench/converge.py.

HTTPRoutes spread over 50 hostnames and 1,000 Services (3 endpoints each), each route with a
path and a header match, a request-header filter and a 90/10 split over two Services.
"""

from __future__ import annotations

HOSTNAMES = 50
SERVICES = 1000
ENDPOINTS_PER_SERVICE = 3


def route_doc(r: int, version: int = 0) -> str:
    # The edit moves the route to a new path and a new header value: one route's match and
    # action change, its backends (and so clusters) stay.
    suffix = f"-v{version}" if version else ""
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: route-{r}, namespace: bench}}
spec:
  parentRefs: [{{name: eg}}]
  hostnames: [host-{r % HOSTNAMES}.example.com]
  rules:
    - matches:
        - path: {{type: PathPrefix, value: /api/r{r}{suffix}}}
          headers: [{{name: x-tenant, value: t{r % 7}}}]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{{name: x-route, value: r{r}{suffix}}}]
      backendRefs:
        - {{name: svc-{r % SERVICES}, port: 80, weight: 90}}
        - {{name: svc-{(r + 1) % SERVICES}, port: 80, weight: 10}}"""


def slice_doc(s: int, version: int = 0) -> str:
    """The EndpointSlice of Service ``s``; a ``version`` > 0 is a rollout step: the third
    endpoint is replaced by a new address (so one cluster's assignment changes)."""
    addrs = [f"127.0.{s // 250}.{(s % 250) + 1}"] * ENDPOINTS_PER_SERVICE
    if version:
        addrs[-1] = f"127.{1 + version // 250}.{s % 250}.{(version % 250) + 1}"
    endpoints = ", ".join(f"{{addresses: [{a}]}}" for a in addrs)
    return f"""apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: svc-{s}-a, namespace: bench, labels: {{kubernetes.io/service-name: svc-{s}}}}}
addressType: IPv4
ports: [{{name: http, port: {8000 + s % 1000}}}]
endpoints: [{endpoints}]"""


def base_docs(*, separate_slices: frozenset[int] = frozenset()) -> list[str]:
    """The GatewayClass, Gateway, Services and their EndpointSlices, but the slices of the
    Services in ``separate_slices`` (which bench/endpoints.py keeps in files of their own)."""
    docs = [
        """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: egobs}
spec: {controllerName: gateway.egobs.dev/gatewayclass-controller}""",
        """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: bench}
spec:
  gatewayClassName: egobs
  listeners:
    - {name: http, protocol: HTTP, port: 80}""",
    ]
    for s in range(SERVICES):
        docs.append(
            f"""apiVersion: v1
kind: Service
metadata: {{name: svc-{s}, namespace: bench}}
spec:
  ports: [{{name: http, port: 80}}]"""
        )
        if s not in separate_slices:
            docs.append(slice_doc(s))
    return docs
