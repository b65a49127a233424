"""Gateway IR with access-log sinks → HCM / tcp_proxy gRPC loggers and the sink's cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from sink_helpers import gateway_ir
from testkit import envoy_validate

from egobs import ir
from egobs.gatewayapi import SinkAddress
from egobs.xds.dump import static_bootstrap
from egobs.xds.translate import Translator, translate

SINK = SinkAddress("127.0.0.1", 18090)


def _gateway(*sinks: SinkAddress) -> ir.Gateway:
    return gateway_ir(echo_port=8080, http_port=10080, tcp_port=10090, sinks=sinks)


def test_listeners_log_to_every_sink() -> None:
    other = SinkAddress("sink.example", 9000, log_name="audit")
    rs = translate(_gateway(SINK, other))
    assert rs.clusters["telemetry/sink-0"].type == rs.clusters["telemetry/sink-0"].STATIC
    assert rs.clusters["telemetry/sink-1"].type == rs.clusters["telemetry/sink-1"].STRICT_DNS
    hcm = hcm_pb2.HttpConnectionManager()
    tcp = tcp_proxy_pb2.TcpProxy()
    for listener in rs.listeners.values():
        f = listener.filter_chains[0].filters[0]
        f.typed_config.Unpack(hcm if f.typed_config.Is(hcm.DESCRIPTOR) else tcp)
    assert [a.name for a in hcm.access_log] == ["envoy.access_loggers.http_grpc"] * 2
    assert [a.name for a in tcp.access_log] == ["envoy.access_loggers.tcp_grpc"] * 2
    http_config = als_pb2.HttpGrpcAccessLogConfig()
    hcm.access_log[1].typed_config.Unpack(http_config)
    common = http_config.common_config
    assert common.grpc_service.envoy_grpc.cluster_name == "telemetry/sink-1"
    assert common.log_name == "audit"
    assert "authorization" in http_config.additional_request_headers_to_log


def test_no_sinks_no_access_logs() -> None:
    rs = translate(_gateway())
    assert not any(name.startswith("telemetry/") for name in rs.clusters)
    assert "access_log" not in json.dumps(static_bootstrap(rs))
    assert "accessLog" not in json.dumps(static_bootstrap(rs))


def test_retranslation_reuses_the_sink_cluster() -> None:
    translator = Translator()
    first = translator.translate(_gateway(SINK))
    second = translator.translate(_gateway(SINK))
    assert second.clusters["telemetry/sink-0"] is first.clusters["telemetry/sink-0"]
    assert second.listeners == first.listeners


@pytest.mark.envoy
def test_gateway_with_sink_validates_in_envoy(envoy_bin: str, tmp_path: Path) -> None:
    bootstrap = static_bootstrap(translate(_gateway(SINK)), node_cluster="default/gw")
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps(bootstrap))
    problem = envoy_validate(envoy_bin, config)
    assert problem is None, problem
