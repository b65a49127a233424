"""The telemetry layer the control plane wires into every stage.

One :class:`Telemetry` per control plane. Stages with hooks get adapters
(:attr:`Telemetry.xds_observer`, :attr:`Telemetry.infra_observer`,
:meth:`Telemetry.provider_event`); stages without hooks (bus, translators) are timed by the
wiring module through :meth:`Telemetry.span` and the ``record_*`` methods.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext

from egobs import __version__
from egobs.telemetry import metrics as m
from egobs.telemetry.observers import InfraTelemetry, XdsTelemetry, link_contexts
from egobs.telemetry.statuses import ROUTE_KINDS
from egobs.telemetry.tracing import Tracing

if TYPE_CHECKING:
    from egobs.provider import ProviderEvent
    from egobs.resources import Resources

__all__ = ["Telemetry"]

log = logging.getLogger("egobs.telemetry")

_RESOURCE_KINDS = (
    "GatewayClass",
    "Gateway",
    "ListenerSet",
    *ROUTE_KINDS,
    "ReferenceGrant",
    "Namespace",
    "Service",
    "EndpointSlice",
    "Secret",
    "ConfigMap",
    "Backend",
    "EnvoyProxy",
)


class Telemetry:
    """Metrics (``metrics=False``: none recorded) and tracing (``tracing=None``: off)."""

    def __init__(self, *, metrics: bool = True, tracing: Tracing | None = None) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.tracer = tracing.tracer if tracing is not None else None
        self.xds_observer = XdsTelemetry(tracer=self.tracer, metrics=metrics)
        self.infra_observer = InfraTelemetry()
        self._root: Span | None = None
        self._last_change: dict[str, str] = {}  # gateway -> trace id of its last change

    # ------------------------------------------------------------------ provider

    def change_started(
        self, event_time: float, resources: Resources, *, parent: SpanContext | None = None
    ) -> SpanContext | None:
        """Open the root span of a change (the provider event); returns its context, which
        travels with the change through the bus. Ended by :meth:`provider_event`. With a
        valid ``parent`` (a trace the provider's source carried), the span continues that
        trace; otherwise it starts a new one."""
        if self.metrics:
            # Resources holds one list per kind: their lengths are the counts, without
            # visiting every object of a large config on each change.
            by_kind = resources._BY_KIND
            for kind in _RESOURCE_KINDS:
                m.PROVIDER_RESOURCES.labels(kind).set(len(getattr(resources, by_kind[kind])))
        if self.tracer is None:
            return None
        if self._root is not None:  # a publish without its event; never leave spans open
            self._root.end()
        self._root = self.tracer.start_span(
            "provider.event",
            context=trace.set_span_in_context(
                trace.NonRecordingSpan(parent)
                if parent is not None and parent.is_valid
                else trace.INVALID_SPAN  # a new trace
            ),
            start_time=int(event_time * 1e9),
            attributes={"egobs.resources": len(resources)},
        )
        ctx = self._root.get_span_context()
        return ctx if ctx.is_valid else None

    def provider_event(
        self, event: ProviderEvent, *, kind: str = "file", failing: int | None = None
    ) -> None:
        """Count a provider's change; ``failing`` is how many of its sources fail to load
        now (the provider's ``errors()``), when known."""
        if self.metrics:
            if failing is not None:
                m.PROVIDER_FAILING_SOURCES.labels(kind).set(failing)
            for op, files in (
                ("created", event.created),
                ("modified", event.modified),
                ("deleted", event.deleted),
            ):
                if files:
                    m.PROVIDER_EVENTS.labels(kind, op).inc(len(files))
            for err in event.errors:
                m.PROVIDER_LOAD_ERRORS.labels(_load_error_reason(err.message)).inc()
        root, self._root = self._root, None
        if root is not None:
            root.set_attributes(
                {
                    "egobs.files.created": len(event.created),
                    "egobs.files.modified": len(event.modified),
                    "egobs.files.deleted": len(event.deleted),
                    "egobs.load_errors": len(event.errors),
                    "egobs.changed": event.changed,
                }
            )
            if event.errors:
                root.add_event("load errors", {"egobs.first_error": str(event.errors[0])[:512]})
            root.end()

    # ------------------------------------------------------------------ spans

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        *,
        contexts: Iterable[object] = (),
        attributes: Mapping[str, Any] | None = None,
    ) -> Iterator[Span | None]:
        """A span for a stage, current while the block runs (so logs carry its ids).

        With ``contexts`` (the trace contexts a coalesced change carries) the first is the
        parent and the others are linked; without, the current span is the parent. No span
        at all when there is no parent to continue: an untraced change stays untraced.
        """
        if self.tracer is None:
            yield None
            return
        contexts = tuple(contexts)
        if contexts:
            parent, links = link_contexts(contexts)
            if parent is None:
                yield None
                return
            ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        else:
            current = trace.get_current_span()
            if not current.get_span_context().is_valid:
                yield None
                return
            ctx, links = None, []
        with self.tracer.start_as_current_span(
            name, context=ctx, links=links, attributes=dict(attributes or {})
        ) as span:
            yield span

    # ------------------------------------------------------------------ stages

    def record_publish(self, store: str, depth: int) -> None:
        if self.metrics:
            m.BUS_PUBLISHES.labels(store).inc()
            m.BUS_DEPTH.labels(store).set(depth)

    def record_handled(self, store: str, stage: str, seconds: float, depth: int) -> None:
        if self.metrics:
            m.BUS_HANDLE_DURATION.labels(store, stage).observe(seconds)
            m.BUS_DEPTH.labels(store).set(depth)

    def record_translation(self, translator: str, seconds: float) -> None:
        if self.metrics:
            m.TRANSLATION_DURATION.labels(translator).observe(seconds)

    def record_run(
        self, *, ok: bool, translator: str = "", error: BaseException | None = None
    ) -> None:
        if not self.metrics:
            return
        m.TRANSLATION_RUNS.labels("success" if ok else "error").inc()
        if error is not None:
            m.TRANSLATION_ERRORS.labels(translator, type(error).__name__).inc()

    def record_statuses(self, statuses: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> None:
        """The last translation's statuses, for the route, listener and rejected-object
        gauges. Taken as immutable and read when metrics are scraped, not now."""
        if self.metrics:
            m.STATUSES.update(statuses)

    def record_snapshot(self, gateway: str) -> None:
        """A snapshot was installed for ``gateway``: count it and mark it as the gateway's
        last configuration change, with the trace of the change when it is sampled (the
        current span is the change's ``xds.translate`` span)."""
        if not self.metrics:
            return
        m.SNAPSHOT_BUILDS.labels(gateway).inc()
        ctx = trace.get_current_span().get_span_context()
        trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid and ctx.trace_flags.sampled else ""
        previous = self._last_change.get(gateway)
        if previous is not None and previous != trace_id:
            with contextlib.suppress(KeyError):
                m.CONFIG_CHANGE.remove(gateway, previous)
        self._last_change[gateway] = trace_id
        m.CONFIG_CHANGE.labels(gateway, trace_id).set(time.time())

    def record_snapshot_deleted(self, gateway: str) -> None:
        """``gateway`` is gone: its last-change series goes with it."""
        trace_id = self._last_change.pop(gateway, None)
        if self.metrics and trace_id is not None:
            with contextlib.suppress(KeyError):
                m.CONFIG_CHANGE.remove(gateway, trace_id)

    def record_infra_apply(self, seconds: float) -> None:
        if self.metrics:
            m.INFRA_APPLY_DURATION.observe(seconds)

    def record_build_info(self, *, envoy_version: str) -> None:
        m.BUILD_INFO.clear()
        m.BUILD_INFO.labels(__version__, envoy_version, platform.python_version()).set(1)

    # ------------------------------------------------------------------ lifecycle

    def shutdown(self) -> None:
        if self._root is not None:
            self._root.end()
            self._root = None
        if self.tracing is not None:
            self.tracing.shutdown()


def _load_error_reason(message: str) -> str:
    text = message.lower()
    if "duplicate object" in text:
        return "duplicate"
    if "cannot read" in text or "no such file" in text:
        return "read"
    if "yaml" in text or "parse" in text:
        return "parse"
    return "validation"
