"""OTLP logs: forwarding records to a collector, and reading records from OTLP exports.

The forwarder holds at most ``max_queue`` records. Batches go out every
``flush_interval_s`` or as soon as ``batch_size`` records wait; a failed export is retried
with exponential backoff while the error is transient, then dropped. Every lost record is
counted by reason (``forward_queue_full``, ``forward_failed``, ``forward_rejected``,
``forward_shutdown``), so a collector that is down costs memory up to the bound and
counts, never an unbounded backlog or a stalled sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from datetime import datetime
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from ._tasks import finish
from .config import OtlpConfig
from .metrics import SinkMetrics
from .records import Origin

__all__ = ["OtlpForwarder", "otlp_records"]

log = logging.getLogger(__name__)

_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)
_SCOPE = "egobs.sink"


class OtlpForwarder:
    """Batches records to an OTLP/gRPC logs collector. Use from one event loop."""

    def __init__(self, config: OtlpConfig, metrics: SinkMetrics) -> None:
        if not config.endpoint:
            raise ValueError("OtlpConfig.endpoint is required to forward")
        self._config = config
        self._metrics = metrics
        self._queue: deque[dict[str, Any]] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._channel: grpc.aio.Channel | None = None
        metrics.forward_queue_depth.set_function(lambda: len(self._queue))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def submit(self, records: list[dict[str, Any]]) -> None:
        """Queue records for export; what does not fit is dropped and counted."""
        room = self._config.max_queue - len(self._queue)
        if room < len(records):
            self._metrics.dropped.labels("forward_queue_full").inc(len(records) - max(room, 0))
            records = records[: max(room, 0)]
        self._queue.extend(records)
        if len(self._queue) >= self._config.batch_size:
            self._wakeup.set()

    async def start(self) -> None:
        assert self._config.endpoint
        self._channel = grpc.aio.insecure_channel(self._config.endpoint)
        self._task = asyncio.create_task(self._run(), name="egobs-sink-otlp")

    async def stop(self, *, timeout: float) -> None:
        """Export what is queued within ``timeout`` seconds; drop (counted) what is left."""
        self._closing = True
        self._wakeup.set()
        await finish(self._task, timeout)
        if self._queue:
            self._metrics.dropped.labels("forward_shutdown").inc(len(self._queue))
            self._queue.clear()
        if self._channel is not None:
            await self._channel.close()

    async def _run(self) -> None:
        assert self._channel is not None
        stub = logs_service_pb2_grpc.LogsServiceStub(self._channel)
        while True:
            if len(self._queue) < self._config.batch_size and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._config.flush_interval_s)
                self._wakeup.clear()
            if not self._queue:
                if self._closing:
                    return
                continue
            n = min(len(self._queue), self._config.batch_size)
            batch = [self._queue.popleft() for _ in range(n)]
            await self._export(stub, batch)

    async def _export(self, stub: logs_service_pb2_grpc.LogsServiceStub, batch: list[dict]) -> None:
        request = _request(batch)
        backoff = self._config.initial_backoff_s
        for attempt in range(1, self._config.max_attempts + 1):
            try:
                response = await stub.Export(request, timeout=self._config.timeout_s)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code not in _RETRYABLE:
                    log.warning("OTLP collector rejected %d records: %s", len(batch), code.name)
                    self._metrics.dropped.labels("forward_rejected").inc(len(batch))
                    return
                if attempt == self._config.max_attempts or self._closing:
                    log.warning("OTLP export failed after %d attempts: %s", attempt, code.name)
                    self._metrics.dropped.labels("forward_failed").inc(len(batch))
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._config.max_backoff_s)
                continue
            rejected = response.partial_success.rejected_log_records
            if rejected:
                self._metrics.dropped.labels("forward_rejected").inc(rejected)
            self._metrics.forwarded.inc(len(batch) - rejected)
            return


def _value(v: Any) -> common_pb2.AnyValue:
    if isinstance(v, bool):
        return common_pb2.AnyValue(bool_value=v)
    if isinstance(v, int):
        return common_pb2.AnyValue(int_value=v)
    if isinstance(v, float):
        return common_pb2.AnyValue(double_value=v)
    if isinstance(v, dict):
        kvs = [common_pb2.KeyValue(key=k, value=_value(x)) for k, x in v.items()]
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=kvs))
    if isinstance(v, list):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=map(_value, v)))
    return common_pb2.AnyValue(string_value=str(v))


def _severity(code: int) -> tuple[int, str]:
    if code >= 500 or code == 0:
        return logs_pb2.SEVERITY_NUMBER_ERROR, "ERROR"
    if code >= 400:
        return logs_pb2.SEVERITY_NUMBER_WARN, "WARN"
    return logs_pb2.SEVERITY_NUMBER_INFO, "INFO"


def _request(records: list[dict[str, Any]]) -> logs_service_pb2.ExportLogsServiceRequest:
    request = logs_service_pb2.ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.add(key="service.name", value=_value("egobs-sink"))
    scope = rl.scope_logs.add()
    scope.scope.name = _SCOPE
    now = time.time_ns()
    for r in records:
        lr = scope.log_records.add()
        lr.observed_time_unix_nano = now
        ts = r.get("time")
        if isinstance(ts, str):
            with contextlib.suppress(ValueError):
                lr.time_unix_nano = int(datetime.fromisoformat(ts).timestamp() * 1e9)
        if r.get("kind") == "http":
            code = int(r.get("response_code") or 0)
            lr.severity_number, lr.severity_text = _severity(code)
            lr.body.string_value = f"{r.get('method')} {r.get('authority')}{r.get('path')} {code}"
        else:
            lr.severity_number, lr.severity_text = logs_pb2.SEVERITY_NUMBER_INFO, "INFO"
            lr.body.string_value = f"{r.get('kind', 'log')} {r.get('upstream_cluster', '')}"
        for k, v in r.items():
            if k != "time" and v not in ("", None):
                lr.attributes.add(key=k, value=_value(v))
    return request


# ----------------------------------------------------------------------------- ingest


def _plain(v: common_pb2.AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in v.kvlist_value.values}
    if kind == "array_value":
        return [_plain(x) for x in v.array_value.values]
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


# Attribute names Envoy users commonly give the OpenTelemetry access logger, mapped to the
# record fields the metrics read.
_ALIASES = {
    "route_name": "route",
    "upstream.cluster": "upstream_cluster",
    "http.response.status_code": "response_code",
    "status_code": "response_code",
    "duration": "duration_ms",
    "http.request.method": "method",
    "url.path": "path",
}


def otlp_records(request: logs_service_pb2.ExportLogsServiceRequest) -> list[tuple[Origin, dict]]:
    """Records of an OTLP logs export, with the sender from its resource attributes.

    Envoy's OpenTelemetry access logger sets ``cluster_name`` (the node cluster, which is
    the gateway), ``node_name`` and ``log_name`` on the resource.
    """
    out = []
    for rl in request.resource_logs:
        res = {kv.key: _plain(kv.value) for kv in rl.resource.attributes}
        origin = Origin(
            str(res.get("cluster_name", "")),
            str(res.get("node_name", "")),
            str(res.get("log_name", "")),
        )
        for sl in rl.scope_logs:
            for lr in sl.log_records:
                record: dict[str, Any] = {"kind": "otlp"}
                if lr.time_unix_nano:
                    seconds, nanos = divmod(lr.time_unix_nano, 1_000_000_000)
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
                    record["time"] = f"{stamp}.{nanos // 1000:06d}Z"
                record.update(gateway=origin.gateway, node=origin.node, log_name=origin.log_name)
                body = _plain(lr.body)
                if body is not None:
                    record["body"] = body
                for kv in lr.attributes:
                    record[_ALIASES.get(kv.key, kv.key)] = _plain(kv.value)
                out.append((origin, record))
    return out
