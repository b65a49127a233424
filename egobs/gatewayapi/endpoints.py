"""The endpoint table: where each cluster's endpoints come from, and what they are now.

Routes name clusters (:class:`ir.Cluster` holds no endpoints); the endpoints of a Service
port live here, computed from its EndpointSlices. That split is what makes endpoint churn
cheap: when only EndpointSlices change, :meth:`EndpointTable.update_slices` recomputes the
rows of the Services whose slices changed and no route is looked at again.

One rule keeps the split honest: a cluster's *address type* (EDS for IPs, DNS for FQDN
slices) is part of the cluster, and so of every route naming it. An update that would flip
it reports so, and the caller translates from scratch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from egobs import ir
from egobs.resources import Backend
from egobs.resources.core import EndpointSlice, Service, ServicePort

__all__ = ["BackendKey", "EndpointTable", "ServiceKey", "backend_endpoints", "group_slices"]

ServiceKey = tuple[str, str]
"""``(namespace, name)`` of a Service."""
BackendKey = tuple[str, str]
"""``(namespace, name)`` of an Envoy Gateway Backend."""


@dataclass(frozen=True, slots=True)
class _ServicePortSource:
    """A cluster fed by one Service port: its endpoints are re-read when its slices change."""

    service: ServiceKey
    port: ServicePort
    transport: str  # "TCP" or "UDP"
    cluster_ip: str | None
    address_type: ir.AddressType


@dataclass(frozen=True, slots=True)
class _BackendSource:
    """A cluster fed by a Backend's ``spec.endpoints``."""

    backend: BackendKey
    address_type: ir.AddressType


def backend_endpoints(backend: Backend) -> tuple[ir.AddressType, tuple[ir.Endpoint, ...]]:
    """A Backend's endpoints and the address type of the cluster they make."""
    endpoints: list[ir.Endpoint] = []
    kinds: set[str] = set()
    for ep in backend.spec.endpoints:
        if ep.ip is not None:
            endpoints.append(ir.Endpoint(ep.ip.address, ep.ip.port))
            kinds.add("ip")
        elif ep.fqdn is not None:
            endpoints.append(ir.Endpoint(ep.fqdn.hostname, ep.fqdn.port))
            kinds.add("fqdn")
        elif ep.unix is not None:
            endpoints.append(ir.Endpoint(ep.unix.path, 0))
            kinds.add("unix")
    if "fqdn" in kinds:
        return ir.AddressType.FQDN, tuple(endpoints)
    if kinds == {"unix"}:
        return ir.AddressType.UNIX, tuple(endpoints)
    # IP and unix endpoints can share a static cluster; port 0 marks the unix ones.
    return ir.AddressType.IP, tuple(endpoints)


def group_slices(slices: Iterable[EndpointSlice]) -> dict[ServiceKey, list[EndpointSlice]]:
    """EndpointSlices per Service, each list sorted by slice name so that endpoint order
    never depends on file order."""
    grouped: dict[ServiceKey, list[EndpointSlice]] = defaultdict(list)
    for es in slices:
        grouped[(es.namespace, es.service_name)].append(es)
    return {k: sorted(v, key=lambda s: s.name) for k, v in grouped.items()}


class EndpointTable:
    """Owns the endpoints of every cluster a translator has resolved, and their sources.

    Rows are :class:`ir.ClusterEndpoints`; an unchanged row stays the very same object from
    one translation to the next, so the xDS translator tells changed assignments by
    identity. A table lives as long as the resolutions recorded in it: the Gateway API
    translator makes a new one whenever it recompiles routes from scratch, and otherwise
    keeps it, feeding it the current EndpointSlices with :meth:`update_slices`.

    Backends feed rows too (:meth:`backend`, :meth:`update_backends`). Services and Backends
    an EnvoyProxy's telemetry sink points at are *pinned*: their endpoints are
    copied into the proxy's telemetry (bootstrap or access-log cluster), not read from
    here, so a change to their slices needs a full translation.
    """

    def __init__(self, slices: Sequence[EndpointSlice]) -> None:
        self._slice_list: list[EndpointSlice] = list(slices)
        self._slices = group_slices(slices)
        self._sources: dict[str, _ServicePortSource] = {}
        self._by_service: dict[ServiceKey, set[str]] = defaultdict(set)
        self._backend_sources: dict[str, _BackendSource] = {}
        self._by_backend: dict[BackendKey, set[str]] = defaultdict(set)
        self._rows: dict[str, ir.ClusterEndpoints] = {}
        # ("Service" | "Backend", namespace, name) of what telemetry copies endpoints from.
        self._pinned: set[tuple[str, str, str]] = set()

    # ------------------------------------------------------------------ recording

    def service_port(
        self, cluster: str, svc: Service, sp: ServicePort, transport: str
    ) -> ir.AddressType:
        """Record that ``cluster`` is fed by ``sp`` of ``svc``; returns its address type."""
        key = (svc.namespace, svc.name)
        ip = svc.spec.cluster_ip
        address_type, endpoints = _service_endpoints(self._slices.get(key), sp, transport, ip)
        source = _ServicePortSource(key, sp, transport, ip, address_type)
        if self._sources.get(cluster) != source:
            self._sources[cluster] = source
            self._by_service[key].add(cluster)
            self._set(cluster, endpoints)
        return address_type

    def backend(
        self,
        cluster: str,
        backend: BackendKey,
        address_type: ir.AddressType,
        endpoints: tuple[ir.Endpoint, ...],
    ) -> None:
        """Record that ``cluster`` is fed by a Backend's ``spec.endpoints``."""
        self._backend_sources[cluster] = _BackendSource(backend, address_type)
        self._by_backend[backend].add(cluster)
        self._set(cluster, endpoints)

    def endpoints(self, cluster: str) -> tuple[ir.Endpoint, ...]:
        row = self._rows.get(cluster)
        return row.endpoints if row is not None else ()

    def pin(self, kind: str, namespace: str, name: str) -> None:
        """Mark a Service or Backend whose endpoints are copied elsewhere (see the class
        docstring)."""
        self._pinned.add((kind, namespace, name))

    def _set(self, cluster: str, endpoints: tuple[ir.Endpoint, ...]) -> None:
        row = self._rows.get(cluster)
        if row is None or row.endpoints != endpoints:
            self._rows[cluster] = ir.ClusterEndpoints(cluster, endpoints)

    # ------------------------------------------------------------------ reading

    def rows(self, clusters: Iterable[str]) -> tuple[ir.ClusterEndpoints, ...]:
        """The rows of ``clusters`` that the table knows, in the order given (the IR keeps
        them sorted by cluster name; the caller's names already are)."""
        rows = self._rows
        return tuple(rows[name] for name in clusters if name in rows)

    # ------------------------------------------------------------------ updating

    def same_slices(self, slices: Sequence[EndpointSlice]) -> bool:
        old = self._slice_list
        return len(old) == len(slices) and all(a is b for a, b in zip(old, slices, strict=True))

    def update_slices(self, slices: Sequence[EndpointSlice]) -> frozenset[str] | None:
        """Take the current EndpointSlices; returns the clusters whose rows changed.

        Slices are compared by identity (the provider hands back the very same objects for
        what it did not reload; a copy counts as a change and costs a recomputed row, never
        a wrong one). None when the change cannot be made here: a cluster's address type
        would flip, or a pinned Service changed. The table is then left as it was.
        """
        old_ids = set(map(id, self._slice_list))
        new_ids = set(map(id, slices))
        touched: set[ServiceKey] = set()
        for es in self._slice_list:
            if id(es) not in new_ids:
                touched.add((es.namespace, es.service_name))
        added = [es for es in slices if id(es) not in old_ids]
        touched.update((es.namespace, es.service_name) for es in added)
        if any(("Service", *key) in self._pinned for key in touched):
            return None
        # Regroup the touched Services only: their kept slices plus the added ones.
        grouped = dict(self._slices)
        for service in touched:
            kept = [es for es in grouped.get(service, ()) if id(es) in new_ids]
            grouped[service] = kept
        for es in added:
            grouped[(es.namespace, es.service_name)].append(es)
        for service in touched:
            if grouped[service]:
                grouped[service].sort(key=lambda s: s.name)
            else:
                del grouped[service]
        updates: dict[str, tuple[ir.Endpoint, ...]] = {}
        for service in touched:
            for cluster in self._by_service.get(service, ()):
                src = self._sources[cluster]
                address_type, endpoints = _service_endpoints(
                    grouped.get(service), src.port, src.transport, src.cluster_ip
                )
                if address_type is not src.address_type:
                    return None
                updates[cluster] = endpoints
        self._slice_list = list(slices)
        self._slices = grouped
        return self._apply(updates)

    def update_backends(
        self, backends: Mapping[BackendKey, tuple[ir.AddressType, tuple[ir.Endpoint, ...]]]
    ) -> frozenset[str] | None:
        """Take new endpoints of Backends (by key: address type and endpoints, as
        :func:`backend_endpoints` gives them); returns the clusters whose rows changed, or
        None when the change cannot be made here (as :meth:`update_slices`)."""
        if any(("Backend", *key) in self._pinned for key in backends):
            return None
        updates: dict[str, tuple[ir.Endpoint, ...]] = {}
        for key, (address_type, endpoints) in backends.items():
            for cluster in self._by_backend.get(key, ()):
                if self._backend_sources[cluster].address_type is not address_type:
                    return None
                updates[cluster] = endpoints
        return self._apply(updates)

    def _apply(self, updates: Mapping[str, tuple[ir.Endpoint, ...]]) -> frozenset[str]:
        """Set new endpoints of clusters; the clusters whose rows changed."""
        changed = set()
        for cluster, endpoints in updates.items():
            before = self._rows.get(cluster)
            self._set(cluster, endpoints)
            if self._rows[cluster] is not before:
                changed.add(cluster)
        return frozenset(changed)

    def current(self) -> Mapping[str, ir.ClusterEndpoints]:
        return self._rows


def _service_endpoints(
    slices: list[EndpointSlice] | None, sp: ServicePort, transport: str, cluster_ip: str | None
) -> tuple[ir.AddressType, tuple[ir.Endpoint, ...]]:
    if not slices:
        # Without EndpointSlices (no cluster), a ClusterIP is still a usable address.
        if cluster_ip and cluster_ip != "None":
            return ir.AddressType.IP, (ir.Endpoint(cluster_ip, sp.port),)
        return ir.AddressType.IP, ()
    ips: set[ir.Endpoint] = set()
    fqdns: set[ir.Endpoint] = set()
    for es in slices:
        target = _slice_port(es, sp, transport)
        out = fqdns if es.address_type == "FQDN" else ips
        for ep in es.endpoints:
            # Unknown readiness counts as ready, as kube-proxy treats it.
            if ep.conditions.ready is False:
                continue
            # Addresses of one endpoint are fungible; the first is the canonical one.
            out.add(ir.Endpoint(ep.addresses[0], target))
    if ips or not fqdns:
        return ir.AddressType.IP, tuple(sorted(ips, key=_endpoint_order))
    return ir.AddressType.FQDN, tuple(sorted(fqdns, key=_endpoint_order))


def _slice_port(es: EndpointSlice, sp: ServicePort, transport: str) -> int:
    """The port endpoints of ``es`` serve ``sp`` on: the slice port named like the Service
    port, else the Service's numeric targetPort, else the Service port itself."""
    want = sp.name or ""
    for p in es.ports:
        if (p.name or "") == want and p.protocol == transport and p.port is not None:
            return p.port
    if isinstance(sp.target_port, int):
        return sp.target_port
    return sp.port


def _endpoint_order(ep: ir.Endpoint) -> tuple[str, int]:
    return (ep.host, ep.port)
