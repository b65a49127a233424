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
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext

from egobs import __version__
from egobs.telemetry import metrics as m
from egobs.telemetry.observers import InfraTelemetry, XdsTelemetry, link_contexts
from egobs.telemetry.tracing import Tracing

if TYPE_CHECKING:
    from egobs.provider import ProviderEvent
    from egobs.resources import Resources

__all__ = ["Telemetry"]

log = logging.getLogger("egobs.telemetry")

_ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TCPRoute", "UDPRoute", "TLSRoute")
_ROUTE_KIND_SET = frozenset(_ROUTE_KINDS)
_RESOURCE_KINDS = (
    "GatewayClass",
    "Gateway",
    *_ROUTE_KINDS,
    "ReferenceGrant",
    "Namespace",
    "Service",
    "EndpointSlice",
    "Secret",
    "Backend",
    "EnvoyProxy",
)
_PROBLEM_CONDITIONS = ("Accepted", "ResolvedRefs")


class Telemetry:
    """Metrics (``metrics=False``: none recorded) and tracing (``tracing=None``: off)."""

    def __init__(self, *, metrics: bool = True, tracing: Tracing | None = None) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.tracer = tracing.tracer if tracing is not None else None
        self.xds_observer = XdsTelemetry(tracer=self.tracer, metrics=metrics)
        self.infra_observer = InfraTelemetry()
        self._root: Span | None = None
        self._listener_keys: set[tuple[str, str, str]] = set()
        # Route statuses as last classified, by key: (status object, accepted, reason), and
        # the running totals over them. The translator hands back the very same status
        # object for a route whose inputs did not change, so only new objects are read:
        # classifying 10,000 routes per run cost ~10 ms for a one-route change.
        self._route_states: dict[tuple[str, str, str], tuple[object, str, str | None]] = {}
        self._statuses_seen = False  # record_statuses has seen a whole set once
        self._last_change: dict[str, str] = {}  # gateway -> trace id of its last change
        self._route_counts: Counter[tuple[str, str]] = Counter()
        self._route_rejected: Counter[tuple[str, str]] = Counter()

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
            m.TRANSLATION_ERRORS.labels(translator, "-", type(error).__name__).inc()

    def record_statuses(
        self,
        statuses: Mapping[tuple[str, str, str], Mapping[str, Any]],
        *,
        changed: Collection[tuple[str, str, str]] | None = None,
    ) -> None:
        """Routes and listeners by state, and the objects the translator rejected.

        Status mappings are taken as immutable: a route status that is the same object as
        at the last call is not read again (its classification is remembered). ``changed``
        (the keys whose status may differ from the last call's, every GatewayClass and
        Gateway among them) limits the work to those keys.
        """
        if not self.metrics:
            return
        states = self._route_states
        counts, route_rejected = self._route_counts, self._route_rejected
        listeners: Counter[tuple[str, str, str]] = Counter()
        rejected: Counter[tuple[str, str]] = Counter()
        keys = changed if changed is not None and self._statuses_seen else statuses.keys()
        incremental = keys is changed
        routes_seen = 0
        for key in keys:
            status = statuses.get(key)
            kind = key[0]
            if kind in _ROUTE_KIND_SET:
                old = states.get(key)
                if status is None:  # a route that is gone (only named by ``changed``)
                    if old is not None:
                        _uncount_route(kind, states.pop(key), counts, route_rejected)
                    continue
                routes_seen += 1
                if old is not None and old[0] is status:
                    continue
                if old is not None:
                    _uncount_route(kind, old, counts, route_rejected)
                new = (status, *_route_state(status))
                states[key] = new
                counts[(kind, new[1])] += 1
                if new[2]:
                    route_rejected[(kind, new[2])] += 1
            elif status is None:
                continue
            elif kind == "Gateway":
                gw = f"{key[1]}/{key[2]}"
                for lis in status.get("listeners", ()):
                    conds = {c.get("type"): c.get("status") for c in lis.get("conditions", ())}
                    listeners[
                        (gw, _flag(conds.get("Accepted")), _flag(conds.get("Programmed")))
                    ] += 1
                reason = _false_reason(status.get("conditions", ()))
                if reason:
                    rejected[(kind, reason)] += 1
            else:
                reason = _false_reason(status.get("conditions", ()))
                if reason:
                    rejected[(kind, reason)] += 1
        if not incremental and routes_seen != len(states):  # routes that are gone
            for key in [k for k in states if k not in statuses]:
                _uncount_route(key[0], states.pop(key), counts, route_rejected)
        self._statuses_seen = True
        for kind in _ROUTE_KINDS:
            for acc in ("true", "false"):
                m.ROUTES.labels(kind, acc).set(counts.get((kind, acc), 0))
        # Gateways that disappeared must not keep reporting their last listener counts.
        for key in self._listener_keys - listeners.keys():
            m.LISTENERS.labels(*key).set(0)
        for key, n in listeners.items():
            m.LISTENERS.labels(*key).set(n)
        self._listener_keys |= listeners.keys()
        # A counter of rejections per run: every rejected object counts once per translation.
        rejected.update(route_rejected)
        for (kind, reason), n in rejected.items():
            if n > 0:
                m.TRANSLATION_ERRORS.labels("gatewayapi", kind, reason).inc(n)

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


def _route_state(status: Mapping[str, Any]) -> tuple[str, str | None]:
    """(accepted ``"true"``/``"false"``, first problem reason or None) of a route status."""
    accepted = True
    reason = None
    for parent in status.get("parents", ()):
        for cond in parent.get("conditions", ()):
            # Nearly every condition is True: one lookup decides (a full build classifies
            # 10,000 statuses, which is most of what metrics add to it).
            if cond.get("status") != "False":
                continue
            kind = cond.get("type")
            if kind in _PROBLEM_CONDITIONS:
                accepted = accepted and kind != "Accepted"
                reason = reason or cond.get("reason")
    return ("true" if accepted else "false"), reason


def _uncount_route(
    kind: str,
    state: tuple[object, str, str | None],
    counts: Counter[tuple[str, str]],
    rejected: Counter[tuple[str, str]],
) -> None:
    counts[(kind, state[1])] -= 1
    if state[2]:
        rejected[(kind, state[2])] -= 1


def _flag(status: object) -> str:
    return "true" if status == "True" else "false"


def _false_reason(conditions: Iterable[Mapping[str, Any]]) -> str | None:
    for cond in conditions:
        if cond.get("status") == "False" and cond.get("type") in _PROBLEM_CONDITIONS:
            return str(cond.get("reason") or "Unknown")
    return None


def _load_error_reason(message: str) -> str:
    text = message.lower()
    if "duplicate object" in text:
        return "duplicate"
    if "cannot read" in text or "no such file" in text:
        return "read"
    if "yaml" in text or "parse" in text:
        return "parse"
    return "validation"
