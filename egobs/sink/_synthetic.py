"""Synthetic access-log messages, for tests and for measuring the sink without Envoy."""

from __future__ import annotations

import time

from envoy.config.core.v3 import base_pb2
from envoy.service.accesslog.v3 import als_pb2


def http_message(
    count: int,
    *,
    gateway: str = "default/gw",
    node: str = "synthetic",
    log_name: str = "egobs",
    route: str = "httproute/default/synthetic/rule/0/match/0",
    cluster: str = "service/default/synthetic/8080",
    code: int = 200,
    identifier: bool = True,
    headers: dict[str, str] | None = None,
    start: int = 0,
) -> als_pb2.StreamAccessLogsMessage:
    """A message with ``count`` HTTP entries like Envoy's (paths ``/synthetic/<start+i>``)."""
    msg = als_pb2.StreamAccessLogsMessage()
    if identifier:
        msg.identifier.node.id = node
        msg.identifier.node.cluster = gateway
        msg.identifier.log_name = log_name
    now = time.time_ns()
    for i in range(count):
        e = msg.http_logs.log_entry.add()
        c = e.common_properties
        c.start_time.FromNanoseconds(now)
        c.time_to_last_downstream_tx_byte.FromNanoseconds(1_234_567 + i)
        c.route_name = route
        c.upstream_cluster = cluster
        c.downstream_remote_address.socket_address.address = "127.0.0.1"
        c.downstream_remote_address.socket_address.port_value = 40000 + i % 20000
        e.protocol_version = e.HTTP11
        r = e.request
        r.request_method = base_pb2.GET
        r.authority = "example.com"
        r.path = f"/synthetic/{start + i}"
        r.request_id = f"req-{start + i}"
        r.request_headers_bytes = 120
        if headers:
            r.request_headers.update(headers)
        e.response.response_code.value = code
        e.response.response_headers_bytes = 80
        e.response.response_body_bytes = 2
    return msg
