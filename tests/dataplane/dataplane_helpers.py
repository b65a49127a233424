"""Helpers for the data-plane tests: `egobs serve` with a host-mode Envoy whose telemetry an
EnvoyProxy sets, echo backends, and readers for what Envoy exposes (Prometheus text, its
own admin config dump, Gateway conditions).

    stack = Stack.start(tmp, echoes={"echo": echo.port}, envoy_proxy=spec, flush_s=1)
    status, _, body = stack.get("/x")

Everything binds 127.0.0.1; every process started here is stopped by ``Stack.stop``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))

from e2e_helpers import GATEWAY_CLASS, Serve, request
from testkit import pid_alive, wait_until
from testkit import unused_port as free_port

__all__ = [
    "GATEWAY_CLASS",
    "HOST",
    "Sample",
    "Serve",
    "Stack",
    "free_port",
    "pid_alive",
    "prometheus_samples",
    "request",
    "wait_until",
]

HOST = "www.example.com"
GATEWAY = "default/eg"
ENVOY_PROXY = "telemetry"


# --------------------------------------------------------------------------- resources


def envoy_proxy(telemetry: dict[str, Any], *, name: str = ENVOY_PROXY) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "EnvoyProxy",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"telemetry": telemetry},
        },
        sort_keys=False,
    )


def gateway(*, name: str = "eg", envoy_proxy: str | None = ENVOY_PROXY, port: int = 80) -> str:
    infra = (
        f"  infrastructure:\n    parametersRef: "
        f"{{group: gateway.envoyproxy.io, kind: EnvoyProxy, name: {envoy_proxy}}}\n"
        if envoy_proxy
        else ""
    )
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: default}}
spec:
  gatewayClassName: egobs
{infra}  listeners:
    - {{name: http, protocol: HTTP, port: {port}}}
"""


def service(name: str, port: int, *, service_port: int = 8080) -> str:
    """A Service whose one endpoint is 127.0.0.1:``port``."""
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: grpc, port: {service_port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: grpc, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
"""


def backend(name: str, port: int) -> str:
    """An Envoy Gateway Backend at 127.0.0.1:``port``."""
    return f"""\
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: {name}, namespace: default}}
spec:
  endpoints: [{{ip: {{address: 127.0.0.1, port: {port}}}}}]
"""


def http_route(name: str, service_name: str, *, prefix: str = "/") -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: eg}}]
  hostnames: [{HOST}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}]
      backendRefs: [{{name: {service_name}, port: 8080}}]
"""


# --------------------------------------------------------------------------- the stack


class Stack:
    """One `egobs serve` (host infra) with Gateway ``default/eg`` on a free port."""

    def __init__(self, serve: Serve, proxy_port: int) -> None:
        self.serve = serve
        self.proxy_port = proxy_port

    @classmethod
    def start(
        cls,
        tmp: Path,
        *,
        resources: dict[str, str],
        flush_s: float | None = None,
        ready_path: str = "/",
    ) -> Stack:
        """Write ``resources`` (file name → YAML), start serving, wait until ``ready_path``
        answers 200 through Envoy. ``flush_s`` sets Envoy's stats flush interval."""
        proxy_port = free_port()
        serve = Serve(tmp, port_map={80: proxy_port})
        if flush_s is not None:
            cfg = yaml.safe_load(serve.config.read_text())
            cfg["infra"]["host"]["statsFlushIntervalS"] = flush_s
            serve.config.write_text(yaml.safe_dump(cfg))
        serve.write("00-class.yaml", GATEWAY_CLASS)
        for name, text in resources.items():
            serve.write(name, text)
        stack = cls(serve, proxy_port)
        serve.start()
        try:
            wait_until(
                lambda: stack.get(ready_path)[0] == 200, timeout=30, what="first route served"
            )
        except BaseException:
            stack.stop()
            raise
        return stack

    def stop(self) -> None:
        self.serve.stop()
        out = subprocess.run(
            ["pgrep", "-f", str(self.serve.tmp)], capture_output=True, text=True
        ).stdout.split()
        left = [int(p) for p in out if pid_alive(int(p))]
        assert not left, f"Envoy left running after egobs stopped: {left}"

    # ------------------------------------------------------------ traffic

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.proxy_port}{path}"

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
        kw.setdefault("host", HOST)
        return request(self.url(path), **kw)

    # ------------------------------------------------------------ state

    def proxy(self) -> dict[str, Any]:
        proxy = self.serve.proxy(GATEWAY)
        assert proxy is not None, f"no proxy {GATEWAY} in status: {self.serve.status()}"
        return proxy

    def pid(self) -> int | None:
        return self.serve.envoy_pid(GATEWAY)

    def stats_url(self) -> str:
        url = self.proxy().get("stats")
        assert url, f"proxy {GATEWAY} has no stats URL in status"
        return str(url)

    def envoy_admin(self) -> str:
        infra = self.proxy()["infra"]
        return f"http://{infra['adminHost']}:{infra['adminPort']}"

    def envoy_config(self) -> str:
        """The listeners the running Envoy serves new connections with (the active state of
        its dynamic listeners, not warming or draining ones), from its own admin, as JSON."""
        url = self.envoy_admin() + "/config_dump?resource=dynamic_listeners"
        with urllib.request.urlopen(url, timeout=5) as resp:
            dump = json.load(resp)
        active = [
            listener["active_state"]
            for listener in dump.get("configs", [])
            if "active_state" in listener
        ]
        return json.dumps(active)

    def wait_envoy_config(self, pred: Callable[[str], bool], *, what: str) -> None:
        """Wait until the running Envoy's active listeners satisfy ``pred``: an xDS edit
        has been applied by Envoy itself, not just sent."""
        wait_until(lambda: pred(self.envoy_config()), timeout=20, what=what)

    def gateway_condition(self, type_: str, name: str = "eg") -> dict[str, Any] | None:
        for obj in self.serve.status()["resources"]:
            if obj["kind"] == "Gateway" and obj["name"] == name:
                for cond in obj["status"].get("conditions", []):
                    if cond["type"] == type_:
                        return cond
        return None


# --------------------------------------------------------------------------- Prometheus


class Sample:
    """One Prometheus sample: name, labels, value."""

    __slots__ = ("labels", "name", "value")

    def __init__(self, name: str, labels: dict[str, str], value: float) -> None:
        self.name, self.labels, self.value = name, labels, value

    def __repr__(self) -> str:
        return f"{self.name}{self.labels} {self.value}"


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def prometheus_samples(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition, under the name it has in the text.

    (prometheus_client's parser renames a counter's samples to ``<family>_total``, which
    merges Envoy's ``envoy_vhost_route_upstream_rq{envoy_response_code=...}`` into
    ``envoy_vhost_route_upstream_rq_total``; it still checks the text is well formed.)
    """
    for _ in text_string_to_metric_families(text):
        pass
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name, labels_text, value = match.groups()
        labels = {}
        pos = 0
        while labels_text and pos < len(labels_text):
            label = _LABEL.match(labels_text, pos)
            assert label, f"bad labels in {line!r}"
            labels[label.group(1)] = re.sub(
                r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], label.group(2)
            )
            pos = label.end()
        out.append(Sample(name, labels, float(value)))
    return out


def fetch_text(url: str, *, headers: dict[str, str] | None = None) -> str:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return str(resp.read().decode())
