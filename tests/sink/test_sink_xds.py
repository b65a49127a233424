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
from egobs.xds.dump import static_bootstrap
from egobs.xds.translate import Translator, translate

SINK = ir.AccessLogSink("main", "127.0.0.1", 18090)


def _gateway(*sinks: ir.AccessLogSink) -> ir.Gateway:
    return gateway_ir(echo_port=8080, http_port=10080, tcp_port=10090, sinks=sinks)


def test_listeners_log_to_every_sink() -> None:
    other = ir.AccessLogSink("other", "sink.example", 9000, log_name="audit")
    rs = translate(_gateway(SINK, other))
    assert rs.clusters["egobs/als/main"].type == rs.clusters["egobs/als/main"].STATIC
    assert rs.clusters["egobs/als/other"].type == rs.clusters["egobs/als/other"].STRICT_DNS
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
    assert common.grpc_service.envoy_grpc.cluster_name == "egobs/als/other"
    assert common.log_name == "audit"
    assert "authorization" in http_config.additional_request_headers_to_log


def test_no_sinks_no_access_logs() -> None:
    rs = translate(_gateway())
    assert not any(name.startswith("egobs/als/") for name in rs.clusters)
    assert "access_log" not in json.dumps(static_bootstrap(rs))
    assert "accessLog" not in json.dumps(static_bootstrap(rs))


def test_retranslation_reuses_the_sink_cluster() -> None:
    translator = Translator()
    first = translator.translate(_gateway(SINK))
    second = translator.translate(_gateway(SINK))
    assert second.clusters["egobs/als/main"] is first.clusters["egobs/als/main"]
    assert second.listeners == first.listeners


@pytest.mark.envoy
def test_gateway_with_sink_validates_in_envoy(envoy_bin: str, tmp_path: Path) -> None:
    bootstrap = static_bootstrap(translate(_gateway(SINK)), node_cluster="default/gw")
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps(bootstrap))
    problem = envoy_validate(envoy_bin, config)
    assert problem is None, problem
