"""The incremental IR → xDS translator."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2, scoped_route_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from egobs import ir

from ..resources import ResourceSet
from . import listener as _listener
from ._common import BLACKHOLE_CLUSTER
from .accesslog import build_telemetry_cluster, telemetry_clusters
from .cluster import (
    build_blackhole_cluster,
    build_cluster,
    build_load_assignment,
    inline_endpoints,
)
from .route import (
    build_route_configuration,
    build_routes,
    build_scope,
    build_virtual_host,
    virtual_host_name,
)
from .secret import build_secret

__all__ = ["HOSTNAME_SCOPES_MIN_ROUTES", "Translator", "translate"]

HOSTNAME_SCOPES_MIN_ROUTES = 1000
"""From how many Envoy routes a route table of exact hostnames is split by hostname.

Envoy rebuilds a whole RouteConfiguration on every update: at 10,000 routes that is
60-100 ms of its main thread for a one-route change. Split into one table per hostname
(scoped routes keyed on the host), a change ships and rebuilds only its hostname's table.
Below this size a table rebuilds in a few milliseconds and splitting gains nothing.
"""

# A cluster message is made of its IR value, plus its endpoints when it carries them inline.
_ClusterKey = tuple[ir.Cluster, tuple[ir.Endpoint, ...] | None]
_Assignment = tuple[ir.ClusterEndpoints | None, endpoint_pb2.ClusterLoadAssignment]
_RouteMsgs = tuple[ir.HTTPRoute, tuple[rc.Route, ...]]


@dataclass(frozen=True, slots=True)
class _HostTable:
    """One planned route table's virtual hosts, in order, with their hostnames."""

    name: str
    hostnames: tuple[str, ...]
    vhosts: tuple[rc.VirtualHost, ...]

    def routes(self) -> int:
        return sum(len(v.routes) for v in self.vhosts)

    def exact(self) -> bool:
        return all(h != "*" and not h.startswith("*.") for h in self.hostnames)


@dataclass(slots=True)
class _VhostState:
    """One virtual host as last translated."""

    ir_ids: tuple[int, ...]  # ids of its IR routes, in order (held alive by ``routes``)
    routes: dict[int, _RouteMsgs]  # id of IR route -> the route and its Envoy routes
    clusters: dict[str, ir.Cluster]  # the clusters its routes use, in first-use order
    message_ids: tuple[int, ...]  # ids of the route messages in ``message`` (held by routes)
    message: rc.VirtualHost


@dataclass(slots=True)
class _Cache:
    """What one translation of a Gateway produced, keyed by what it was made from.

    Clusters and secrets are keyed by their IR value. Routes are found by the identity of
    their IR object, per virtual host: the Gateway API translator hands back the very same
    objects for routes that did not change, and hashing 10,000 nested IR values costs more
    than the rest of a one-route update; an identity miss falls back to an IR value lookup
    over the last translation's routes (built only when there is a miss). Route
    configurations are keyed by the identity of the virtual host messages they contain.
    Identity keys are exact: each entry holds its objects alive, so no other object can
    have the same id while the entry exists.
    """

    # Per (route configuration, hostname): the host's IR routes and what was made
    # of them. A host whose IR routes are the very same objects as last time is carried over
    # whole; only a changed host looks at its routes one by one.
    vhosts: dict[tuple[str, str], _VhostState] = field(default_factory=dict)
    route_configs: dict[
        tuple[Any, ...], tuple[route_pb2.RouteConfiguration, list[rc.VirtualHost]]
    ] = field(default_factory=dict)
    clusters: dict[_ClusterKey, cluster_pb2.Cluster] = field(default_factory=dict)
    # Per EDS cluster name: the endpoint row its assignment was made from (None: no row).
    assignments: dict[str, _Assignment] = field(default_factory=dict)
    # The Gateway translated and what came of it, for the endpoint-only shortcut.
    gateway: ir.Gateway | None = None
    ir_clusters: dict[str, ir.Cluster] = field(default_factory=dict)
    result: ResourceSet | None = None
    cluster_stats: ir.ClusterStats = field(default_factory=ir.ClusterStats)
    client_certificate: str | None = None  # the SDS name TLS clusters present
    virtual_host_stats: bool = False
    route_stats: bool = False
    blackhole: cluster_pb2.Cluster | None = None
    listeners: dict[_listener.ListenerPlan | _listener.UDPListenerPlan, listener_pb2.Listener] = (
        field(default_factory=dict)
    )
    secrets: dict[ir.Certificate, secret_pb2.Secret] = field(default_factory=dict)
    # Per scope name (which is also its hostname's virtual host name): the scope message.
    scopes: dict[str, scoped_route_pb2.ScopedRouteConfiguration] = field(default_factory=dict)


class Translator:
    """Translates Gateways, rebuilding only the resources whose IR changed.

    Keep one Translator for the life of the control plane and call :meth:`translate` with
    each new IR of a Gateway. Messages of unchanged IR values are returned as the very same
    objects as last time; treat them as read-only. Per Gateway, the cache holds only what
    the last translation used, so it never outgrows one Gateway's resources; call
    :meth:`forget` when a Gateway goes away.

    ``last_stats`` counts, for the last translation, the messages built and reused per kind
    (``routes_built``, ``routes_reused``, ``clusters_built``...). A Translator is not
    thread-safe: call it from one thread or task at a time.

    ``hostname_scopes_min_routes``: from how many routes a Gateway's largest route table of
    exact hostnames is served as one RouteConfiguration per hostname, named by scopes
    keyed on the request's host (None: never; see :data:`HOSTNAME_SCOPES_MIN_ROUTES`).
    """

    def __init__(
        self, *, hostname_scopes_min_routes: int | None = HOSTNAME_SCOPES_MIN_ROUTES
    ) -> None:
        self._caches: dict[str, _Cache] = {}
        self.last_stats: Counter[str] = Counter()
        # None: route tables are never split by hostname.
        self._scopes_from = hostname_scopes_min_routes

    def forget(self, gateway_name: str) -> None:
        self._caches.pop(gateway_name, None)

    def translate(self, gateway: ir.Gateway) -> ResourceSet:
        old = self._caches.get(gateway.name) or _Cache()
        if old.gateway is not None and _same_but_endpoints(old.gateway, gateway):
            return self._endpoints_only(gateway, old)
        new = _Cache(virtual_host_stats=gateway.virtual_host_stats, route_stats=gateway.route_stats)
        if (old.virtual_host_stats, old.route_stats) != (new.virtual_host_stats, new.route_stats):
            old = _Cache()  # every virtual host (or route) changes: nothing route-level is kept
        stats: Counter[str] = Counter()
        p = _listener.plan(gateway)

        clusters: dict[str, ir.Cluster] = {}
        names = {name for name, _ in p.route_configs}
        # Route configurations of the last translation that are gone (e.g. renamed when the
        # first listener on a port changed): their routes may be found by value elsewhere.
        gone = {config for config, _ in old.vhosts} - names
        tables = [
            self._host_table(name, ir_listeners, old, new, clusters, stats, gone)
            for name, ir_listeners in p.route_configs
        ]
        split = self._table_to_split(tables)
        route_configs: dict[str, route_pb2.RouteConfiguration] = {}
        scoped_routes: dict[str, scoped_route_pb2.ScopedRouteConfiguration] = {}
        for table in tables:
            if table is split:
                _split_table(table, old, new, stats, route_configs, scoped_routes)
            else:
                route_configs[table.name] = _whole_table(table, old, new, stats)
        for cluster in p.clusters:
            clusters.setdefault(cluster.name, cluster)

        cluster_msgs: dict[str, cluster_pb2.Cluster] = {}
        assignments: dict[str, endpoint_pb2.ClusterLoadAssignment] = {}
        new.cluster_stats = gateway.cluster_stats
        new.client_certificate = _client_certificate(gateway)
        if (old.cluster_stats, old.client_certificate) != (
            new.cluster_stats,
            new.client_certificate,
        ):
            old.clusters = {}  # every cluster carries the stats options (TLS ones the name)
        rows = {row.cluster: row for row in gateway.endpoints}
        for name, cluster in clusters.items():
            row = rows.get(name)
            endpoints = row.endpoints if row is not None else ()
            inline = inline_endpoints(cluster)
            key = (cluster, endpoints if inline else None)
            msg = old.clusters.pop(key, None)
            if msg is None:
                msg = new.clusters.get(key) or build_cluster(
                    cluster,
                    endpoints=endpoints,
                    stats=gateway.cluster_stats,
                    client_certificate=new.client_certificate,
                )
                stats["clusters_built"] += 1
            else:
                stats["clusters_reused"] += 1
            new.clusters[key] = msg
            cluster_msgs[name] = msg
            if not inline:
                assignment = _assignment(cluster, row, old.assignments.get(name), stats)
                new.assignments[name] = assignment
                assignments[name] = assignment[1]
        if p.blackhole:
            new.blackhole = old.blackhole or build_blackhole_cluster()
            cluster_msgs[BLACKHOLE_CLUSTER] = new.blackhole
        for telemetry in telemetry_clusters(gateway):
            cluster_msgs[telemetry.name] = build_telemetry_cluster(telemetry)

        listeners: dict[str, listener_pb2.Listener] = {}
        for lp in p.listeners:
            if split is not None:
                lp = _listener.split_by_hostname(lp, split.name)
            msg = old.listeners.pop(lp, None)
            if msg is None:
                msg = new.listeners.get(lp) or _listener.build_listener(lp)
                stats["listeners_built"] += 1
            else:
                stats["listeners_reused"] += 1
            new.listeners[lp] = msg
            listeners[lp.name] = msg

        secrets: dict[str, secret_pb2.Secret] = {}
        served = [c for http in gateway.http if http.tls is not None for c in http.tls.certificates]
        if gateway.backend_client_certificate is not None and any(
            c.tls is not None for c in clusters.values()
        ):
            served.append(gateway.backend_client_certificate)
        for cert in served:
            if cert.name in secrets:
                continue
            secret = old.secrets.pop(cert, None) or new.secrets.get(cert)
            if secret is None:
                secret = build_secret(cert)
                stats["secrets_built"] += 1
            new.secrets[cert] = secret
            secrets[cert.name] = secret

        result = ResourceSet(
            listeners=listeners,
            routes=route_configs,
            scoped_routes=scoped_routes,
            clusters=cluster_msgs,
            endpoints=assignments,
            secrets=secrets,
        )
        new.gateway, new.ir_clusters, new.result = gateway, clusters, result
        self._caches[gateway.name] = new
        self.last_stats = stats
        return result

    def _endpoints_only(self, gateway: ir.Gateway, cache: _Cache) -> ResourceSet:
        """The last resources with the assignments of changed endpoint rows rebuilt.

        Taken when the Gateway equals the last one but for its endpoint table, as after an
        EndpointSlice change: no listener, route or virtual host is looked at, and an
        unchanged row (the very same object) keeps its assignment. A cluster that carries
        its endpoints inline (DNS, unix) gets a new Cluster message instead.
        """
        assert cache.result is not None and cache.gateway is not None
        stats: Counter[str] = Counter()
        last = cache.result
        clusters, assignments = last.clusters, last.endpoints
        before = {row.cluster: row for row in cache.gateway.endpoints}
        for row in gateway.endpoints:
            previous = before.get(row.cluster)
            if previous is row or previous == row:
                continue
            cluster = cache.ir_clusters.get(row.cluster)
            if cluster is None:
                continue  # a row no route of this Gateway uses
            if inline_endpoints(cluster):
                if clusters is last.clusters:
                    clusters = dict(clusters)
                msg = build_cluster(
                    cluster,
                    endpoints=row.endpoints,
                    stats=gateway.cluster_stats,
                    client_certificate=cache.client_certificate,
                )
                for key in [k for k in cache.clusters if k[0] == cluster]:
                    del cache.clusters[key]
                cache.clusters[(cluster, row.endpoints)] = msg
                clusters[row.cluster] = msg
                stats["clusters_built"] += 1
                continue
            if assignments is last.endpoints:
                assignments = dict(assignments)
            assignment = _assignment(cluster, row, cache.assignments.get(row.cluster), stats)
            cache.assignments[row.cluster] = assignment
            assignments[row.cluster] = assignment[1]
        cache.gateway = gateway
        cache.result = dataclasses.replace(last, clusters=clusters, endpoints=assignments)
        self.last_stats = stats
        return cache.result

    def _table_to_split(self, tables: list[_HostTable]) -> _HostTable | None:
        """The route table to split by hostname: the largest one that has enough routes to
        gain from it and only exact hostnames (Envoy matches scope keys exactly: there is
        no wildcard or catch-all scope). One at most, because Envoy hands every scope to
        every scoped connection manager of the proxy."""
        if self._scopes_from is None:
            return None
        best, most = None, self._scopes_from - 1
        for table in tables:
            if table.hostnames and table.exact():
                routes = table.routes()
                if routes > most:
                    best, most = table, routes
        return best

    def _host_table(
        self,
        name: str,
        listeners: tuple[ir.HTTPListener, ...],
        old: _Cache,
        new: _Cache,
        clusters: dict[str, ir.Cluster],
        stats: Counter[str],
        gone: set[str],
    ) -> _HostTable:
        # Pass 1: a host whose IR routes are the very same objects is carried over whole;
        # a changed one finds its unchanged routes by identity among the host's last ones.
        plans: list[tuple[str, str, list[ir.HTTPRoute], _VhostState | _Rebuild]] = []
        misses: list[ir.HTTPRoute] = []
        for hostname, routes in _virtual_hosts(listeners):
            vhost_name = virtual_host_name(name, hostname)
            ir_ids = tuple(map(id, routes))
            state = old.vhosts.get((name, hostname))
            if state is not None and state.ir_ids == ir_ids:
                # The same IR route objects: the same route messages (each IR route's
                # messages are fixed once built), the same host, the same clusters.
                stats["vhosts_reused"] += 1
                stats["routes_reused"] += len(ir_ids)
                plans.append((hostname, vhost_name, routes, state))
                continue
            previous = state.routes if state is not None else {}
            route_map: dict[int, _RouteMsgs] = {}
            for route in routes:
                k = id(route)
                hit = previous.get(k)
                if hit is not None and hit[0] is route:
                    route_map[k] = hit
                else:
                    misses.append(route)
            plans.append((hostname, vhost_name, routes, _Rebuild(ir_ids, route_map, state)))

        # Pass 2: a route that is not the same object may still equal one of the last
        # routes nobody took by identity (e.g. a Gateway API retranslation of equal input).
        found: dict[int, _RouteMsgs] = {}
        if misses:
            by_value = _untaken_routes(name, old, plans, gone)
            for route in misses:
                if id(route) in found:  # one IR route in two listeners of this port
                    continue
                msgs = by_value.get(route)
                if msgs is None:
                    msgs = build_routes(route, stats=new.route_stats)
                    stats["routes_built"] += 1
                else:
                    stats["routes_reused"] += 1
                found[id(route)] = (route, msgs)

        # Pass 3: assemble the changed hosts, then the configuration.
        vhost_msgs: list[rc.VirtualHost] = []
        for hostname, vhost_name, routes, plan in plans:
            state = (
                plan
                if isinstance(plan, _VhostState)
                else _rebuild(
                    plan, vhost_name, hostname, routes, found, stats, new.virtual_host_stats
                )
            )
            new.vhosts[(name, hostname)] = state
            # Hosts in order, each host's clusters in first-use order: the same first-use
            # order over all routes as adding them route by route.
            for cluster_name, cluster in state.clusters.items():
                if cluster_name not in clusters:
                    clusters[cluster_name] = cluster
            vhost_msgs.append(state.message)

        return _HostTable(name, tuple(h for h, *_ in plans), tuple(vhost_msgs))


def _whole_table(
    table: _HostTable, old: _Cache, new: _Cache, stats: Counter[str]
) -> route_pb2.RouteConfiguration:
    name, vhost_msgs = table.name, list(table.vhosts)
    config_key = (name, *map(id, vhost_msgs))
    config_entry = old.route_configs.pop(config_key, None)
    if config_entry is None:
        config_entry = (_assemble(name, vhost_msgs, old), vhost_msgs)
        stats["route_configs_built"] += 1
    else:
        stats["route_configs_reused"] += 1
    new.route_configs[config_key] = config_entry
    return config_entry[0]


def _split_table(
    table: _HostTable,
    old: _Cache,
    new: _Cache,
    stats: Counter[str],
    route_configs: dict[str, route_pb2.RouteConfiguration],
    scoped_routes: dict[str, scoped_route_pb2.ScopedRouteConfiguration],
) -> None:
    """One RouteConfiguration per hostname, and the scope that names it, both named as
    its virtual host; a host whose virtual host message is the same as last time keeps
    its configuration and scope."""
    for hostname, vhost in zip(table.hostnames, table.vhosts, strict=True):
        name = vhost.name
        key = (name, id(vhost))
        entry = old.route_configs.pop(key, None)
        if entry is None:
            entry = (build_route_configuration(name, [vhost]), [vhost])
            stats["route_configs_built"] += 1
        else:
            stats["route_configs_reused"] += 1
        new.route_configs[key] = entry
        route_configs[name] = entry[0]
        scope = old.scopes.pop(name, None) or build_scope(name, hostname)
        new.scopes[name] = scope
        scoped_routes[name] = scope


def _assemble(
    name: str, vhost_msgs: list[rc.VirtualHost], old: _Cache
) -> route_pb2.RouteConfiguration:
    """A new route configuration of ``vhost_msgs``, from the last one when few hosts differ.

    Copying the last configuration whole and then the changed hosts over theirs takes about
    60 % of the time of adding every host to an empty one (upb merges message by message);
    at 10,000 routes that is ~4 ms of a one-route change.
    """
    last = None
    for msg, hosts in old.route_configs.values():
        if msg.name == name and len(hosts) == len(vhost_msgs):
            last = (msg, hosts)
            break
    if last is not None:
        changed = [
            i for i, (a, b) in enumerate(zip(last[1], vhost_msgs, strict=True)) if a is not b
        ]
        if len(changed) * 4 <= len(vhost_msgs):
            out = route_pb2.RouteConfiguration()
            out.CopyFrom(last[0])
            for i in changed:
                out.virtual_hosts[i].CopyFrom(vhost_msgs[i])
            return out
    return build_route_configuration(name, vhost_msgs)


@dataclass(slots=True)
class _Rebuild:
    """A virtual host to assemble again: its IR route ids, the routes found by identity,
    and its last state (None for a new host)."""

    ir_ids: tuple[int, ...]
    route_map: dict[int, _RouteMsgs]
    last: _VhostState | None


def _untaken_routes(
    name: str,
    old: _Cache,
    plans: list[tuple[str, str, list[ir.HTTPRoute], Any]],
    gone: set[str],
) -> dict[ir.HTTPRoute, tuple[rc.Route, ...]]:
    """The last routes not taken by identity, by value: those of ``name``'s changed or
    removed hosts, and those of route configurations that are ``gone``."""
    out: dict[ir.HTTPRoute, tuple[rc.Route, ...]] = {}
    present = set()
    for hostname, _, _, plan in plans:
        present.add(hostname)
        if isinstance(plan, _Rebuild) and plan.last is not None:
            taken = plan.route_map
            for k, (route, msgs) in plan.last.routes.items():
                if k not in taken:
                    out[route] = msgs
    for (config, hostname), state in old.vhosts.items():
        if (config == name and hostname not in present) or config in gone:
            for route, msgs in state.routes.values():
                out[route] = msgs
    return out


def _rebuild(
    plan: _Rebuild,
    vhost_name: str,
    hostname: str,
    routes: list[ir.HTTPRoute],
    found: dict[int, _RouteMsgs],
    stats: Counter[str],
    stats_on: bool,
) -> _VhostState:
    route_map = plan.route_map
    route_msgs: list[rc.Route] = []
    host_clusters: dict[str, ir.Cluster] = {}
    reused = 0
    for route in routes:
        k = id(route)
        hit = route_map.get(k)
        if hit is None:
            hit = route_map[k] = found[k]
        else:
            reused += 1
        route_msgs.extend(hit[1])
        _add_clusters(route, host_clusters)
    stats["routes_reused"] += reused  # identity hits; routes found by value count in pass 2
    message_ids = tuple(map(id, route_msgs))
    last = plan.last
    if last is not None and last.message_ids == message_ids:
        message = last.message  # equal IR rebuilt: the very same messages
        stats["vhosts_reused"] += 1
    else:
        message = build_virtual_host(vhost_name, hostname, route_msgs, stats=stats_on)
        stats["vhosts_built"] += 1
    return _VhostState(plan.ir_ids, route_map, host_clusters, message_ids, message)


def _add_clusters(route: ir.HTTPRoute, clusters: dict[str, ir.Cluster]) -> None:
    if route.redirect is not None or route.direct_response is not None:
        return
    dest = route.destination
    if dest is None or not dest.settings:
        return
    for setting in dest.settings:
        cluster = setting.cluster
        if cluster.name not in clusters:
            clusters[cluster.name] = cluster
    for mirror in route.mirrors:
        if mirror.cluster.name not in clusters:
            clusters[mirror.cluster.name] = mirror.cluster


def _specificity(hostnames: tuple[str, ...]) -> tuple[int, int]:
    """How specific a listener's hostname is: exact > longer wildcard > wildcard > none."""
    best = (0, 0)
    for hostname in hostnames:
        if hostname in ("", "*"):
            rank = (0, 0)
        elif hostname.startswith("*"):
            rank = (1, len(hostname))
        else:
            rank = (2, len(hostname))
        best = max(best, rank)
    return best


def _virtual_hosts(
    listeners: tuple[ir.HTTPListener, ...],
) -> list[tuple[str, list[ir.HTTPRoute]]]:
    """Routes per virtual host, in first-appearance order, routes in IR order.

    When listeners merged on one port both have routes for a hostname, Gateway API says the
    listener with the most specific hostname gets the request, so only its routes are kept.
    """
    owners: dict[str, tuple[tuple[int, int], list[ir.HTTPRoute]]] = {}
    for lis in listeners:
        by_host: dict[str, list[ir.HTTPRoute]] = {}
        for route in lis.routes:
            hostname = route.hostname or "*"
            host_routes = by_host.get(hostname)
            if host_routes is None:
                by_host[hostname] = [route]
            else:
                host_routes.append(route)
        rank = _specificity(lis.hostnames) if len(listeners) > 1 else (0, 0)
        for hostname, routes in by_host.items():
            current = owners.get(hostname)
            if current is None or rank > current[0]:
                owners[hostname] = (rank, routes)
    return [(hostname, routes) for hostname, (_, routes) in owners.items()]


def translate(
    gateway: ir.Gateway, *, hostname_scopes_min_routes: int | None = HOSTNAME_SCOPES_MIN_ROUTES
) -> ResourceSet:
    """Translate one Gateway without a cache from earlier translations."""
    return Translator(hostname_scopes_min_routes=hostname_scopes_min_routes).translate(gateway)


def _same_but_endpoints(old: ir.Gateway, new: ir.Gateway) -> bool:
    """Whether two Gateways differ in their endpoint table at most. Fields are compared by
    identity first: the Gateway API translator's endpoint path hands back the very same
    listeners, and the host binding's copies share their route tuples, so this is cheap."""
    if old is new:
        return True
    for f in _GATEWAY_FIELDS:
        a, b = getattr(old, f), getattr(new, f)
        if a is not b and a != b:
            return False
    return True


_GATEWAY_FIELDS = tuple(f.name for f in dataclasses.fields(ir.Gateway) if f.name != "endpoints")


def _client_certificate(gateway: ir.Gateway) -> str | None:
    cert = gateway.backend_client_certificate
    return cert.name if cert is not None else None


def _assignment(
    cluster: ir.Cluster,
    row: ir.ClusterEndpoints | None,
    previous: _Assignment | None,
    stats: Counter[str],
) -> _Assignment:
    """The assignment of an EDS cluster: the last one while its row is the same."""
    if previous is not None and (previous[0] is row or previous[0] == row):
        stats["assignments_reused"] += 1
        return previous
    stats["assignments_built"] += 1
    return row, build_load_assignment(cluster, row.endpoints if row is not None else ())
