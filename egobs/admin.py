"""The control plane's admin HTTP server (127.0.0.1 by default).

``/healthz`` (process up), ``/readyz`` (first snapshot built), ``/debug/status`` (computed
Gateway API statuses, the proxies egobs runs and their bound listener addresses, provider
load errors) — what ``egobs status`` reads.

aiohttp serves it from the control plane's own event loop, so handlers read live state
without locks.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from egobs.controlplane import ControlPlane

__all__ = ["AdminServer", "start", "status_document"]


def status_document(cp: ControlPlane) -> dict[str, Any]:
    """Everything ``egobs status`` shows, as plain JSON-able data."""
    objects = []
    for (kind, ns, name), status in sorted(cp.statuses.items()):
        objects.append({"kind": kind, "namespace": ns, "name": name, "status": status})
    proxies = []
    for name, proxy in sorted(cp.proxies.items()):
        bound = cp.gateways.get(name)
        listeners = []
        for lis in proxy.listeners:
            listeners.append(
                {
                    "name": lis.name,
                    "protocol": lis.protocol.value,
                    "port": lis.port,
                    "address": f"{cp.config.infra.host.listener_address}:{cp.port_map.map(lis.port)}",
                }
            )
        entry: dict[str, Any] = {
            "name": name,
            "listeners": listeners,
            "programmed": bound is not None,
        }
        state = _infra_state(cp, name)
        if state is not None:
            entry["infra"] = state
        proxies.append(entry)
    errors = [
        {"file": f, "errors": [str(e) for e in errs]}
        for f, errs in sorted(cp.provider.status.errors.items())
        if errs
    ]
    return {"resources": objects, "proxies": proxies, "providerErrors": errors}


def _infra_state(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    if cp.infra is None:
        return None
    state = cp.infra.status().get(name)
    if state is None:
        return None
    return {k: _jsonable(v) for k, v in dataclasses.asdict(state).items()}


def _jsonable(v: Any) -> Any:
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    return str(v)


@dataclasses.dataclass
class AdminServer:
    runner: web.AppRunner
    address: str
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(cp: ControlPlane, *, address: str = "127.0.0.1", port: int = 0) -> AdminServer:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if cp.ready.is_set():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready: no snapshot built yet\n")

    async def debug_status(_: web.Request) -> web.Response:
        return web.json_response(status_document(cp))

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/debug/status", debug_status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, address, port)
    await site.start()
    # With port 0 the OS picks; the runner knows which.
    bound = runner.addresses[0][1] if runner.addresses else port
    return AdminServer(runner, address, bound)
