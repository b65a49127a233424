"""The running control plane: provider → store → translators → snapshot cache → xDS server,
and the infra manager that keeps one Envoy per Gateway running.

This module only wires stages together; each stage lives in its own package and knows
nothing of the others. Telemetry is wired here too: stages with hooks get the telemetry
adapters, stages without (the bus, the translators) are timed and traced around their calls.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from egobs import gatewayapi, ir
from egobs.config import Config, host_binding, telemetry_defaults
from egobs.infra.binding import BindingError
from egobs.infra.host import ExternalInfra, HostInfra, Infra, find_envoy
from egobs.provider import FileProvider, ProviderEvent
from egobs.resources import Resources
from egobs.store import Change, Store
from egobs.telemetry.core import Telemetry
from egobs.telemetry.tracing import setup_tracing
from egobs.xds.resources import ResourceSet
from egobs.xds.server import FanOutObserver, ProxyStatus, XdsObserver
from egobs.xds.snapshot import SnapshotCache
from egobs.xds.translate import Translator

__all__ = ["XDS_REJECTED", "ChangeContext", "ControlPlane", "Rejection"]

log = logging.getLogger("egobs.controlplane")

RESOURCES_KEY = "resources"
# Quiet time after which the translator loop runs the full GC pass it otherwise defers.
_IDLE_GC_S = 30.0

XDS_REJECTED = "egobs.dev/XdsRejected"
"""Condition type set on a route's parent status when a proxy rejected config naming it."""

# Route names in xDS start with "<kind>/<namespace>/<name>/" (see egobs.gatewayapi).
_ROUTE_NAME = re.compile(
    r"\b(httproute|grpcroute|tcproute|tlsroute|udproute)/([^/\s\"']+)/([^/\s\"']+)/"
)
_ROUTE_KINDS = {
    "httproute": "HTTPRoute",
    "grpcroute": "GRPCRoute",
    "tcproute": "TCPRoute",
    "tlsroute": "TLSRoute",
    "udproute": "UDPRoute",
}
_STATUS_MESSAGE_LIMIT = 512


@dataclass(frozen=True, slots=True)
class ChangeContext:
    """What a snapshot stands for: the provider events behind it.

    ``event_time`` is the wall-clock time of the earliest provider event merged into the
    translation that built the snapshot; ``trace_contexts`` are those events' trace contexts.
    ``span_context`` is the trace span of building this snapshot (``None`` when untraced):
    the spans of pushing it to proxies are its children.
    """

    event_time: float
    trace_contexts: tuple[object, ...] = ()
    translation: int = 0
    span_context: object | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A proxy's NACK that no later ACK of the same type has superseded."""

    gateway: str
    node_id: str
    type_url: str
    version: str
    message: str
    at: float


class _Rejections:
    """XdsObserver keeping the NACKs in force per gateway, for statuses."""

    def __init__(self) -> None:
        self.by_gateway: dict[str, dict[tuple[str, str], Rejection]] = {}

    def on_connect(self, proxy: ProxyStatus, /) -> None:
        pass

    def on_disconnect(self, proxy: ProxyStatus, /) -> None:
        # A proxy that is gone holds no config; if its successor rejects it too, it says so.
        entries = self.by_gateway.get(proxy.cluster, {})
        for key in [k for k in entries if k[0] == proxy.node_id]:
            del entries[key]

    def on_push(self, *_: object) -> None:
        pass

    def on_ack(self, proxy: ProxyStatus, type_url: str, version: str, context: object, /) -> None:
        entries = self.by_gateway.get(proxy.cluster)
        if entries and entries.pop((proxy.node_id, type_url), None) is not None:
            log.info("%s (%s) accepted %s again", proxy.node_id, proxy.cluster, type_url)

    def on_nack(
        self,
        proxy: ProxyStatus,
        type_url: str,
        version: str,
        message: str,
        context: object,
        /,
    ) -> None:
        self.by_gateway.setdefault(proxy.cluster, {})[(proxy.node_id, type_url)] = Rejection(
            proxy.cluster, proxy.node_id, type_url, version, message, time.time()
        )

    def all(self) -> list[Rejection]:
        return [r for entries in self.by_gateway.values() for r in entries.values()]


def telemetry_from_config(config: Config) -> Telemetry:
    t = config.telemetry
    tracing = setup_tracing(
        enabled=t.tracing.enabled,
        endpoint=t.tracing.endpoint,
        protocol=t.tracing.protocol,
        headers=t.tracing.headers,
        sampling_ratio=t.tracing.sampling_ratio,
        export_interval_s=t.tracing.export_interval_s,
    )
    return Telemetry(metrics=t.metrics.enabled, tracing=tracing)


class ControlPlane:
    """Everything ``egobs serve`` runs, started and stopped as one unit.

    ``telemetry`` defaults to what ``config.telemetry`` describes; ``xds_observers`` are
    called on every xDS event after the control plane's own (benchmarks count pushes so).
    """

    def __init__(
        self,
        config: Config,
        *,
        telemetry: Telemetry | None = None,
        xds_observers: Sequence[XdsObserver] = (),
    ) -> None:
        self.config = config
        self.telemetry = telemetry if telemetry is not None else telemetry_from_config(config)
        self._extra_xds_observers = tuple(xds_observers)
        self.binding = host_binding(config)
        self.resources: Store[Resources] = Store("resources")
        self.cache = SnapshotCache()
        self.provider = FileProvider(
            config.provider.file.paths,
            publish=self._on_resources,
            on_event=self._on_provider_event,
            debounce_ms=config.provider.file.debounce_ms,
        )
        self.statuses: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.gateways: dict[str, ir.Gateway] = {}
        self.proxies: dict[str, ir.Proxy] = {}
        self.resource_sets: dict[str, ResourceSet] = {}
        self.rejections = _Rejections()
        self.translations = 0
        self.last_translation_s = 0.0
        self.ready = asyncio.Event()
        self._gatewayapi = gatewayapi.Translator(
            controller_name=config.gateway.controller_name, telemetry=telemetry_defaults(config)
        )
        self._translators: dict[str, Translator] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.xds: Any = None
        self.infra: Infra | None = None
        self.admin: Any = None

    # ------------------------------------------------------------------ stages

    def _on_resources(self, res: Resources, event_time: float) -> None:
        root = self.telemetry.change_started(event_time, res)
        self.resources.publish(RESOURCES_KEY, res, event_time=event_time, context=root)
        self.telemetry.record_publish(self.resources.name, self.resources.depth)

    def _on_provider_event(self, event: ProviderEvent) -> None:
        self.telemetry.provider_event(event)
        if event.errors:
            log.warning("provider: %d load error(s), last good objects kept", len(event.errors))

    def build(
        self,
        resources: Resources,
        *,
        event_time: float | None = None,
        contexts: tuple[object, ...] = (),
    ) -> None:
        """Translate ``resources`` and install a snapshot per Gateway (everything but infra).

        Synchronous and self-contained, so benchmarks time exactly what serving runs.
        """
        tel = self.telemetry
        self.translations += 1
        event_time = time.time() if event_time is None else event_time
        stage = "gatewayapi"
        with tel.span(
            "translate",
            contexts=contexts,
            attributes={
                "egobs.translation": self.translations,
                "egobs.resources": len(resources),
                "egobs.coalesced": len(contexts),
            },
        ) as span:
            try:
                t0 = time.perf_counter()
                with tel.span("gatewayapi.translate") as gspan:
                    result = self._gatewayapi.translate(resources)
                    if gspan is not None:
                        gspan.set_attributes(
                            {
                                "egobs.gateways": len(result.gateways),
                                "egobs.statuses": len(result.statuses),
                            }
                        )
                tel.record_translation("gatewayapi", time.perf_counter() - t0)
                tel.record_statuses(result.statuses, changed=result.changed)
                # Each translation returns a new dict and nothing here mutates it (statuses
                # with rejections merged in are copies): no need to copy 10,000 entries.
                self.statuses = result.statuses
                stage = "xds"
                gateways = {name: self.binding.gateway(gw) for name, gw in result.gateways.items()}
                xds_s = 0.0
                for name, gw in gateways.items():
                    translator = self._translators.setdefault(name, Translator())
                    with tel.span("xds.translate", attributes={"egobs.gateway": name}) as xspan:
                        t1 = time.perf_counter()
                        rs = translator.translate(gw)
                        xds_s += time.perf_counter() - t1
                        self._install(name, rs, event_time, contexts, xspan)
                tel.record_translation("xds", xds_s)
                for name in set(self._translators) - set(gateways):
                    del self._translators[name]
                    self.resource_sets.pop(name, None)
                    self.cache.delete(name)
                    tel.record_snapshot_deleted(name)
                self.gateways = gateways
                self.proxies = {name: self.binding.proxy(p) for name, p in result.proxies.items()}
                # Full GC passes over the ~10^6 long-lived objects of a large config take
                # ~0.6 s and land on whichever change triggers them (measured with
                # bench/converge.py); what is alive now stays alive until the next change.
                gc.freeze()
            except Exception as exc:
                tel.record_run(ok=False, translator=stage, error=exc)
                raise
            tel.record_run(ok=True)
            if span is not None:
                span.set_attribute("egobs.gateways", len(gateways))

    def _install(
        self,
        name: str,
        rs: ResourceSet,
        event_time: float,
        contexts: tuple[object, ...],
        parent: Any,
    ) -> None:
        tel = self.telemetry
        self.resource_sets[name] = rs
        with tel.span("xds.snapshot", attributes={"egobs.gateway": name}) as span:
            ctx = ChangeContext(
                event_time,
                contexts,
                self.translations,
                span.get_span_context() if span is not None else None,
            )
            snap = self.cache.set_snapshot(name, rs, context=ctx)
            if span is not None and span.is_recording():
                attrs: dict[str, Any] = {"xds.snapshot_version": snap.version}
                for type_url, entries in snap.resources.items():
                    short = type_url.rsplit(".", 1)[-1]
                    attrs[f"xds.{short}.count"] = len(entries)
                    attrs[f"xds.{short}.bytes"] = sum(
                        len(p.resource.value) for p in entries.values()
                    )
                span.set_attributes(attrs)
        tel.record_snapshot(name)

    async def _translate(self, change: Change[Resources]) -> None:
        started = time.perf_counter()
        self.build(
            change.value or Resources(), event_time=change.event_time, contexts=change.contexts
        )
        self.last_translation_s = time.perf_counter() - started
        assert self.infra is not None, "start() sets up infra before translating"
        t0 = time.perf_counter()
        await self.infra.apply(self.proxies)
        self.telemetry.record_infra_apply(time.perf_counter() - t0)
        self.ready.set()

    async def _translate_loop(self) -> None:
        sub = self.resources.subscribe("translator")
        collect_pending = False
        while True:
            try:
                batch = await asyncio.wait_for(sub.next_batch(), _IDLE_GC_S)
            except TimeoutError:
                if collect_pending:
                    # Frozen objects are never collected; cycles among the ones that died
                    # since are reclaimed here, while no change is waiting on us.
                    gc.unfreeze()
                    gc.collect()
                    gc.freeze()
                    collect_pending = False
                continue
            except StopAsyncIteration:
                return
            collect_pending = True
            for change in batch:
                t0 = time.perf_counter()
                try:
                    await self._translate(change)
                except BindingError as exc:  # the config's port map, not a bug: no traceback
                    log.error("infra.host: %s; keeping the last snapshot", exc)
                except Exception:  # a translator bug must not stop the control plane
                    log.exception("translation failed; keeping the last snapshot")
                self.telemetry.record_handled(
                    self.resources.name, sub.name, time.perf_counter() - t0, self.resources.depth
                )

    # ------------------------------------------------------------------ status

    def computed_statuses(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The translator's statuses with the proxies' rejections merged in.

        A Gateway some proxy of which rejected its config gets ``Programmed: False``
        (reason ``Invalid``, the Envoy error as message) — what ``kubectl wait`` and
        dashboards watch. A route the rejected config names also gets an
        ``egobs.dev/XdsRejected: True`` condition on that Gateway's parent entry. Both go
        away once a later version of the rejected type is ACKed.
        """
        rejections = self.rejections.all()
        if not rejections:
            return self.statuses
        out = dict(self.statuses)
        for rej in sorted(rejections, key=lambda r: r.at):
            ns, _, gw_name = rej.gateway.partition("/")
            short = rej.type_url.rsplit(".", 1)[-1]
            message = _shorten(
                f"proxy {rej.node_id} rejected {short} version {rej.version}: {rej.message}"
            )
            when = datetime.fromtimestamp(rej.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            key = ("Gateway", ns, gw_name)
            if key in out:
                status = out[key] = copy.deepcopy(out[key])
                _set_condition(
                    status.setdefault("conditions", []),
                    {"type": "Programmed", "status": "False", "reason": "Invalid",
                     "message": message, "lastTransitionTime": when},
                )  # fmt: skip
            for kind_l, rns, rname in set(_ROUTE_NAME.findall(rej.message)):
                rkey = (_ROUTE_KINDS[kind_l], rns, rname)
                if rkey not in out:
                    continue
                status = out[rkey] = copy.deepcopy(out[rkey])
                for parent in status.get("parents", []):
                    ref = parent.get("parentRef", {})
                    if ref.get("name") == gw_name and ref.get("namespace", rns) == ns:
                        _set_condition(
                            parent.setdefault("conditions", []),
                            {"type": XDS_REJECTED, "status": "True", "reason": "Rejected",
                             "message": message, "lastTransitionTime": when},
                        )  # fmt: skip
        return out

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from egobs import admin
        from egobs.xds.server import serve

        observer = FanOutObserver(
            self.rejections, self.telemetry.xds_observer, *self._extra_xds_observers
        )
        self.xds = await serve(
            self.cache,
            address=self.config.xds.address,
            port=self.config.xds.port,
            observer=observer,
        )
        if self.config.infra.type == "Host":
            host = self.config.infra.host
            self.infra = HostInfra(
                xds_host=self.config.xds.address,
                xds_port=self.xds.port,
                runtime_dir=host.runtime_dir,
                log_level=host.log_level,
                stats_flush_interval_s=host.stats_flush_interval_s,
                delta=self.config.xds.mode == "delta",
                extra_args=list(host.extra_args),
                observer=self.telemetry.infra_observer,
            )
        else:
            self.infra = ExternalInfra(observer=self.telemetry.infra_observer)
        self.admin = await admin.start(
            self, address=self.config.admin.address, port=self.config.admin.port
        )
        errors = self.provider.load_initial()
        for err in errors:
            log.warning("%s", err)
        self._tasks = [
            asyncio.create_task(self._translate_loop(), name="translate"),
            asyncio.create_task(self.provider.run(), name="provider"),
            asyncio.create_task(self._record_build_info(), name="build-info"),
        ]

    async def _record_build_info(self) -> None:
        version = "external"
        if self.config.infra.type == "Host":
            version = await _envoy_version()
        self.telemetry.record_build_info(envoy_version=version)

    async def stop(self) -> None:
        self.provider.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.infra is not None:
            await self.infra.shutdown()
        if self.admin is not None:
            await self.admin.stop()
        if self.xds is not None:
            await self.xds.stop(1.0)
        # Last: spans of the final pushes end when their streams close.
        await asyncio.to_thread(self.telemetry.shutdown)


def _set_condition(conditions: list[dict[str, Any]], cond: dict[str, Any]) -> None:
    for i, old in enumerate(conditions):
        if old.get("type") == cond["type"]:
            if "observedGeneration" in old:
                cond = {**cond, "observedGeneration": old["observedGeneration"]}
            conditions[i] = cond
            return
    conditions.append(cond)


def _shorten(message: str) -> str:
    message = " ".join(message.split())
    if len(message) <= _STATUS_MESSAGE_LIMIT:
        return message
    return message[: _STATUS_MESSAGE_LIMIT - 1] + "…"


async def _envoy_version() -> str:
    try:
        proc = await asyncio.create_subprocess_exec(  # a few ms; only for egobs_build_info
            find_envoy(),
            "--version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return "unknown"
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    except BaseException as exc:  # timeout or cancelled: never leave the process behind
        proc.kill()
        await proc.wait()
        if isinstance(exc, TimeoutError):
            return "unknown"
        raise
    found = re.search(rb"/(\d+\.\d+\.\d+)/", out)
    return found.group(1).decode() if found else "unknown"
