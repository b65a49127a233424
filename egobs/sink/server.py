"""The ``egobs sink`` server: gRPC access-log and OTLP logs services, ``/metrics`` and health.

One grpc.aio server on one port serves
``envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs`` (Envoy's HTTP and TCP
gRPC access loggers) and ``opentelemetry.proto.collector.logs.v1.LogsService/Export``
(Envoy's OpenTelemetry access logger). Requests are decoded by the sink itself rather than
by gRPC, so a malformed or oversized message is counted and skipped instead of ending the
stream with an error nobody sees. A small aiohttp server on the metrics port serves
``/metrics``, ``/healthz`` and ``/readyz``.

With ``tls`` in its config the gRPC port speaks only mTLS: a client must present a
certificate that chains to the configured CA (or the handshake fails), and a stream's
entries are taken only for the Gateway that certificate names (the ALS identifier's
``node.cluster``, the OTLP resource's ``cluster_name``); any other is refused with
``PERMISSION_DENIED`` before its entries are queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from envoy.service.accesslog.v3 import als_pb2
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from egobs.certs import ServerTLS, peer_gateways
from egobs.listen import ListenError, check_listen
from egobs.telemetry.logging import http_logger

from .config import SinkConfig
from .jsonl import JsonlWriter
from .metrics import SinkMetrics
from .otlp import OtlpForwarder, otlp_records
from .pipeline import Pipeline
from .records import HeaderPolicy, Origin

__all__ = ["ALS_METHOD", "OTLP_LOGS_METHOD", "Sink", "run_sink"]

log = logging.getLogger(__name__)

ALS_SERVICE = "envoy.service.accesslog.v3.AccessLogService"
OTLP_LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
ALS_METHOD = f"/{ALS_SERVICE}/StreamAccessLogs"
OTLP_LOGS_METHOD = f"/{OTLP_LOGS_SERVICE}/Export"

# gRPC itself refuses messages beyond this multiple of max_message_bytes (RESOURCE_EXHAUSTED,
# not counted by the sink); between the two the sink counts and skips them.
_GRPC_LIMIT_FACTOR = 4
# Envoy keeps one stream per worker per logger open for its lifetime; on shutdown they get
# this long to deliver what is in flight before being cancelled.
_STREAM_GRACE_S = 1.0
# What the server reads ahead per stream while its handler is busy. gRPC's default BDP probe
# grows the HTTP/2 windows to what the loopback link can carry, and it keeps reading into
# them however far behind the handlers are: with 16 streams of the benchmark's messages the
# sink peaked at 150-350 MiB, with 32 streams of 1 MiB messages at 2.4 GiB, all of it bytes
# buffered in gRPC core. A fixed window per stream (a message larger than the window is
# still let through, one at a time) keeps that to streams x (window + one message), and
# max_streams bounds the streams. 2 MiB: with 256 KiB Envoy's access-log streams (one per
# worker) stalled on flow control at ~40k entries/s and Envoy dropped 3-11 % of entries;
# since the worker drains the streams into its own bounded queue ahead of processing, 2 MiB
# (~8 of Envoy's 256 KiB batches) loses nothing at 53-57k/s (bench/sink.py), and holds
# 20-30 MiB less than 4 MiB did under the flood test's 8 streams of 1 MiB messages.
_GRPC_SERVER_OPTIONS = [
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 2 * 1024 * 1024),
    # gRPC sets SO_REUSEPORT by default: a second sink on the port would start fine and the
    # kernel would split the Envoys' streams between the two.
    ("grpc.so_reuseport", 0),
]


@dataclass(frozen=True, slots=True)
class _Rejected:
    reason: str


class _Decoder:
    """Decodes a request to ``(message, wire size)``: the queue charges a batch by its size."""

    def __init__(self, message_type: Any, max_bytes: int) -> None:
        self._parse = message_type.FromString
        self._max = max_bytes

    def __call__(self, data: bytes) -> tuple[Any, int] | _Rejected:
        size = len(data)
        if size > self._max:
            return _Rejected("oversized")
        try:
            return self._parse(data), size
        except DecodeError:
            return _Rejected("malformed")


class Sink:
    """A running sink. ``await start()``, then ``await stop()`` flushes and shuts down.

    ``grpc_port`` and ``metrics_port`` are the bound ports (useful with port 0).
    """

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self.metrics = SinkMetrics(label_cap=config.metrics.label_cap)
        jc = config.jsonl
        self._jsonl = (
            JsonlWriter(jc.path, max_bytes=jc.max_bytes, max_age_s=jc.max_age_s, backups=jc.backups)
            if jc.path
            else None
        )
        self._forwarder = OtlpForwarder(config.otlp, self.metrics) if config.otlp.endpoint else None
        self.pipeline = Pipeline(
            metrics=self.metrics,
            max_queue=config.max_queue,
            max_queue_bytes=config.max_queue_bytes,
            full_wait_s=config.queue_full_wait_s,
            red_metrics=config.metrics.enabled,
            jsonl=self._jsonl,
            forwarder=self._forwarder,
            headers=HeaderPolicy(allowlist=jc.header_allowlist, redact=jc.redact_headers),
        )
        self._server: grpc.aio.Server | None = None
        self._http: web.AppRunner | None = None
        self._ready = False
        self._open = 0  # streams and calls being served, against config.max_streams
        self.grpc_port = 0
        self.metrics_port = 0
        self._rejected = {
            r: self.metrics.rejected.labels(r) for r in ("malformed", "oversized", "empty")
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind and start; :class:`ListenError` when a port cannot be bound,
        :class:`~egobs.certs.TLSFileError` when a TLS file cannot be used."""
        cfg = self.config
        limit = cfg.max_message_bytes * _GRPC_LIMIT_FACTOR
        tls = (
            ServerTLS.load(cfg.tls.cert_file, cfg.tls.key_file, cfg.tls.ca_file, what="tls")
            if cfg.tls is not None
            else None
        )
        check_listen("sink", cfg.address, cfg.port)
        # Both ports are bound before anything starts, the gRPC one last: a gRPC server that
        # never started keeps its port until the process exits, so nothing may fail after
        # its bind. One whose bind failed is stopped: left to the garbage collector, such
        # servers crashed the interpreter (SIGSEGV in gc, seen in tests/security).
        await self._start_http()
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                # HTTP/2 streams one connection may hold open (gRPC's default: no limit).
                # max_streams bounds them across all connections; one more lets a stream
                # beyond it reach the sink to be refused and counted rather than wait unseen
                # in the client (gRPC Python shares one connection among a process's channels;
                # Envoy opens one per worker, with a stream per access logger).
                ("grpc.max_concurrent_streams", cfg.max_streams + 1),
                *_GRPC_SERVER_OPTIONS,
            ]
        )
        self._server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    ALS_SERVICE,
                    {
                        "StreamAccessLogs": grpc.stream_unary_rpc_method_handler(
                            self._stream_access_logs,
                            request_deserializer=_Decoder(
                                als_pb2.StreamAccessLogsMessage, cfg.max_message_bytes
                            ),
                            response_serializer=als_pb2.StreamAccessLogsResponse.SerializeToString,
                        )
                    },
                ),
                grpc.method_handlers_generic_handler(
                    OTLP_LOGS_SERVICE,
                    {
                        "Export": grpc.unary_unary_rpc_method_handler(
                            self._export_logs,
                            request_deserializer=_Decoder(
                                logs_service_pb2.ExportLogsServiceRequest, cfg.max_message_bytes
                            ),
                            response_serializer=(
                                logs_service_pb2.ExportLogsServiceResponse.SerializeToString
                            ),
                        )
                    },
                ),
            )
        )
        address = f"{_host(cfg.address)}:{cfg.port}"
        try:
            if tls is None:
                self.grpc_port = self._server.add_insecure_port(address)
            else:
                self.grpc_port = self._server.add_secure_port(address, tls.credentials())
        except RuntimeError:
            self.grpc_port = 0
        if self.grpc_port == 0:
            await self._server.stop(None)
            assert self._http is not None
            await self._http.cleanup()
            self._http = None
            # check_listen passed, so the port was taken since (the other causes fail there).
            raise ListenError("sink", cfg.address, cfg.port, code=errno.EADDRINUSE)
        self.pipeline.start()
        if self._forwarder is not None:
            await self._forwarder.start()
        await self._server.start()
        self._ready = True
        log.info(
            "egobs sink: gRPC on %s:%d%s, metrics on %s:%d",
            cfg.address,
            self.grpc_port,
            " (mTLS)" if tls is not None else "",
            cfg.metrics.address,
            self.metrics_port,
        )

    async def _start_http(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics_handler)
        app.router.add_get("/healthz", self._health_handler)
        app.router.add_get("/readyz", self._ready_handler)
        self._http = web.AppRunner(app, access_log=None, logger=http_logger("egobs.sink.http"))
        await self._http.setup()
        address, port = self.config.metrics.address, self.config.metrics.port
        site = web.TCPSite(self._http, address, port)
        try:
            await site.start()
        except OSError as exc:
            await self._http.cleanup()
            self._http = None
            raise ListenError.from_os_error("sink metrics", address, port, exc) from None
        self.metrics_port = int(self._http.addresses[0][1])

    async def stop(self) -> None:
        """Stop taking logs, flush the queue, the JSON lines and the forwarder, then exit."""
        self._ready = False
        grace = self.config.shutdown_grace_s
        if self._server is not None:
            await self._server.stop(min(_STREAM_GRACE_S, grace))
        await self.pipeline.drain(timeout=grace)
        if self._forwarder is not None:
            await self._forwarder.stop(timeout=grace)
        if self._http is not None:
            await self._http.cleanup()

    # ------------------------------------------------------------------ gRPC

    async def _stream_access_logs(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> als_pb2.StreamAccessLogsResponse:
        origin = Origin("", "", "")
        streams = await self._admit("als", context)
        pipeline = self.pipeline
        # mTLS: the Gateways the client certificate names; entries only for those.
        named = peer_gateways(context.auth_context()) if self.config.tls is not None else None
        try:
            async for item in requests:
                if isinstance(item, _Rejected):
                    self._rejected[item.reason].inc()
                    continue
                msg, size = item
                if msg.HasField("identifier"):
                    ident = msg.identifier
                    origin = Origin(ident.node.cluster, ident.node.id, ident.log_name)
                if named is not None and origin.gateway not in named:
                    await _refuse(context, origin, named)
                which = msg.WhichOneof("log_entries")
                if which == "http_logs":
                    await pipeline.submit_http(origin, msg.http_logs.log_entry, size)
                elif which == "tcp_logs":
                    await pipeline.submit_tcp(origin, msg.tcp_logs.log_entry, size)
                elif not msg.HasField("identifier"):
                    self._rejected["empty"].inc()
        finally:
            streams.dec()
            self._open -= 1
        return als_pb2.StreamAccessLogsResponse()

    async def _admit(self, service: str, context: grpc.aio.ServicerContext) -> Any:
        """Count a new stream in and return its ``active_streams`` gauge (the caller
        decrements it and ``_open`` when done), or refuse the stream when max_streams are
        open: the bound on what gRPC buffers for streams, whatever the clients send."""
        if self._open >= self.config.max_streams:
            self.metrics.streams_refused.labels(service).inc()
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.config.max_streams} streams already open (max_streams)",
            )
        self._open += 1
        gauge = self.metrics.active_streams.labels(service)
        gauge.inc()
        return gauge

    async def _export_logs(
        self, item: Any, context: grpc.aio.ServicerContext
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        if isinstance(item, _Rejected):
            self._rejected[item.reason].inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{item.reason} request")
        request, size = item
        streams = await self._admit("otlp", context)
        named = peer_gateways(context.auth_context()) if self.config.tls is not None else None
        try:
            by_origin: dict[Origin, list[dict[str, Any]]] = {}
            for origin, record in otlp_records(request):
                by_origin.setdefault(origin, []).append(record)
            if named is not None:
                for origin in by_origin:
                    if origin.gateway not in named:
                        await _refuse(context, origin, named)
            count = sum(map(len, by_origin.values())) or 1
            for origin, records in by_origin.items():
                # The records are copies: each origin is charged its share of the request.
                await self.pipeline.submit_records(origin, records, size * len(records) // count)
        finally:
            streams.dec()
            self._open -= 1
        return logs_service_pb2.ExportLogsServiceResponse()

    # ------------------------------------------------------------------ HTTP

    async def _metrics_handler(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health_handler(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _ready_handler(self, request: web.Request) -> web.Response:
        if self._ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")


async def _refuse(context: grpc.aio.ServicerContext, origin: Origin, named: frozenset[str]) -> None:
    certified = ", ".join(sorted(named)) or "no Gateway"
    asked = f"Gateway {origin.gateway}" if origin.gateway else "no Gateway (no node.cluster)"
    message = f"entries for {asked}, but the client certificate names {certified}"
    log.warning("sink stream from %s refused: %s", context.peer(), message)
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


async def run_sink(config: SinkConfig, *, started: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation), then shut down gracefully."""
    sink = Sink(config)
    await sink.start()  # TLSFileError, ListenError: before anything is started
    if started is not None:
        started.set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("egobs sink: shutting down")
        await sink.stop()
