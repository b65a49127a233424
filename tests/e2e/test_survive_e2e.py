"""Host-mode Envoys outlive `egobs serve`: SIGKILL under traffic, adoption on restart.

A real `egobs serve` (keepProxies, its default) runs one Envoy; requests flow through it
from a background thread the whole time. The control plane is SIGKILLed, the Envoy keeps
serving on its own, a new `egobs serve` on the same runtime directory and xDS port adopts
the very same Envoy process (no restart), and an edit made after the restart reaches it.
No request may fail. `egobs proxies stop` then stops the Envoy deliberately.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import GATEWAY_CLASS, ONE_HTTP_GATEWAY, Serve, echo_backends, echo_servers, request
from testkit import pid_alive, wait_until
from testkit import unused_port as free_port

from egobs.echo import EchoServer

pytestmark = pytest.mark.envoy

GATEWAY = "default/eg"


def _resources(backend: str) -> str:
    return (
        ONE_HTTP_GATEWAY
        + f"""\
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: default}}
spec:
  parentRefs: [{{name: eg}}]
  rules: [{{backendRefs: [{{name: {backend}, port: 8080}}]}}]
"""
    )


class Traffic:
    """Requests through the proxy, one after another, until stopped; counts outcomes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: Counter[str] = Counter()
        self.backends: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, _, body = request(self.url, timeout=5)
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if status == 200 and isinstance(body, dict):
                self.outcomes["ok"] += 1
                self.backends[body["backend"]] += 1
            else:
                self.failures.append(f"status {status}: {body!r}"[:200])

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def served_more(self, than: int) -> bool:
        return self.outcomes["ok"] > than


@pytest.fixture
def echoes() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("a", "b") as servers:
        yield servers


def _proxies(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "egobs.cli", "proxies", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_envoy_outlives_a_killed_control_plane_and_is_adopted(
    tmp_path: Path, echoes: dict[str, EchoServer], envoy_bin: str
) -> None:
    proxy_port = free_port()
    serve = Serve(tmp_path, port_map={80: proxy_port}, keep_proxies=True)
    runtime_dir = tmp_path / "run"
    serve.write("00-class.yaml", GATEWAY_CLASS)
    serve.write("10-backends.yaml", echo_backends({n: e.port for n, e in echoes.items()}))
    serve.write("20-routes.yaml", _resources("a"))
    url = f"http://127.0.0.1:{proxy_port}/"
    envoy_pid = None
    try:
        serve.start()
        wait_until(lambda: request(url)[0] == 200, timeout=30, what="first request served")
        envoy_pid = wait_until(lambda: serve.envoy_pid(GATEWAY), what="Envoy running")

        with Traffic(url) as traffic:
            wait_until(lambda: traffic.served_more(20), what="traffic flowing")
            serve.stop(signal.SIGKILL)
            assert pid_alive(envoy_pid), "the Envoy died with its control plane"
            # Serving alone, with nobody to talk xDS to.
            served = traffic.outcomes["ok"]
            wait_until(lambda: traffic.served_more(served + 50), what="Envoy serving alone")

            serve.start()  # same config: same runtime directory, xDS port and port map
            wait_until(
                lambda: (serve.proxy(GATEWAY) or {}).get("infra", {}).get("state") == "running",
                timeout=30,
                what="the restarted control plane sees its Envoy running",
            )
            assert serve.envoy_pid(GATEWAY) == envoy_pid, "adopted, not restarted"
            # The adopted Envoy is the new control plane's: an edit reaches it.
            serve.write("20-routes.yaml", _resources("b"))
            wait_until(lambda: traffic.backends["b"] > 10, timeout=30, what="edit applied")
        assert traffic.failures == [], traffic.failures[:5]
        assert pid_alive(envoy_pid)

        # A graceful stop leaves it serving too; `egobs proxies` finds and stops it.
        serve.stop()
        assert pid_alive(envoy_pid) and request(url)[0] == 200
        listed = _proxies("list", "--runtime-dir", str(runtime_dir), "-o", "json")
        assert listed.returncode == 0 and f'"pid": {envoy_pid}' in listed.stdout, listed
        stopped = _proxies("stop", "--runtime-dir", str(runtime_dir))
        assert stopped.returncode == 0, stopped.stderr
        assert f"pid {envoy_pid}" in stopped.stdout
        wait_until(lambda: not pid_alive(envoy_pid), what="Envoy stopped")
        assert "no running Envoys" in _proxies("list", "--runtime-dir", str(runtime_dir)).stdout
    finally:
        serve.stop()
        if envoy_pid is not None and pid_alive(envoy_pid):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "egobs.cli",
                    "proxies",
                    "stop",
                    "--runtime-dir",
                    str(runtime_dir),
                ],
                timeout=60,
                check=False,
            )
