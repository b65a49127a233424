"""`egobs demo --once`: the README's main command, end to end with real Envoy; and the
demo's echo-port rewriting and fresh access-log file on their own."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from testkit import unused_port as free_port

from egobs.demo import (
    QUICKSTART_ECHO_PORTS,
    default_quickstart,
    parse_echo_ports,
    rewrite_endpoint_ports,
    start_access_log,
)


@pytest.mark.envoy
def test_demo_serves_quickstart_traffic(envoy_bin: str, tmp_path: Path) -> None:
    proxy_port = free_port()
    stats_port = free_port()
    access_log = tmp_path / "access.jsonl"
    access_log.write_text('{"stale": "from an earlier run"}\n' * 3)
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
            "--echo-ports",
            "0,0",
            "--access-log",
            str(access_log),
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
    # The file started fresh: it holds exactly the entries the demo reported, all of this run.
    lines_written = access_log.read_text().splitlines()
    assert len(lines_written) == int(m.group(1)), out
    assert all("stale" not in json.loads(line) for line in lines_written)
    assert access_log.with_name("access.jsonl.1").read_text().count("stale") == 3
    # Free echo ports: served from a copy whose EndpointSlices name them.
    e = re.search(r"echo-a on 127.0.0.1:(\d+), echo-b on 127.0.0.1:(\d+)", out)
    assert e is not None and (int(e.group(1)), int(e.group(2))) != QUICKSTART_ECHO_PORTS, out
    assert f"Serving {tmp_path / 'resources'}" in out
    assert f"stats http://127.0.0.1:{stats_port}/stats/prometheus" in out


def test_echo_ports_flag_parses_two_ports() -> None:
    assert parse_echo_ports("18081,18082") == (18081, 18082)
    assert parse_echo_ports("0, 0") == (0, 0)
    for bad in ("18081", "1,2,3", "a,b", "1,70000"):
        with pytest.raises(ValueError, match="two ports"):
            parse_echo_ports(bad)


def test_rewritten_copy_points_the_endpointslices_at_the_echo_ports(tmp_path: Path) -> None:
    out = rewrite_endpoint_ports(
        [str(default_quickstart())], {18081: 40001, 18082: 40002}, tmp_path / "copy"
    )
    docs = [d for f in sorted(out.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    ports = {
        d["metadata"]["name"]: [p["port"] for p in d["ports"]]
        for d in docs
        if d["kind"] == "EndpointSlice"
    }
    assert ports == {"echo-a-1": [40001], "echo-b-1": [40002]}
    originals = [
        d
        for f in sorted(default_quickstart().glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d
    ]
    assert len(docs) == len(originals)


def test_access_log_starts_fresh_and_keeps_the_previous_run(tmp_path: Path) -> None:
    log = tmp_path / "demo" / "access.jsonl"
    assert start_access_log(log) is None and log.read_text() == ""
    log.write_text("run 1\n")
    assert start_access_log(log) == log.with_name("access.jsonl.1")
    log.write_text("run 2\n")
    start_access_log(log)
    assert log.read_text() == "" and log.with_name("access.jsonl.1").read_text() == "run 2\n"


def test_stats_port_zero_picks_a_free_port() -> None:
    from egobs.demo import DEFAULT_STATS_PORT, demo_config

    cfg = demo_config(paths=["examples/quickstart"], stats_port=0)
    port = cfg.infra.host.port_map[DEFAULT_STATS_PORT]
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free, as promised
