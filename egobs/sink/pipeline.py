"""The bounded queue between the gRPC streams and the outputs, and the worker that drains it.

Streams only enqueue the received batches (the decoded protobuf messages, not copies), so a
stream handler never waits for a disk or a collector. The queue is bounded twice: in
entries (``max_queue``) and in the memory its batches hold (``max_queue_bytes``). A queued
batch keeps its whole decoded message alive (upb arena, and the received bytes its strings
point into), several times its wire size for small entries, so an entry count alone bounds
nothing when entries are large; each batch is charged :func:`batch_cost`, an estimate
measured on upb. A batch that does not fit waits at most ``full_wait_s`` for room (gRPC flow
control then slows the sender, which absorbs bursts), then is dropped whole and counted
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

from ._tasks import finish
from .config import DEFAULT_MAX_QUEUE_BYTES
from .jsonl import JsonlWriter, encode_record
from .metrics import SinkMetrics
from .otlp import OtlpForwarder
from .records import HeaderPolicy, HttpLines, Origin, http_records, tcp_records

__all__ = ["Pipeline", "batch_cost"]

log = logging.getLogger(__name__)

_HTTP, _TCP, _RECORDS = 0, 1, 2
# Entries processed before the worker yields to the event loop; a larger batch is processed
# a slice at a time. Small next to one message (Envoy sends ~900 entries per 256 KiB batch):
# the streams, /metrics and shutdown are never held up for long, and under a backlog the
# streams read faster than the worker drains, so the backlog waits in this bounded queue
# rather than in gRPC's window and Envoy's buffer, where Envoy would drop it.
_SLICE = 128
# Resident bytes of a decoded entry beyond its wire bytes (upb message structure, arena
# blocks), measured: 100 plain HTTP entries, 17 KiB on the wire, hold 99 KiB decoded. Short
# strings are copied into the arena, long ones point into the received bytes (kept alive):
# 225 KiB of header-heavy entries hold 392 KiB, 1 MiB holds 1.15 MiB. OTLP records (dicts)
# cost about the same per record.
_ENTRY_COST = 1024


def batch_cost(wire_bytes: int, entries: int) -> int:
    """Estimated memory a queued batch holds: 1.5 x its wire size + 1 KiB per entry."""
    return wire_bytes + (wire_bytes >> 1) + _ENTRY_COST * entries


class Pipeline:
    """Bounded queue + worker feeding the RED metrics, the JSON lines and the forwarder."""

    def __init__(
        self,
        *,
        metrics: SinkMetrics,
        max_queue: int,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        full_wait_s: float = 0.25,
        red_metrics: bool = True,
        jsonl: JsonlWriter | None = None,
        forwarder: OtlpForwarder | None = None,
        headers: HeaderPolicy | None = None,
    ) -> None:
        self._metrics = metrics
        self._max_queue = max_queue
        self._max_bytes = max_queue_bytes
        self._full_wait_s = full_wait_s
        self._space = asyncio.Event()
        self._red = red_metrics
        self._jsonl = jsonl
        self._forwarder = forwarder
        self._headers = headers or HeaderPolicy(allowlist=None, redact=())
        self._http_lines = HttpLines(self._headers)
        self._items: deque[tuple[int, Origin, Any, int, int]] = deque()
        self._head_done = 0  # entries of the head batch already processed
        self._depth = 0
        self._bytes = 0
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
        metrics.queue_bytes.set_function(lambda: self._bytes)

    @property
    def depth(self) -> int:
        """Entries queued and not yet processed."""
        return self._depth

    @property
    def queued_bytes(self) -> int:
        """Estimated memory held by the queued batches (:func:`batch_cost`)."""
        return self._bytes

    # ``wire_bytes``: the size of the received message the entries were decoded from (their
    # share of it), which the batch keeps alive; 0 when they were built in process.
    async def submit_http(
        self, origin: Origin, entries: Sequence[Any], wire_bytes: int = 0
    ) -> None:
        await self._put(_HTTP, origin, entries, wire_bytes)

    async def submit_tcp(self, origin: Origin, entries: Sequence[Any], wire_bytes: int = 0) -> None:
        await self._put(_TCP, origin, entries, wire_bytes)

    async def submit_records(
        self, origin: Origin, records: list[dict[str, Any]], wire_bytes: int = 0
    ) -> None:
        await self._put(_RECORDS, origin, records, wire_bytes)

    def _full(self, n: int, cost: int) -> bool:
        return self._depth + n > self._max_queue or self._bytes + cost > self._max_bytes

    async def _put(self, kind: int, origin: Origin, payload: Sequence[Any], wire: int) -> None:
        n = len(payload)
        if not n:
            return
        self._received[kind].inc(n)
        cost = batch_cost(wire, n)
        if self._full(n, cost) and not self._closing:
            deadline = time.monotonic() + self._full_wait_s
            while self._full(n, cost) and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._space.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._space.wait(), remaining)
        if self._closing or self._full(n, cost):
            self._queue_full.inc(n)
            return
        self._items.append((kind, origin, payload, n, cost))
        self._depth += n
        self._bytes += cost
        if not self._wakeup.is_set():
            self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="egobs-sink-pipeline")

    async def drain(self, *, timeout: float) -> None:
        """Stop accepting, process what is queued within ``timeout`` s, count the rest."""
        self._closing = True
        self._wakeup.set()
        await finish(self._task, timeout)
        if self._depth:
            self._metrics.dropped.labels("shutdown").inc(self._depth)
            self._items.clear()
            self._head_done = 0
            self._depth = 0
            self._bytes = 0
        if self._jsonl is not None:
            self._jsonl.close()

    async def _run(self) -> None:
        while True:
            if not self._items:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._idle()
                continue
            batch, n, cost = self._slice()
            try:
                self._process(batch)
            except Exception:
                # A bug in one batch must not stop the sink; the entries are counted lost.
                log.exception("processing %d access-log entries failed", n)
                self._metrics.dropped.labels("process_error").inc(n)
            finally:
                self._depth -= n
                self._bytes -= cost
                self._space.set()
            await asyncio.sleep(0)

    def _slice(self) -> tuple[list[tuple[int, Origin, Any]], int, int]:
        """Up to ``_SLICE`` entries from the head of the queue, splitting a large batch.

        Returns the parts, their entry count, and the queue cost of the batches finished.
        """
        parts: list[tuple[int, Origin, Any]] = []
        n = cost = 0
        items = self._items
        while items and n < _SLICE:
            kind, origin, payload, count, item_cost = items[0]
            start = self._head_done
            take = min(count - start, _SLICE - n)
            if start == 0 and take == count:
                parts.append((kind, origin, payload))
            else:
                parts.append((kind, origin, payload[start : start + take]))
            n += take
            if start + take == count:
                items.popleft()
                self._head_done = 0
                cost += item_cost
            else:
                self._head_done = start + take
        return parts, n, cost

    async def _idle(self) -> None:
        """Wait for entries; meanwhile a JSON lines file past its age is rotated on time
        rather than at the next write, which may come much later on a quiet gateway."""
        due = self._jsonl.seconds_until_due() if self._jsonl is not None else None
        if due is None:
            await self._wakeup.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), due)
        if self._jsonl is not None and not self._items:
            try:
                self._jsonl.rotate_if_due()
            except OSError as exc:
                log.error("rotating JSON lines failed: %s", exc)

    def _process(self, batch: list[tuple[int, Origin, Any]]) -> None:
        # Records (dicts) are only needed by the forwarder; without it, HTTP entries go
        # straight from the protobuf to JSON text (HttpLines, the hot path at Envoy's rate).
        # Either way the slice's lines keep the queue's order and go out in one write.
        jsonl = self._jsonl is not None
        want_records = self._forwarder is not None
        records: list[dict[str, Any]] = []
        chunks: list[str] = []
        lines = 0
        metrics = self._metrics
        for kind, origin, payload in batch:
            new: list[dict[str, Any]] = []
            if kind == _HTTP:
                if want_records or not jsonl:
                    if self._red:
                        metrics.account_http(origin.gateway, payload)
                    if want_records:
                        new = http_records(payload, origin, self._headers)
                else:
                    # The hot path: one pass over the entries for the line and the metrics.
                    account = metrics.http_account(origin.gateway) if self._red else None
                    text, n = self._http_lines.lines(payload, origin, account)
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
