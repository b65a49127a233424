"""The running control plane: provider → store → translators → snapshot cache → xDS server,
and the infra manager that keeps one Envoy per Gateway running.

This module only wires stages together; each stage lives in its own package and knows
nothing of the others. Telemetry is wired here too: stages with hooks get the telemetry
adapters, stages without (the bus, the translators) are timed and traced around their calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from egobs import gatewayapi, ir
from egobs.config import (
    Config,
    admin_token,
    host_binding,
    proxy_tls,
    telemetry_defaults,
    xds_server_tls,
)
from egobs.gatewayapi import merge_rejections
from egobs.infra.binding import BindingError, HostBinding
from egobs.infra.host import ExternalInfra, HostInfra, Infra, envoy_version
from egobs.infra.host import ProxyStatus as InfraStatus
from egobs.provider import (
    Provider,
    ProviderEvent,
    Publish,
    Report,
    ResourceSnapshot,
    provider_from_config,
)
from egobs.resources import ResourceError, Resources
from egobs.store import Change, Store
from egobs.telemetry.core import Telemetry
from egobs.telemetry.logging import RECENT
from egobs.telemetry.tracing import setup_tracing
from egobs.xds.rejections import Rejection, RejectionTracker
from egobs.xds.resources import ResourceSet
from egobs.xds.server import FanOutObserver, ProxyStatus, XdsObserver, XdsServer
from egobs.xds.snapshot import Snapshot, SnapshotCache
from egobs.xds.translate import Translator

if TYPE_CHECKING:  # aiohttp costs ~10 MiB: imported by start(), not by importing this module
    from egobs.admin import AdminServer

__all__ = ["ChangeContext", "ControlPlane", "ProviderFactory"]

log = logging.getLogger("egobs.controlplane")

RESOURCES_KEY = "resources"
# Quiet time after which the translator loop runs the full GC pass it otherwise defers.
_IDLE_GC_S = 30.0


@contextlib.contextmanager
def _automatic_gc_paused() -> Iterator[None]:
    """No automatic collection while a build runs.

    A full build at 10,000 routes allocates ~10^6 objects that survive it; once enough
    of them reach the oldest generation, CPython runs a full pass over all of them in the
    middle of the build (~0.25 s, a third of the build), and whether it does depends on
    how many objects came before, not on the change. A build leaves no cyclic garbage of
    its own (measured: a full build, then a collection, finds none), so nothing piles up;
    what it keeps alive is frozen at its end and the idle pass reclaims what died since.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class ProviderFactory(Protocol):
    """Makes a provider wired to the control plane's two callbacks."""

    def __call__(self, *, publish: Publish, report: Report) -> Provider: ...


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
    ``provider`` makes the provider from the two callbacks it must call; by default the one
    ``config.provider`` names. The control plane uses nothing of it but the
    :class:`~egobs.provider.Provider` protocol.
    """

    def __init__(
        self,
        config: Config,
        *,
        telemetry: Telemetry | None = None,
        xds_observers: Sequence[XdsObserver] = (),
        provider: ProviderFactory | None = None,
    ) -> None:
        self.config = config
        self.telemetry = telemetry if telemetry is not None else telemetry_from_config(config)
        self._extra_xds_observers = tuple(xds_observers)
        self.binding = host_binding(config)
        self.resources: Store[Resources] = Store("resources")
        self.cache = SnapshotCache()
        make_provider = provider or partial(provider_from_config, config.provider)
        self.provider: Provider = make_provider(
            publish=self._on_resources, report=self._on_provider_event
        )
        self.statuses: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.gateways: dict[str, ir.Gateway] = {}
        self.proxies: dict[str, ir.Proxy] = {}
        self.resource_sets: dict[str, ResourceSet] = {}
        self.rejections = RejectionTracker()
        self.translations = 0
        self.last_translation_s = 0.0
        self.ready = asyncio.Event()
        self._gatewayapi = gatewayapi.Translator(
            controller_name=config.gateway.controller_name, telemetry=telemetry_defaults(config)
        )
        self._translators: dict[str, Translator] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        # Set when self.proxies changed and infra has not applied them yet (see _infra_loop).
        self._infra_wanted = asyncio.Event()
        self.xds: XdsServer | None = None
        self.infra: Infra | None = None
        self.admin: AdminServer | None = None

    # ------------------------------------------------------------------ stages

    def _on_resources(self, snapshot: ResourceSnapshot) -> None:
        root = self.telemetry.change_started(
            snapshot.event_time, snapshot.resources, parent=snapshot.trace_context
        )
        self.resources.publish(
            RESOURCES_KEY, snapshot.resources, event_time=snapshot.event_time, context=root
        )
        self.telemetry.record_publish(self.resources.name, self.resources.depth)

    def _on_provider_event(self, event: ProviderEvent) -> None:
        self.telemetry.provider_event(
            event, kind=self.provider.kind, failing=len(self.provider.errors())
        )
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
        with _automatic_gc_paused():
            self._build(resources, event_time=event_time, contexts=contexts)

    def _build(
        self, resources: Resources, *, event_time: float | None, contexts: tuple[object, ...]
    ) -> None:
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
                tel.record_statuses(result.statuses)
                # Each translation returns a new dict and nothing here mutates it (statuses
                # with rejections merged in are copies): no need to copy 10,000 entries.
                self.statuses = result.statuses
                stage = "xds"
                gateways = {name: self.binding.gateway(gw) for name, gw in result.gateways.items()}
                xds_s = 0.0
                for name, gw in gateways.items():
                    translator = self._translators.get(name)
                    if translator is None:
                        translator = self._translators[name] = Translator(
                            hostname_scopes_min_routes=self.config.xds.hostname_scopes_min_routes
                        )
                    with tel.span("xds.translate", attributes={"egobs.gateway": name}) as xspan:
                        t1 = time.perf_counter()
                        rs = translator.translate(gw)
                        xds_s += time.perf_counter() - t1
                        self._install(name, rs, event_time, contexts, xspan)
                tel.record_translation("xds", xds_s)
                for name in set(self._translators) - set(gateways):
                    del self._translators[name]
                    self.binding.forget(name)
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
                    attrs[f"xds.{short}.bytes"] = snap.type_bytes.get(type_url, 0)
                span.set_attributes(attrs)
        tel.record_snapshot(name)

    async def _translate(self, change: Change[Resources]) -> None:
        started = time.perf_counter()
        self.build(
            change.value or Resources(), event_time=change.event_time, contexts=change.contexts
        )
        self.last_translation_s = time.perf_counter() - started
        self._infra_wanted.set()

    async def _infra_loop(self) -> None:
        """Apply the latest proxies whenever they changed, apart from translation.

        An apply may wait out an Envoy's SIGTERM grace period; the next change's snapshot is
        built and pushed to the other proxies meanwhile. Changes that arrive during an apply
        are applied together afterwards (only the latest proxies matter).
        """
        assert self.infra is not None, "start() sets up infra before this runs"
        while True:
            await self._infra_wanted.wait()
            self._infra_wanted.clear()
            t0 = time.perf_counter()
            try:
                await self.infra.apply(self.proxies)
            except Exception:  # an infra bug must not stop the control plane
                log.exception("infra apply failed; will retry on the next change")
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

    def computed_statuses(self) -> Mapping[tuple[str, str, str], dict[str, Any]]:
        """The translator's statuses with the proxies' rejections in force merged in
        (see :func:`egobs.gatewayapi.merge_rejections`)."""
        return merge_rejections(self.statuses, self.rejections.all())

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start every stage; if one cannot start (a port in use, say), what did start is
        stopped before the error propagates."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
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
            tls=xds_server_tls(self.config),
        )
        if self.config.infra.type == "Host":
            host = self.config.infra.host
            host_infra = HostInfra(
                xds_host=self.config.xds.address,
                xds_port=self.xds.port,
                runtime_dir=host.runtime_dir,
                log_level=host.log_level,
                stats_flush_interval_s=host.stats_flush_interval_s,
                delta=self.config.xds.mode == "delta",
                extra_args=list(host.extra_args),
                observer=self.telemetry.infra_observer,
                keep_proxies=host.keep_proxies is True,
                tls=proxy_tls(self.config),
            )
            self.infra = host_infra
            # Before the first apply: Envoys a previous control plane left are kept, not
            # replaced, when their bootstrap is still the one wanted.
            await host_infra.adopt()
        else:
            self.infra = ExternalInfra(observer=self.telemetry.infra_observer)
        self.admin = await admin.start(
            _AdminView(self),
            address=self.config.admin.address,
            port=self.config.admin.port,
            token=admin_token(self.config),
        )
        self._tasks = [
            asyncio.create_task(self._translate_loop(), name="translate"),
            asyncio.create_task(self._infra_loop(), name="infra"),
            asyncio.create_task(self._record_build_info(), name="build-info"),
        ]
        await self.provider.start()  # it logs its own load errors

    async def _record_build_info(self) -> None:
        version = "external"
        if self.config.infra.type == "Host":
            version = await envoy_version()
        self.telemetry.record_build_info(envoy_version=version)

    async def stop(self) -> None:
        """Stop everything :meth:`start` started; a second call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        await self.provider.stop()
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


class _AdminView:
    """The control plane as the admin server sees it (:class:`egobs.admin.AdminView`)."""

    def __init__(self, cp: ControlPlane) -> None:
        self._cp = cp

    @property
    def ready(self) -> bool:
        return self._cp.ready.is_set()

    def statuses(self) -> Mapping[tuple[str, str, str], dict[str, Any]]:
        return self._cp.computed_statuses()

    @property
    def proxies(self) -> Mapping[str, ir.Proxy]:
        return self._cp.proxies

    @property
    def gateways(self) -> Mapping[str, ir.Gateway]:
        return self._cp.gateways

    @property
    def resource_sets(self) -> Mapping[str, ResourceSet]:
        return self._cp.resource_sets

    @property
    def binding(self) -> HostBinding:
        return self._cp.binding

    def provider_errors(self) -> Mapping[str, Sequence[ResourceError]]:
        return self._cp.provider.errors()

    def rejections(self) -> Sequence[Rejection]:
        return self._cp.rejections.all()

    def connected_proxies(self) -> Sequence[ProxyStatus]:
        xds = self._cp.xds
        return list(xds.registry) if xds is not None else []

    def snapshot(self, node_cluster: str) -> Snapshot | None:
        return self._cp.cache.get(node_cluster)

    def infra_status(self) -> Mapping[str, InfraStatus]:
        infra = self._cp.infra
        return infra.status() if infra is not None else {}

    def recent_logs(self) -> Sequence[str]:
        return RECENT.lines()
