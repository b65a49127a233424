"""`egobs demo --once`: the README's main command, end to end with real Envoy."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from testkit import unused_port as free_port

pytestmark = pytest.mark.envoy


def test_demo_serves_quickstart_traffic(envoy_bin: str) -> None:
    proxy_port = free_port()
    stats_port = free_port()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "egobs.cli",
            "demo",
            "--once",
            "--xds-port",
            "0",
            "--admin-port",
            "0",
            "--port-offset",
            str(proxy_port - 80),
            "--sink-port",
            "0",
            "--sink-metrics-port",
            "0",
            "--stats-port",
            str(stats_port),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"Traffic through Envoy at http://127.0.0.1:{proxy_port}" in out
    lines = out.splitlines()
    assert any("echo-a" in line and "prefix /a" in line for line in lines)
    assert any("echo-b" in line and "x-served-by=egobs" in line for line in lines)
    assert any("path=/v1/users" in line for line in lines)
    assert any(line.strip().startswith("301") for line in lines)
    assert "Where to look:" in out
    # Every request of the demo (6 listed + 50 split, plus readiness probes) reached the sink.
    m = re.search(r"Access logs: the sink received (\d+) entries over gRPC", out)
    assert m is not None and int(m.group(1)) >= 56, out
    assert f"stats http://127.0.0.1:{stats_port}/stats/prometheus" in out
