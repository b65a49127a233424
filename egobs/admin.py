"""The control plane's admin HTTP server (127.0.0.1 by default).

* ``/healthz``: the process is up.
* ``/readyz``: the first snapshot is built and available to proxies.
* ``/metrics``: every ``egobs_`` metric (Prometheus text format; see docs/metrics.md).
* ``/debug/status``: computed Gateway API statuses (with proxy rejections merged in), the
  proxies egobs runs and their bound listener addresses, xDS rejections in force, provider
  load errors — what ``egobs status`` reads.
* ``/debug/syncz``: per connected proxy and type, sent vs acked version, last NACK and
  connected-since, and the Envoy's own admin address when egobs runs it (``envoyAdmin``,
  host infra) — like ``istioctl proxy-status``; what ``egobs status --proxies`` reads.
* ``/debug/config_dump``: the current xDS resources per Gateway, secrets redacted
  (``?gateway=<ns>/<name>`` for one).
* ``/debug/logs``: the control plane's last log records (JSON lines), what ``egobs
  collect`` bundles.

aiohttp serves it from the control plane's own event loop, so handlers read live state
without locks.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic.alias_generators import to_camel

from egobs import ir
from egobs.infra.binding import HostBinding
from egobs.infra.host import ProxyStatus as InfraStatus
from egobs.listen import ListenError
from egobs.resources import ResourceError
from egobs.telemetry.logging import http_logger
from egobs.telemetry.metrics import REGISTRY
from egobs.xds.dump import config_dump
from egobs.xds.rejections import Rejection
from egobs.xds.resources import ResourceSet
from egobs.xds.server import ProxyStatus, TypeStatus
from egobs.xds.snapshot import Snapshot

__all__ = ["AdminServer", "AdminView", "start", "status_document", "syncz_document"]


class AdminView(Protocol):
    """What the admin server reads of the running control plane: a read-only view.

    Every member reflects the control plane's state at the moment it is read; handlers run
    on the control plane's event loop, so nothing changes while one is answering.
    """

    @property
    def ready(self) -> bool:
        """Whether the first snapshot is built and its proxies applied."""
        ...

    def statuses(self) -> Mapping[tuple[str, str, str], dict[str, Any]]:
        """Gateway API statuses by (kind, namespace, name), proxies' rejections merged in."""
        ...

    @property
    def proxies(self) -> Mapping[str, ir.Proxy]: ...

    @property
    def gateways(self) -> Mapping[str, ir.Gateway]: ...

    @property
    def resource_sets(self) -> Mapping[str, ResourceSet]: ...

    @property
    def binding(self) -> HostBinding: ...

    def provider_errors(self) -> Mapping[str, Sequence[ResourceError]]: ...

    def rejections(self) -> Sequence[Rejection]: ...

    def connected_proxies(self) -> Sequence[ProxyStatus]: ...

    def snapshot(self, node_cluster: str) -> Snapshot | None: ...

    def infra_status(self) -> Mapping[str, InfraStatus]: ...

    def recent_logs(self) -> Sequence[str]:
        """The control plane's last log records, JSON lines, oldest first."""
        ...


def _url_host(address: str) -> str:
    # A listener on every interface is reached on loopback from here.
    if address in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{address}]" if ":" in address else address


def status_document(view: AdminView) -> dict[str, Any]:
    """Everything ``egobs status`` shows, as plain JSON-able data."""
    objects = []
    for (kind, ns, name), status in sorted(view.statuses().items()):
        objects.append({"kind": kind, "namespace": ns, "name": name, "status": status})
    proxies = []
    for name, proxy in sorted(view.proxies.items()):
        bound = view.gateways.get(name)
        listeners = []
        for lis in proxy.listeners:
            listeners.append(
                {
                    "name": lis.name,
                    "protocol": lis.protocol.value,
                    "port": lis.port,
                    "address": f"{view.binding.listener_address}:{view.binding.port_map.map(lis.port)}",
                }
            )
        entry: dict[str, Any] = {
            "name": name,
            "listeners": listeners,
            "programmed": bound is not None,
        }
        if proxy.stats.prometheus is not None:
            stats = proxy.stats.prometheus
            entry["stats"] = f"http://{_url_host(stats.address)}:{stats.port}/stats/prometheus"
        state = _infra_state(view, name)
        if state is not None:
            entry["infra"] = state
        proxies.append(entry)
    errors = [
        {"file": f, "errors": [str(e) for e in errs]}
        for f, errs in sorted(view.provider_errors().items())
        if errs
    ]
    rejections = [
        {
            "gateway": r.gateway,
            "node": r.node_id,
            "typeUrl": r.type_url,
            "version": r.version,
            "message": r.message,
            "at": _rfc3339(r.at),
        }
        for r in sorted(view.rejections(), key=lambda r: (r.gateway, r.node_id, r.type_url))
    ]
    return {
        "resources": objects,
        "proxies": proxies,
        "xdsRejections": rejections,
        "providerErrors": errors,
    }


def _rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def type_state(t: TypeStatus) -> str:
    """SYNCED (acked what was sent last), STALE (in flight), NACK (rejected what was sent
    last; the proxy keeps its previous config), NOT SENT."""
    if t.sent_version is None:
        return "SYNCED" if t.acked_version is not None else "NOT SENT"
    if t.acked_version == t.sent_version:
        return "SYNCED"
    if t.nack_version is not None and t.nack_version == t.sent_version:
        return "NACK"
    return "STALE"


def syncz_document(view: AdminView) -> dict[str, Any]:
    """Per connected proxy: per type, sent vs acked version and last NACK."""
    out = []
    registry = view.connected_proxies()
    # The admin address of each Envoy egobs runs (host infra), by the node id it connects as.
    infra = view.infra_status()
    envoy_admin = {s.node_id: s.admin_address for s in infra.values() if s.node_id}
    for proxy in sorted(registry, key=lambda p: (p.cluster, p.node_id, p.stream_id)):
        snap = view.snapshot(proxy.cluster)
        types: dict[str, Any] = {}
        for type_url, t in sorted(proxy.types.items()):
            entry: dict[str, Any] = {
                "typeUrl": type_url,
                "state": type_state(t),
                "sentVersion": t.sent_version,
                "sentAt": _rfc3339(t.sent_at),
                "sentSnapshot": t.sent_snapshot,
                "ackedVersion": t.acked_version,
                "ackedAt": _rfc3339(t.acked_at),
                "ackedSnapshot": t.acked_snapshot,
            }
            if t.nack_version is not None:
                entry["lastNack"] = {
                    "version": t.nack_version,
                    "message": t.nack_message,
                    "at": _rfc3339(t.nack_at),
                }
            types[_short(type_url)] = entry
        out.append(
            {
                "node": proxy.node_id,
                "gateway": proxy.cluster,
                "mode": "delta" if proxy.delta else "sotw",
                "peer": proxy.peer,
                "connectedSince": _rfc3339(proxy.connected_since),
                "latestSnapshot": snap.version if snap is not None else None,
                "envoyAdmin": envoy_admin.get(proxy.node_id),
                "synced": bool(types) and all(v["state"] == "SYNCED" for v in types.values()),
                "types": types,
            }
        )
    return {"proxies": out}


def _short(type_url: str) -> str:
    short = type_url.rsplit(".", 1)[-1]
    return {
        "Cluster": "CDS",
        "ClusterLoadAssignment": "EDS",
        "Listener": "LDS",
        "ScopedRouteConfiguration": "SRDS",
        "RouteConfiguration": "RDS",
        "Secret": "SDS",
    }.get(short, short)


def _infra_state(view: AdminView, name: str) -> dict[str, Any] | None:
    """A proxy's infra state in the documents' style: camelCase keys, RFC 3339 times."""
    state = view.infra_status().get(name)
    if state is None:
        return None
    out: dict[str, Any] = {}
    for key, value in dataclasses.asdict(state).items():
        if key == "started_at":
            value = _rfc3339(value)
        out[to_camel(key)] = _jsonable(value)
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    return str(v)


# What aiohttp logs about the admin server's requests, under egobs's name (so
# telemetry.logging.components can set its level) and one line per bad request.
_http_log = http_logger("egobs.admin.http")


@dataclasses.dataclass
class AdminServer:
    runner: web.AppRunner
    address: str
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


def _bearer_for_debug(token: str) -> Any:
    """Middleware: ``/debug/*`` answers 401 unless the request carries ``token``."""
    want = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/debug/"):
            got = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(got, want):
                return web.Response(
                    status=401,
                    text="a bearer token is required (admin.tokenFile)\n",
                    headers={"WWW-Authenticate": 'Bearer realm="egobs"'},
                )
        response: web.StreamResponse = await handler(request)
        return response

    return check


async def start(
    view: AdminView, *, address: str = "127.0.0.1", port: int = 0, token: str | None = None
) -> AdminServer:
    """Serve ``view`` on ``address:port`` (0: a free port, see ``.port``); raises
    :class:`~egobs.listen.ListenError` when the port cannot be bound. With ``token``,
    ``/debug/*`` require ``Authorization: Bearer <token>``."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if view.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready: no snapshot built yet\n")

    async def debug_status(_: web.Request) -> web.Response:
        return web.json_response(status_document(view))

    async def debug_syncz(_: web.Request) -> web.Response:
        return web.json_response(syncz_document(view))

    async def debug_config_dump(request: web.Request) -> web.Response:
        wanted = request.query.get("gateway")
        sets = view.resource_sets
        if wanted is not None and wanted not in sets:
            return web.json_response({"error": f"no snapshot for gateway {wanted!r}"}, status=404)
        names = [wanted] if wanted is not None else sorted(sets)
        return web.json_response({name: config_dump(sets[name]) for name in names})

    async def debug_logs(_: web.Request) -> web.Response:
        return web.Response(text="".join(line + "\n" for line in view.recent_logs()))

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(middlewares=[_bearer_for_debug(token)] if token else [])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/debug/status", debug_status)
    app.router.add_get("/debug/syncz", debug_syncz)
    app.router.add_get("/debug/config_dump", debug_config_dump)
    app.router.add_get("/debug/logs", debug_logs)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, logger=_http_log)
    await runner.setup()
    site = web.TCPSite(runner, address, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError.from_os_error("admin", address, port, exc) from None
    # With port 0 the OS picks; the runner knows which.
    bound = runner.addresses[0][1] if runner.addresses else port
    return AdminServer(runner, address, bound)
