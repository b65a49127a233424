"""The running control plane: provider → store → translators → snapshot cache → xDS server,
and the infra manager that keeps one Envoy per Gateway running.

This module only wires stages together; each stage lives in its own package and knows
nothing of the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

from egobs import gatewayapi, ir
from egobs.config import Config
from egobs.infra.host import ExternalInfra, HostInfra, Infra
from egobs.infra.ports import PortMap
from egobs.provider import FileProvider, ProviderEvent
from egobs.resources import Resources
from egobs.store import Change, Store
from egobs.xds.snapshot import SnapshotCache
from egobs.xds.translate import Translator

__all__ = ["ChangeContext", "ControlPlane"]

log = logging.getLogger("egobs.controlplane")

RESOURCES_KEY = "resources"


@dataclass(frozen=True, slots=True)
class ChangeContext:
    """What a snapshot stands for: the provider events behind it.

    ``event_time`` is the wall-clock time of the earliest provider event merged into the
    translation that built the snapshot; ``trace_contexts`` are those events' trace contexts.
    """

    event_time: float
    trace_contexts: tuple[object, ...] = ()
    translation: int = 0


class ControlPlane:
    """Everything ``egobs serve`` runs, started and stopped as one unit."""

    def __init__(self, config: Config) -> None:
        self.config = config
        host = config.infra.host
        self.port_map = PortMap(offset=host.port_offset, explicit=dict(host.port_map))
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
        self.translations = 0
        self.last_translation_s = 0.0
        self.ready = asyncio.Event()
        self._gatewayapi = gatewayapi.Translator(controller_name=config.gateway.controller_name)
        self._translators: dict[str, Translator] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.xds: Any = None
        self.infra: Infra | None = None
        self.admin: Any = None

    # ------------------------------------------------------------------ stages

    def _on_resources(self, res: Resources, event_time: float) -> None:
        self.resources.publish(RESOURCES_KEY, res, event_time=event_time)

    def _on_provider_event(self, event: ProviderEvent) -> None:
        if event.errors:
            log.warning("provider: %d load error(s), last good objects kept", len(event.errors))

    def _bind_gateway(self, gw: ir.Gateway) -> ir.Gateway:
        """The Gateway as this host runs it: ports remapped, listeners on the host address."""
        gw = self.port_map.apply_gateway(gw)
        address = self.config.infra.host.listener_address

        def bind(listener: Any) -> Any:
            if listener.address == address:
                return listener
            return dataclasses.replace(listener, address=address)

        return dataclasses.replace(
            gw,
            http=tuple(bind(lis) for lis in gw.http),
            tcp=tuple(bind(lis) for lis in gw.tcp),
            udp=tuple(bind(lis) for lis in gw.udp),
        )

    async def _translate(self, change: Change[Resources]) -> None:
        resources = change.value or Resources()
        started = time.perf_counter()
        self.translations += 1
        ctx = ChangeContext(change.event_time, change.contexts, self.translations)
        result = gatewayapi.translate(
            resources, controller_name=self.config.gateway.controller_name
        )
        self.statuses = dict(result.statuses)
        gateways = {name: self._bind_gateway(gw) for name, gw in result.gateways.items()}
        for name, gw in gateways.items():
            translator = self._translators.setdefault(name, Translator())
            self.cache.set_snapshot(name, translator.translate(gw), context=ctx)
        for name in set(self._translators) - set(gateways):
            del self._translators[name]
            self.cache.delete(name)
        self.gateways = gateways
        self.proxies = dict(result.proxies)
        self.last_translation_s = time.perf_counter() - started
        assert self.infra is not None, "start() sets up infra before translating"
        await self.infra.apply(self.proxies)
        self.ready.set()

    async def _translate_loop(self) -> None:
        sub = self.resources.subscribe("translator")
        async for batch in sub:
            for change in batch:
                try:
                    await self._translate(change)
                except Exception:  # a translator bug must not stop the control plane
                    log.exception("translation failed; keeping the last snapshot")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from egobs import admin
        from egobs.xds.server import serve

        self.xds = await serve(
            self.cache, address=self.config.xds.address, port=self.config.xds.port
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
            )
        else:
            self.infra = ExternalInfra()
        self.admin = await admin.start(
            self, address=self.config.admin.address, port=self.config.admin.port
        )
        errors = self.provider.load_initial()
        for err in errors:
            log.warning("%s", err)
        self._tasks = [
            asyncio.create_task(self._translate_loop(), name="translate"),
            asyncio.create_task(self.provider.run(), name="provider"),
        ]

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
