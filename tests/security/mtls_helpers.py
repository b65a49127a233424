"""Helpers for the mTLS tests: certificates from `egobs certgen`, and raw gRPC clients (ADS
and access logs) that present a chosen Gateway's client certificate, or none.

The clients report what a proxy would see: every response received, and how the call
ended (status code and details), so tests assert on the RPC itself, not on logs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from egobs.certs import Layout, certgen
from egobs.xds.resources import CLUSTER_TYPE

GW = "default/eg"
OTHER = "default/other"
READ_S = 5.0


def make_certs(root: Path, *gateways: str) -> Layout:
    """A certgen directory under ``root`` with client certificates for ``gateways``."""
    certgen(root, gateways=gateways)
    return Layout(root)


def client_credentials(layout: Layout, gateway: str | None) -> grpc.ChannelCredentials:
    """Trust the layout's CA; present ``gateway``'s client certificate (None: none)."""
    ca = layout.ca.cert.read_bytes()
    if gateway is None:
        return grpc.ssl_channel_credentials(ca)
    pair = layout.gateway(gateway)
    return grpc.ssl_channel_credentials(ca, pair.key.read_bytes(), pair.cert.read_bytes())


@contextlib.asynccontextmanager
async def channel(
    port: int, credentials: grpc.ChannelCredentials | None
) -> AsyncIterator[grpc.aio.Channel]:
    target = f"127.0.0.1:{port}"
    # Our own connection per channel: gRPC Python otherwise shares one among channels to
    # the same target, and one client's certificate would serve the next.
    options = [("grpc.use_local_subchannel_pool", 1)]
    ch = (
        grpc.aio.insecure_channel(target, options=options)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials, options=options)
    )
    try:
        yield ch
    finally:
        await ch.close()


@dataclass
class Outcome:
    """What a client saw: the responses, and how the call ended (None: still open)."""

    responses: list[Any] = field(default_factory=list)
    code: grpc.StatusCode | None = None
    details: str = ""


def _cds_request(*, delta: bool, cluster: str, node_id: str, nonce: str = "") -> Any:
    if delta:
        req: Any = discovery_pb2.DeltaDiscoveryRequest(
            type_url=CLUSTER_TYPE, resource_names_subscribe=["*"], response_nonce=nonce
        )
    else:
        req = discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE, response_nonce=nonce)
    req.node.id = node_id
    req.node.cluster = cluster
    return req


async def ads_stream(
    port: int,
    credentials: grpc.ChannelCredentials | None,
    *,
    cluster: str,
    delta: bool,
    switch_to: str | None = None,
    node_id: str = "raw-client",
) -> Outcome:
    """Open an ADS stream as a proxy of Gateway ``cluster`` and ask for its clusters.

    Returns at the first response or when the stream ends. With ``switch_to``, the first
    response is ACKed by a request whose node names Gateway ``switch_to`` instead, and the
    stream is read until it ends.
    """
    out = Outcome()
    async with channel(port, credentials) as ch:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch)
        call: Any = stub.DeltaAggregatedResources() if delta else stub.StreamAggregatedResources()
        try:
            await call.write(_cds_request(delta=delta, cluster=cluster, node_id=node_id))
            first = await asyncio.wait_for(call.read(), READ_S)
            if first is grpc.aio.EOF:
                out.code = grpc.StatusCode.OK
                return out
            out.responses.append(first)
            if switch_to is None:
                return out
            ack = _cds_request(delta=delta, cluster=switch_to, node_id=node_id, nonce=first.nonce)
            if not delta:
                ack.version_info = first.version_info
            await call.write(ack)
            while (resp := await asyncio.wait_for(call.read(), READ_S)) is not grpc.aio.EOF:
                out.responses.append(resp)
            out.code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            out.code, out.details = exc.code(), exc.details() or ""
        except TimeoutError:
            pass  # still open: code stays None
        finally:
            call.cancel()
    return out


# --------------------------------------------------------------------------- access logs

ALS_METHOD = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"
OTLP_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def als_messages(cluster: str, paths: Sequence[str]) -> list[als_pb2.StreamAccessLogsMessage]:
    """What Envoy's HTTP gRPC access logger sends: an identifier naming the node, then
    entries (one per path)."""
    msg = als_pb2.StreamAccessLogsMessage()
    msg.identifier.node.id = "raw-client"
    msg.identifier.node.cluster = cluster
    msg.identifier.log_name = "egobs"
    for path in paths:
        entry: accesslog_pb2.HTTPAccessLogEntry = msg.http_logs.log_entry.add()
        entry.request.path = path
        entry.request.request_method = 1  # GET
        entry.response.response_code.value = 200
    return [msg]


async def send_access_logs(
    port: int, credentials: grpc.ChannelCredentials | None, cluster: str, paths: Sequence[str]
) -> Outcome:
    """Stream access-log entries as a proxy of ``cluster`` would; how the call ended."""
    out = Outcome()
    async with channel(port, credentials) as ch:
        call = ch.stream_unary(
            ALS_METHOD,
            request_serializer=als_pb2.StreamAccessLogsMessage.SerializeToString,
            response_deserializer=als_pb2.StreamAccessLogsResponse.FromString,
        )
        try:
            out.responses.append(await call(iter(als_messages(cluster, paths)), timeout=READ_S))
            out.code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            out.code, out.details = exc.code(), exc.details() or ""
    return out


async def export_otlp_logs(
    port: int, credentials: grpc.ChannelCredentials | None, cluster: str, body: str
) -> Outcome:
    """One OTLP logs Export whose resource says it comes from Gateway ``cluster``."""
    request = logs_service_pb2.ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    attr = rl.resource.attributes.add()
    attr.key, attr.value.string_value = "cluster_name", cluster
    rl.scope_logs.add().log_records.add().body.string_value = body
    out = Outcome()
    async with channel(port, credentials) as ch:
        call = ch.unary_unary(
            OTLP_METHOD,
            request_serializer=logs_service_pb2.ExportLogsServiceRequest.SerializeToString,
            response_deserializer=logs_service_pb2.ExportLogsServiceResponse.FromString,
        )
        try:
            out.responses.append(await call(request, timeout=READ_S))
            out.code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            out.code, out.details = exc.code(), exc.details() or ""
    return out
