"""Helpers for the telemetry tests: the e2e `egobs serve` harness and an OTLP trace receiver."""

from __future__ import annotations

import asyncio
import sys
import threading
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))

from e2e_helpers import GATEWAY_CLASS, Serve, request
from testkit import pid_alive, wait_until
from testkit import unused_port as free_port

__all__ = [
    "GATEWAY_CLASS",
    "OtlpReceiver",
    "Serve",
    "Span",
    "free_port",
    "metric_samples",
    "pid_alive",
    "request",
    "wait_until",
]


class Span:
    """The fields of a received span the tests look at."""

    def __init__(self, raw: Any) -> None:
        self.name: str = raw.name
        self.trace_id: str = raw.trace_id.hex()
        self.span_id: str = raw.span_id.hex()
        self.parent_id: str = raw.parent_span_id.hex()
        self.status_code: int = raw.status.code  # 0 unset, 1 ok, 2 error
        self.status_message: str = raw.status.message
        self.events = [e.name for e in raw.events]
        self.links = [link.span_id.hex() for link in raw.links]
        self.attributes: dict[str, Any] = {}
        for kv in raw.attributes:
            v = kv.value
            self.attributes[kv.key] = (
                getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None
            )
        self.start_ns: int = raw.start_time_unix_nano
        self.end_ns: int = raw.end_time_unix_nano

    def __repr__(self) -> str:
        return f"Span({self.name!r}, trace={self.trace_id[:8]}, status={self.status_code})"


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: list[Span], lock: threading.Lock) -> None:
        self._sink = sink
        self._lock = lock

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        spans = [
            Span(s) for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans
        ]
        with self._lock:
            self._sink.extend(spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """An OTLP/gRPC trace receiver on 127.0.0.1, served by grpc.aio in its own thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: grpc.aio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> OtlpReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceService(self._spans, self._lock), self._server
        )
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(None), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def trace(self, trace_id: str) -> list[Span]:
        return [s for s in self.spans if s.trace_id == trace_id]


def ancestry(span: Span, spans: Iterable[Span]) -> list[Span]:
    """``span`` and its parents up to the root, as far as they were received."""
    by_id = {s.span_id: s for s in spans}
    chain = [span]
    while chain[-1].parent_id and chain[-1].parent_id in by_id:
        chain.append(by_id[chain[-1].parent_id])
    return chain


def metric_samples(admin: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name → [(labels, value)] from the admin server's /metrics."""
    with urllib.request.urlopen(admin + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def total(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(
        v
        for lab, v in samples.get(name, [])
        if all(lab.get(k) == want for k, want in labels.items())
    )
