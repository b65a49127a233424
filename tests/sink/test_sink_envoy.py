"""Real Envoy → `egobs sink`: every request once in the JSON lines and the RED counters."""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
from sink_helpers import (
    DIRECT_ROUTE,
    ECHO_CLUSTER,
    ECHO_ROUTE,
    GATEWAY,
    EnvoyProc,
    SinkProc,
    free_port,
    gateway_ir,
    http_get,
    read_jsonl,
    tcp_roundtrip,
    total,
    wait_until,
)

from egobs.echo import EchoServer, start_echo_in_thread
from egobs.gatewayapi import SinkAddress

pytestmark = pytest.mark.envoy


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    srv = start_echo_in_thread(name="echo")
    yield srv
    srv.stop()


def _start(
    envoy_bin: str, tmp_path: Path, echo: EchoServer, *sink_args: str
) -> tuple[SinkProc, EnvoyProc]:
    sink = SinkProc(tmp_path, *sink_args)
    try:
        gw = gateway_ir(
            echo_port=echo.port,
            http_port=free_port(),
            tcp_port=free_port(),
            sinks=(SinkAddress("127.0.0.1", sink.port),),
        )
        envoy = EnvoyProc(envoy_bin, tmp_path, gw)
    except BaseException:
        sink.stop()
        raise
    return sink, envoy


def test_every_request_once_in_jsonl_and_red_counters(
    envoy_bin: str, tmp_path: Path, echo: EchoServer
) -> None:
    jsonl = tmp_path / "logs" / "access.jsonl"
    sink, envoy = _start(envoy_bin, tmp_path, echo, "--jsonl", str(jsonl))
    try:
        http_port = envoy.gateway.http[0].port
        tcp_port = envoy.gateway.tcp[0].port
        direct, proxied, errors, tcp = 60, 40, 5, 3
        for i in range(direct):
            assert http_get(f"http://127.0.0.1:{http_port}/direct/{i}") == b"ok"
        for i in range(proxied):
            body = json.loads(
                http_get(
                    f"http://127.0.0.1:{http_port}/echo/{i}",
                    headers={"Authorization": "Bearer s3cret", "Cookie": "session=abc"},
                )
            )
            assert body["backend"] == "echo"
        for _ in range(errors):
            with pytest.raises(urllib.error.HTTPError):
                http_get(f"http://127.0.0.1:{http_port}/status/503")
        for _ in range(tcp):
            reply = tcp_roundtrip(tcp_port, b"GET /tcp HTTP/1.0\r\nHost: x\r\n\r\n")
            assert b'"backend": "echo"' in reply

        n_http = direct + proxied + errors
        wait_until(
            lambda: (
                total(sink.metrics(), "egobs_sink_requests_total") >= n_http
                and total(sink.metrics(), "egobs_sink_tcp_connections_total") >= tcp
            ),
            timeout=15,
            what="entries in the sink",
        )
        stats = envoy.stats()
        completed = stats[f"http.http-{http_port}.downstream_rq_completed"]
        assert completed == n_http
        m = sink.metrics()
        assert total(m, "egobs_sink_requests_total") == completed
        assert total(m, "egobs_sink_requests_total", route=DIRECT_ROUTE, code_class="2xx") == direct
        assert (
            total(m, "egobs_sink_requests_total", route=ECHO_ROUTE, upstream_cluster=ECHO_CLUSTER)
            == proxied + errors
        )
        assert total(m, "egobs_sink_requests_total", code_class="5xx") == errors
        assert total(m, "egobs_sink_requests_total", gateway=GATEWAY) == completed
        assert total(m, "egobs_sink_request_duration_seconds_count") == completed
        assert total(m, "egobs_sink_tcp_connections_total", upstream_cluster=ECHO_CLUSTER) == tcp
        assert total(m, "egobs_sink_sent_bytes_total", protocol="tcp") > 0
        assert total(m, "egobs_sink_entries_received_total") == completed + tcp
        assert total(m, "egobs_sink_entries_written_total") == completed + tcp
        assert total(m, "egobs_sink_entries_dropped_total") == 0
        assert total(m, "egobs_sink_active_streams", service="als") >= 1
        assert stats.get("access_logs.grpc_access_log.logs_dropped", 0) == 0

        lines = read_jsonl(jsonl)
        http_lines = [r for r in lines if r["kind"] == "http"]
        assert len(http_lines) == completed
        assert len({r["request_id"] for r in http_lines}) == completed  # each once
        assert len([r for r in lines if r["kind"] == "tcp"]) == tcp
        echo_line = next(r for r in http_lines if r["path"] == "/echo/0")
        assert echo_line["gateway"] == GATEWAY
        assert echo_line["node"] == "envoy-1"
        assert echo_line["route"] == ECHO_ROUTE
        assert echo_line["upstream_cluster"] == ECHO_CLUSTER
        assert echo_line["method"] == "GET"
        assert echo_line["response_code"] == 200
        assert 0 < echo_line["duration_ms"] < 5000
        # Precise timings, not Envoy's whole-millisecond %DURATION%.
        assert any(r["duration_ms"] != int(r["duration_ms"]) for r in http_lines)
        # Credentials are logged by Envoy and redacted by the sink.
        assert echo_line["request_headers"]["authorization"] == "[redacted]"
        assert echo_line["request_headers"]["cookie"] == "[redacted]"
        assert "s3cret" not in jsonl.read_text()
        tcp_line = next(r for r in lines if r["kind"] == "tcp")
        assert tcp_line["upstream_cluster"] == ECHO_CLUSTER
        assert tcp_line["bytes_sent"] > 0
    finally:
        envoy.stop()
        assert sink.stop() == 0, sink.log()
