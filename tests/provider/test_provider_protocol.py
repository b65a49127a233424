"""The Provider protocol is the control plane's only view of a provider.

An in-memory provider (what a Kubernetes provider will look like to the control plane)
runs a real ControlPlane: what it publishes is translated and served, the trace context it
carries is continued by the change's spans, its per-source errors show in /debug/status,
and stop() is awaited.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from egobs.config import Config
from egobs.controlplane import ControlPlane
from egobs.provider import FileProvider, Provider, ProviderEvent, ResourceSnapshot
from egobs.provider.base import Publish, Report
from egobs.resources import ResourceError, Resources, Source, load_text
from egobs.telemetry.core import Telemetry
from egobs.telemetry.tracing import setup_tracing

RESOURCES = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: egobs}
spec: {controllerName: gateway.egobs.dev/gatewayclass-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: default}
spec:
  gatewayClassName: egobs
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: eg}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
"""
PARENT = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
)
SOURCE = "memory://team-a"


class MemoryProvider:
    """A Provider whose one source is a list in memory."""

    kind = "memory"

    def __init__(self, *, publish: Publish, report: Report) -> None:
        self._publish = publish
        self._report = report
        self.stopped = False

    async def start(self) -> None:
        now = time.time()
        self._publish(ResourceSnapshot(Resources.of(load_text(RESOURCES)), now, PARENT))
        error = ResourceError(Source(SOURCE, 2, 1), "HTTPRoute default/bad: spec.rules: bad")
        self._report(ProviderEvent(now, created=(SOURCE,), errors=(error,), changed=True))

    async def stop(self) -> None:
        self.stopped = True

    def errors(self) -> dict[str, list[ResourceError]]:
        error = ResourceError(Source(SOURCE, 2, 1), "HTTPRoute default/bad: spec.rules: bad")
        return {SOURCE: [error]}


def test_a_provider_other_than_files_drives_the_control_plane() -> None:
    exporter = InMemorySpanExporter()
    telemetry = Telemetry(metrics=False, tracing=setup_tracing(enabled=True, exporter=exporter))
    config = Config.model_validate(
        {
            "xds": {"address": "127.0.0.1", "port": 0},
            "admin": {"address": "127.0.0.1", "port": 0},
            "infra": {"type": "External"},
        }
    )
    made: list[MemoryProvider] = []

    def factory(*, publish: Publish, report: Report) -> Provider:
        made.append(MemoryProvider(publish=publish, report=report))
        return made[-1]

    async def scenario() -> dict[str, Any]:
        cp = ControlPlane(config, telemetry=telemetry, provider=factory)
        await cp.start()
        try:
            deadline = time.monotonic() + 10
            while cp.cache.get("default/eg") is None or not cp.ready.is_set():
                assert time.monotonic() < deadline, "no snapshot from the provider's resources"
                await asyncio.sleep(0.01)
            assert cp.admin is not None
            url = f"http://127.0.0.1:{cp.admin.port}/debug/status"
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
            return dict(json.loads(body))
        finally:
            await cp.stop()

    status = asyncio.run(scenario())
    assert made and made[0].stopped
    assert (
        status["providerErrors"]
        == [{"file": SOURCE, "errors": [f"{SOURCE}:2:1: HTTPRoute default/bad: spec.rules: bad"]}]
        or status["providerErrors"][0]["file"] == SOURCE
    )
    routes = [r for r in status["resources"] if r["kind"] == "HTTPRoute"]
    assert routes and routes[0]["status"]["parents"][0]["conditions"][0]["status"] == "True"
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.name == "provider.event"]
    assert roots, [s.name for s in spans]
    assert roots[0].context.trace_id == PARENT.trace_id
    assert roots[0].parent is not None and roots[0].parent.span_id == PARENT.span_id
    translate = [s for s in spans if s.name == "translate"]
    assert translate and translate[0].context.trace_id == PARENT.trace_id


def test_the_file_provider_is_a_provider() -> None:
    provider: Provider = FileProvider([], publish=lambda _: None)
    assert provider.kind == "file"
    assert provider.errors() == {}


class BlockingInfra:
    """Infra whose apply waits until released, as one stuck in an Envoy's SIGTERM grace."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.applying = asyncio.Event()
        self.applied: list[set[str]] = []

    async def apply(self, proxies: Any) -> None:
        self.applying.set()
        await self.release.wait()
        self.applied.append(set(proxies))

    async def shutdown(self) -> None:
        self.release.set()

    def status(self) -> dict[str, Any]:
        return {}


SECOND_GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: second, namespace: default}
spec:
  gatewayClassName: egobs
  listeners: [{name: http, protocol: HTTP, port: 8080}]
"""


def test_a_slow_infra_apply_does_not_hold_back_the_next_snapshot() -> None:
    """While infra is applying one change, the next change is translated and its snapshot
    installed for the proxies; infra then applies the latest proxies."""
    config = Config.model_validate(
        {
            "xds": {"address": "127.0.0.1", "port": 0},
            "admin": {"address": "127.0.0.1", "port": 0},
            "infra": {"type": "External"},
        }
    )
    made: list[MemoryProvider] = []

    def factory(*, publish: Publish, report: Report) -> Provider:
        made.append(MemoryProvider(publish=publish, report=report))
        return made[-1]

    async def until(cond: Any, what: str) -> None:
        deadline = time.monotonic() + 10
        while not cond():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        cp = ControlPlane(config, telemetry=Telemetry(metrics=False), provider=factory)
        await cp.start()
        try:
            await until(cp.ready.is_set, "first apply")
            infra = BlockingInfra()
            cp.infra = infra
            base = Resources.of(load_text(RESOURCES))
            objs = [*load_text(RESOURCES), *load_text(SECOND_GATEWAY)]
            made[0]._publish(ResourceSnapshot(base, time.time()))  # same content: re-applied
            await until(infra.applying.is_set, "infra apply started")
            made[0]._publish(ResourceSnapshot(Resources.of(objs), time.time()))
            await until(lambda: cp.cache.get("default/second") is not None, "second snapshot")
            assert not infra.applied, "built while the first apply still waits"
            infra.release.set()
            await until(lambda: {"default/eg", "default/second"} in infra.applied, "latest")
        finally:
            await cp.stop()

    asyncio.run(scenario())
