"""The bounded queue between the gRPC streams and the outputs, and the worker that drains it.

Streams only enqueue the received batches (the decoded protobuf messages, not copies), so a
stream handler never waits for a disk or a collector. The queue is bounded in entries: a
batch that does not fit waits at most ``full_wait_s`` for room (gRPC flow control then
slows the sender, which absorbs bursts), then is dropped whole and counted
(``queue_full``) rather than holding Envoy's stream indefinitely. The worker runs on the
same event loop, in slices, so reading streams and serving ``/metrics`` go on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from .jsonl import JsonlWriter, encode_record
from .metrics import SinkMetrics
from .otlp import OtlpForwarder
from .records import HeaderPolicy, HttpLines, Origin, http_records, tcp_records

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)

_HTTP, _TCP, _RECORDS = 0, 1, 2
# Entries processed before the worker yields to the event loop.
_SLICE = 512


class Pipeline:
    """Bounded queue + worker feeding the RED metrics, the JSON lines and the forwarder."""

    def __init__(
        self,
        *,
        metrics: SinkMetrics,
        max_queue: int,
        full_wait_s: float = 0.25,
        red_metrics: bool = True,
        jsonl: JsonlWriter | None = None,
        forwarder: OtlpForwarder | None = None,
        headers: HeaderPolicy | None = None,
    ) -> None:
        self._metrics = metrics
        self._max_queue = max_queue
        self._full_wait_s = full_wait_s
        self._space = asyncio.Event()
        self._red = red_metrics
        self._jsonl = jsonl
        self._forwarder = forwarder
        self._headers = headers or HeaderPolicy(allowlist=None, redact=())
        self._http_lines = HttpLines(self._headers)
        self._items: deque[tuple[int, Origin, Any, int]] = deque()
        self._depth = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._write_errors = 0
        self._received = {
            _HTTP: metrics.received.labels("als_http"),
            _TCP: metrics.received.labels("als_tcp"),
            _RECORDS: metrics.received.labels("otlp"),
        }
        self._queue_full = metrics.dropped.labels("queue_full")
        metrics.queue_depth.set_function(lambda: self._depth)

    @property
    def depth(self) -> int:
        """Entries queued and not yet processed."""
        return self._depth

    async def submit_http(self, origin: Origin, entries: Sequence[Any]) -> None:
        await self._put(_HTTP, origin, entries)

    async def submit_tcp(self, origin: Origin, entries: Sequence[Any]) -> None:
        await self._put(_TCP, origin, entries)

    async def submit_records(self, origin: Origin, records: list[dict[str, Any]]) -> None:
        await self._put(_RECORDS, origin, records)

    async def _put(self, kind: int, origin: Origin, payload: Sequence[Any]) -> None:
        n = len(payload)
        if not n:
            return
        self._received[kind].inc(n)
        if self._depth + n > self._max_queue and not self._closing:
            deadline = time.monotonic() + self._full_wait_s
            while self._depth + n > self._max_queue and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._space.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._space.wait(), remaining)
        if self._depth + n > self._max_queue or self._closing:
            self._queue_full.inc(n)
            return
        self._items.append((kind, origin, payload, n))
        self._depth += n
        if not self._wakeup.is_set():
            self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="egobs-sink-pipeline")

    async def drain(self, *, timeout: float) -> None:
        """Stop accepting, process what is queued within ``timeout`` s, count the rest."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._depth:
            self._metrics.dropped.labels("shutdown").inc(self._depth)
            self._items.clear()
            self._depth = 0
        if self._jsonl is not None:
            self._jsonl.close()

    async def _run(self) -> None:
        while True:
            if not self._items:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = []
            n = 0
            while self._items and n < _SLICE:
                item = self._items.popleft()
                batch.append(item)
                n += item[3]
            try:
                self._process(batch)
            except Exception:
                # A bug in one batch must not stop the sink; the entries are counted lost.
                log.exception("processing %d access-log entries failed", n)
                self._metrics.dropped.labels("process_error").inc(n)
            finally:
                self._depth -= n
                self._space.set()
            await asyncio.sleep(0)

    def _process(self, batch: list[tuple[int, Origin, Any, int]]) -> None:
        # Records (dicts) are only needed by the forwarder; without it, HTTP entries go
        # straight from the protobuf to JSON text (HttpLines, the hot path at Envoy's rate).
        # Either way the slice's lines keep the queue's order and go out in one write.
        jsonl = self._jsonl is not None
        want_records = self._forwarder is not None
        records: list[dict[str, Any]] = []
        chunks: list[str] = []
        lines = 0
        metrics = self._metrics
        for kind, origin, payload, _ in batch:
            new: list[dict[str, Any]] = []
            if kind == _HTTP:
                if self._red:
                    metrics.account_http(origin.gateway, payload)
                if want_records:
                    new = http_records(payload, origin, self._headers)
                elif jsonl:
                    text, n = self._http_lines.lines(payload, origin)
                    chunks.append(text)
                    lines += n
            elif kind == _TCP:
                if self._red:
                    metrics.account_tcp(origin.gateway, payload)
                if jsonl or want_records:
                    new = tcp_records(payload, origin)
            else:
                if self._red:
                    for r in payload:
                        if r.get("response_code") is not None:
                            metrics.account_record(r)
                new = payload
            if new:
                if jsonl:
                    chunks.append("".join([encode_record(r) + "\n" for r in new]))
                    lines += len(new)
                if want_records:
                    records.extend(new)
        if lines:
            self._write("".join(chunks), lines)
        if records:
            assert self._forwarder is not None
            self._forwarder.submit(records)

    def _write(self, text: str, count: int) -> None:
        assert self._jsonl is not None
        start = time.perf_counter()
        try:
            written = self._jsonl.write_lines(text, count)
        except (OSError, ValueError) as exc:
            self._write_errors += 1
            # Once per thousand failures: a full disk must not flood the log as well.
            if self._write_errors % 1000 == 1:
                log.error("writing JSON lines failed: %s", exc)
            self._metrics.dropped.labels("write_error").inc(count)
            return
        self._metrics.write_seconds.observe(time.perf_counter() - start)
        self._metrics.written.inc(written)
