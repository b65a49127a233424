"""Telemetry adapters for the hook protocols of the xDS server and the infra backend.

They only read what the hooks hand them; nothing here calls back into a stage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, Status, StatusCode

from egobs.telemetry import metrics as m

if TYPE_CHECKING:
    from egobs.infra.host import ProxyState
    from egobs.xds.server import ProxyStatus

__all__ = ["InfraTelemetry", "XdsTelemetry", "change_span_context"]

log = logging.getLogger("egobs.telemetry")

# Span status descriptions and events stay small; the full (already truncated) NACK text is
# in the proxy status and the admin API.
_SPAN_MESSAGE_LIMIT = 512


def change_span_context(context: object) -> SpanContext | None:
    """The span a snapshot's pushes are children of, from its change context (duck-typed:
    anything with a ``span_context`` attribute holding an OpenTelemetry SpanContext)."""
    ctx = getattr(context, "span_context", None)
    return ctx if isinstance(ctx, SpanContext) else None


def _event_time(context: object) -> float | None:
    t = getattr(context, "event_time", None)
    return t if isinstance(t, float | int) else None


def short_type(type_url: str) -> str:
    return type_url.rsplit(".", 1)[-1]


@dataclass(slots=True)
class _Push:
    started: float  # perf_counter
    span: Span | None


@dataclass(slots=True)
class _StreamState:
    proxy: ProxyStatus
    pending: dict[str, _Push] = field(default_factory=dict)
    nacked: set[str] = field(default_factory=set)
    # Earliest provider event behind a push this proxy has not fully ACKed yet.
    earliest_event: float | None = None
    check_scheduled: bool = False

    @property
    def stale(self) -> bool:
        return bool(self.pending or self.nacked)


class XdsTelemetry:
    """:class:`egobs.xds.server.XdsObserver` recording xDS metrics, push spans and
    convergence.

    A proxy has converged when nothing it was pushed is in flight or rejected. That is
    checked one loop turn after an ACK, because the server sends the next type that the
    ACK unblocked (LDS after CDS) right after the hook returns.
    """

    def __init__(self, *, tracer: trace.Tracer | None = None, metrics: bool = True) -> None:
        self._tracer = tracer
        self._metrics = metrics
        self._streams: dict[int, _StreamState] = {}

    # -- hooks

    def on_connect(self, proxy: ProxyStatus, /) -> None:
        self._streams[proxy.stream_id] = _StreamState(proxy)
        if self._metrics:
            m.CONNECTED_PROXIES.labels(proxy.cluster).inc()

    def on_disconnect(self, proxy: ProxyStatus, /) -> None:
        state = self._streams.pop(proxy.stream_id, None)
        if state is not None:
            for type_url, push in state.pending.items():
                if push.span is not None:
                    push.span.set_status(Status(StatusCode.ERROR, "stream closed before ACK"))
                    push.span.set_attribute("xds.type_url", type_url)
                    push.span.end()
        if self._metrics:
            m.CONNECTED_PROXIES.labels(proxy.cluster).dec()
            mode = "delta" if proxy.delta else "sotw"
            m.STREAM_DURATION.labels(mode).observe(max(0.0, time.time() - proxy.connected_since))
            self._update_stale(proxy.cluster)

    def on_push(
        self,
        proxy: ProxyStatus,
        type_url: str,
        version: str,
        resource_count: int,
        size_bytes: int,
        context: object,
        /,
    ) -> None:
        state = self._streams.get(proxy.stream_id)
        if state is None:
            return
        span = None
        parent = change_span_context(context) if self._tracer is not None else None
        if parent is not None and self._tracer is not None:
            span = self._tracer.start_span(
                f"xds.push {short_type(type_url)}",
                context=trace.set_span_in_context(NonRecordingSpan(parent)),
                kind=trace.SpanKind.SERVER,
                attributes={
                    "egobs.gateway": proxy.cluster,
                    "egobs.node": proxy.node_id,
                    "xds.type_url": type_url,
                    "xds.version": version,
                    "xds.resources": resource_count,
                    "xds.size_bytes": size_bytes,
                    "xds.mode": "delta" if proxy.delta else "sotw",
                },
            )
        state.pending[type_url] = _Push(time.perf_counter(), span)
        t = _event_time(context)
        if t is not None and (state.earliest_event is None or t < state.earliest_event):
            state.earliest_event = t
        if self._metrics:
            m.PUSHES.labels(type_url).inc()
            m.CONFIG_SIZE.labels(type_url).observe(size_bytes)
            self._update_stale(proxy.cluster)

    def on_ack(self, proxy: ProxyStatus, type_url: str, version: str, context: object, /) -> None:
        state = self._streams.get(proxy.stream_id)
        if state is None:
            return
        push = state.pending.pop(type_url, None)
        state.nacked.discard(type_url)
        if push is not None:
            if push.span is not None:
                push.span.add_event("ack", {"xds.version": version})
                push.span.set_status(Status(StatusCode.OK))
                push.span.end()
            if self._metrics:
                m.PUSH_DURATION.labels(type_url).observe(time.perf_counter() - push.started)
        if self._metrics:
            m.ACKS.labels(type_url).inc()
        if not state.stale and not state.check_scheduled:
            state.check_scheduled = True
            _soon(lambda: self._check_converged(state))

    def on_nack(
        self,
        proxy: ProxyStatus,
        type_url: str,
        version: str,
        message: str,
        context: object,
        /,
    ) -> None:
        state = self._streams.get(proxy.stream_id)
        if state is None:
            return
        push = state.pending.pop(type_url, None)
        state.nacked.add(type_url)
        short = message[:_SPAN_MESSAGE_LIMIT]
        if push is not None:
            if push.span is not None:
                push.span.add_event("nack", {"xds.version": version, "xds.error": short})
                push.span.set_status(Status(StatusCode.ERROR, short))
                with trace.use_span(push.span, end_on_exit=True):
                    log.warning(
                        "xDS rejected",
                        extra={
                            "gateway": proxy.cluster,
                            "node": proxy.node_id,
                            "type_url": type_url,
                            "version": version,
                            "error": short,
                        },
                    )
            if self._metrics:
                m.PUSH_DURATION.labels(type_url).observe(time.perf_counter() - push.started)
        if self._metrics:
            m.NACKS.labels(type_url, proxy.cluster).inc()
            self._update_stale(proxy.cluster)

    def on_refused(self, peer: str, gateway: str, reason: str, /) -> None:
        # The gateway label is what the client asked for: with mTLS on, only holders of a
        # certificate from egobs's CA get this far, so its values are bounded by them.
        if self._metrics:
            m.STREAMS_REFUSED.labels(reason, gateway).inc()

    # -- internals

    def _check_converged(self, state: _StreamState) -> None:
        state.check_scheduled = False
        if self._streams.get(state.proxy.stream_id) is not state:
            return
        if self._metrics:
            self._update_stale(state.proxy.cluster)
        if state.stale or state.earliest_event is None:
            return
        took = max(0.0, time.time() - state.earliest_event)
        state.earliest_event = None
        if self._metrics:
            m.CONVERGENCE.labels(state.proxy.cluster).observe(took)
        log.debug(
            "proxy converged",
            extra={"gateway": state.proxy.cluster, "node": state.proxy.node_id, "seconds": took},
        )

    def _update_stale(self, gateway: str) -> None:
        count = sum(1 for s in self._streams.values() if s.proxy.cluster == gateway and s.stale)
        m.STALE_PROXIES.labels(gateway).set(count)


def _soon(fn: Callable[[], None]) -> None:
    try:
        asyncio.get_running_loop().call_soon(fn)
    except RuntimeError:  # no loop (direct calls in tests): there is no later push to wait for
        fn()


class InfraTelemetry:
    """:class:`egobs.infra.host.InfraObserver` recording proxy states, restarts, start times."""

    def __init__(self) -> None:
        self._states: dict[str, str] = {}

    def on_state(self, proxy_name: str, state: ProxyState) -> None:
        if state.value == "stopped":
            self._states.pop(proxy_name, None)
        else:
            self._states[proxy_name] = state.value
        counts: dict[str, int] = dict.fromkeys(("starting", "running", "backoff", "external"), 0)
        for value in self._states.values():
            counts[value] = counts.get(value, 0) + 1
        for value, n in counts.items():
            m.INFRA_PROXIES.labels(value).set(n)

    def on_restart(self, proxy_name: str, exit_code: int | None) -> None:
        m.INFRA_RESTARTS.labels(proxy_name).inc()

    def on_start_duration(self, proxy_name: str, seconds: float) -> None:
        m.INFRA_START_DURATION.observe(seconds)


def link_contexts(contexts: tuple[object, ...]) -> tuple[SpanContext | None, list[Link]]:
    """The parent (first valid) and links (the rest) for work done on coalesced changes."""
    valid = [c for c in contexts if isinstance(c, SpanContext) and c.is_valid]
    if not valid:
        return None, []
    return valid[0], [Link(c, {"egobs.link": "coalesced"}) for c in valid[1:]]
