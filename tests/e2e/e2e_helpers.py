"""Running `egobs serve` with real Envoy and echo backends for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from testkit import unused_port as free_port
from testkit import wait_until

from egobs.echo import EchoServer, start_echo_in_thread

GATEWAY_CLASS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: egobs}
spec: {controllerName: gateway.egobs.dev/gatewayclass-controller}
"""


ONE_HTTP_GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: default}
spec:
  gatewayClassName: egobs
  listeners: [{name: http, protocol: HTTP, port: 80}]
"""


def echo_backends(ports: dict[str, int], *, service_port: int = 8080) -> str:
    """A Service (port ``service_port``) and its EndpointSlice (127.0.0.1:``port``) per
    ``name: port``, as a controller would write them for echo backends."""
    docs = []
    for name, port in ports.items():
        docs.append(f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: http, port: {service_port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
""")
    return "---\n".join(docs)


@contextlib.contextmanager
def echo_servers(*names: str) -> Iterator[dict[str, EchoServer]]:
    """An `egobs echo` backend per name (in threads), stopped on exit."""
    servers = {n: start_echo_in_thread(name=n) for n in names}
    try:
        yield servers
    finally:
        for s in servers.values():
            s.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def request(
    url: str,
    *,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], Any]:
    """(status, lower-case headers, JSON body or raw text)."""
    h = dict(headers or {})
    if host:
        h["Host"] = host
    req = urllib.request.Request(url, headers=h, method=method)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status, rh, body = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, rh, body = err.code, err.headers, err.read()
    headers_out = {k.lower(): v for k, v in rh.items()}
    try:
        return status, headers_out, json.loads(body)
    except ValueError:
        return status, headers_out, body.decode(errors="replace")


class Serve:
    """`egobs serve` in a subprocess, on free ports, with a resources directory."""

    def __init__(
        self,
        tmp: Path,
        *,
        infra: str = "Host",
        xds_port: int | None = None,
        port_map: dict[int, int] | None = None,
        mode: str = "delta",
        sink_port: int | None = None,
        admin_token_file: str | None = None,
        keep_proxies: bool = False,
        xds_options: dict[str, Any] | None = None,
    ) -> None:
        self.tmp = tmp
        self.resources = tmp / "resources"
        self.resources.mkdir(exist_ok=True)
        self.xds_port = xds_port or free_port()
        self.admin_port = free_port()
        # Envoy's stats listener (19001 by default) gets a free port too, so tests never
        # collide on it; a test's own port_map wins.
        self.stats_port = free_port()
        self.port_map = {19001: self.stats_port, **(port_map or {})}
        self.log_path = tmp / f"serve-{self.xds_port}.log"
        self.config = tmp / "egobs.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "egobs.dev/v1alpha1",
                    "kind": "EgobsConfig",
                    "provider": {"type": "File", "file": {"paths": [str(self.resources)]}},
                    "xds": {
                        "address": "127.0.0.1",
                        "port": self.xds_port,
                        "mode": mode,
                        **(xds_options or {}),
                    },
                    "admin": {
                        "address": "127.0.0.1",
                        "port": self.admin_port,
                        **({"tokenFile": admin_token_file} if admin_token_file else {}),
                    },
                    # No sink unless a test runs one: Envoy would only count drops.
                    "proxyTelemetry": {"accessLogSink": {"port": sink_port} if sink_port else None},
                    "infra": {
                        "type": infra,
                        "host": {
                            "runtimeDir": str(tmp / "run"),
                            "listenerAddress": "127.0.0.1",
                            "portMap": self.port_map,
                            # Tests stop what they start; the fault tests keep them.
                            "keepProxies": keep_proxies,
                        },
                    },
                }
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def write(self, name: str, text: str) -> None:
        # Write then rename, as editors and config tools do, so no half file is ever seen.
        tmp = self.resources / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.resources / name)

    def start(self) -> Serve:
        env = dict(os.environ)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "egobs.cli",
                "serve",
                "-c",
                str(self.config),
                "--log-level",
                os.environ.get("EGOBS_TEST_SERVE_LOG_LEVEL", "info"),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        wait_until(self._ready, timeout=30, what="egobs serve /readyz")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"egobs serve exited {self.proc.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(self.admin + "/readyz", timeout=1) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.admin + "/debug/status", timeout=5) as resp:
            return json.load(resp)  # type: ignore[no-any-return]

    def proxy(self, name: str) -> dict[str, Any] | None:
        for p in self.status()["proxies"]:
            if p["name"] == name:
                return p  # type: ignore[no-any-return]
        return None

    def pushes(self) -> dict[str, float]:
        """egobs's own egobs_xds_pushes_total, by type (the short name of the type URL)."""
        with urllib.request.urlopen(self.admin + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return {
            sample.labels["type_url"].rsplit(".", 1)[-1]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "egobs_xds_pushes"
            for sample in family.samples
            if sample.name == "egobs_xds_pushes_total"
        }

    def envoy_pid(self, name: str) -> int | None:
        p = self.proxy(name)
        infra = (p or {}).get("infra") or {}
        return infra.get("pid") if infra.get("state") == "running" else None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        self.proc = None
