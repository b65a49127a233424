"""Access-log entries as plain records: what a JSON line and an OTLP log record carry.

Built by hand from the protobuf fields (``json_format`` is an order of magnitude slower),
with the precise gRPC timings in milliseconds (microsecond resolution) rather than Envoy's
whole-millisecond ``%DURATION%``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from envoy.config.core.v3 import base_pb2

__all__ = ["REDACTED", "HeaderPolicy", "Origin", "http_records", "tcp_records"]

REDACTED = "[redacted]"

_PROTOCOLS = {0: "", 1: "HTTP/1.0", 2: "HTTP/1.1", 3: "HTTP/2", 4: "HTTP/3"}
_METHODS = {v.number: v.name for v in base_pb2.RequestMethod.DESCRIPTOR.values if v.number}


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sent a batch: the proxy's node cluster (``<ns>/<gateway>``), node id, log name."""

    gateway: str
    node: str
    log_name: str


class HeaderPolicy:
    """Which logged headers a record keeps, and which it keeps only as ``[redacted]``."""

    def __init__(self, *, allowlist: Iterable[str] | None, redact: Iterable[str]) -> None:
        self._allow = None if allowlist is None else frozenset(h.lower() for h in allowlist)
        self._redact = frozenset(h.lower() for h in redact)

    def apply(self, headers: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        allow, redact = self._allow, self._redact
        for name, value in headers.items():
            key = name.lower()
            if allow is not None and key not in allow:
                continue
            out[key] = REDACTED if key in redact else value
        return out


class _Clock:
    """ISO-8601 timestamps; the strftime part is cached per second, which is most entries."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def iso(self, seconds: int, nanos: int) -> str:
        if seconds != self._second:
            self._second = seconds
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        return f"{self._prefix}.{nanos // 1000:06d}Z"


_CLOCK = _Clock()


def _address(addr: Any) -> str:
    socket = addr.socket_address
    if socket.address:
        return f"{socket.address}:{socket.port_value}"
    return addr.pipe.path


def _common(c: Any, origin: Origin, kind: str) -> dict[str, Any]:
    start = c.start_time
    d = c.duration if c.HasField("duration") else c.time_to_last_downstream_tx_byte
    out: dict[str, Any] = {
        "time": _CLOCK.iso(start.seconds, start.nanos),
        "kind": kind,
        "gateway": origin.gateway,
        "node": origin.node,
        "log_name": origin.log_name,
        "route": c.route_name,
        "upstream_cluster": c.upstream_cluster,
        "upstream_host": _address(c.upstream_remote_address),
        "downstream_remote": _address(c.downstream_remote_address),
        "duration_ms": round((d.seconds + d.nanos * 1e-9) * 1000.0, 3),
    }
    flags = c.response_flags.ListFields()
    if flags:
        out["response_flags"] = [f.name for f, v in flags if v is True]
    if c.upstream_transport_failure_reason:
        out["upstream_failure"] = c.upstream_transport_failure_reason
    return out


def http_records(entries: Iterable[Any], origin: Origin, policy: HeaderPolicy) -> list[dict]:
    """Records of ``envoy.data.accesslog.v3.HTTPAccessLogEntry`` messages."""
    out = []
    for e in entries:
        record = _common(e.common_properties, origin, "http")
        req, resp = e.request, e.response
        record["protocol"] = _PROTOCOLS.get(e.protocol_version, "")
        record["method"] = _METHODS.get(req.request_method, "")
        record["authority"] = req.authority
        record["path"] = req.path
        record["response_code"] = resp.response_code.value
        record["response_code_details"] = resp.response_code_details
        record["bytes_received"] = req.request_headers_bytes + req.request_body_bytes
        record["bytes_sent"] = resp.response_headers_bytes + resp.response_body_bytes
        record["request_id"] = req.request_id
        record["user_agent"] = req.user_agent
        if req.request_headers:
            record["request_headers"] = policy.apply(req.request_headers)
        if resp.response_headers:
            record["response_headers"] = policy.apply(resp.response_headers)
        out.append(record)
    return out


def tcp_records(entries: Iterable[Any], origin: Origin) -> list[dict]:
    """Records of ``envoy.data.accesslog.v3.TCPAccessLogEntry`` messages (one per connection)."""
    out = []
    for e in entries:
        record = _common(e.common_properties, origin, "tcp")
        conn = e.connection_properties
        record["bytes_received"] = conn.received_bytes
        record["bytes_sent"] = conn.sent_bytes
        out.append(record)
    return out
