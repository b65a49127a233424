"""The Gateway API translator: typed resources in, xDS IR + infra IR + statuses out."""

from __future__ import annotations

import bisect
import dataclasses
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from egobs import ir
from egobs.gatewayapi.backends import GATEWAY_GROUP, GRPC_ROUTE, HTTP_ROUTE, Backends, backend_keys
from egobs.gatewayapi.endpoints import EndpointTable, backend_endpoints
from egobs.gatewayapi.entries import RouteEntry, SortKey
from egobs.gatewayapi.gateways import (
    ClassState,
    GatewayState,
    ListenerSetState,
    ListenerState,
    class_status,
    gateway_status,
    listener_ir,
    listener_set_status,
    process_class,
    process_gateway,
)
from egobs.gatewayapi.http import CompiledHTTPRoute, compile_grpc, compile_http, stamp
from egobs.gatewayapi.index import Index
from egobs.gatewayapi.l4 import L4Route, attach_l4, compile_l4
from egobs.gatewayapi.parents import describe_dropped, parent_status, resolve_parents
from egobs.gatewayapi.status import (
    R_UNSUPPORTED_VALUE,
    Conditions,
    Issue,
    oldest_first,
    rfc3339_now,
)
from egobs.gatewayapi.telemetry import (
    DEFAULT_TELEMETRY,
    LastGood,
    TelemetryCompiler,
    TelemetryDefaults,
)
from egobs.resources import (
    Backend,
    GRPCRoute,
    HTTPRoute,
    ListenerSet,
    Resource,
    Resources,
    TLSRoute,
)

DEFAULT_CONTROLLER_NAME = "gateway.egobs.dev/gatewayclass-controller"

StatusKey = tuple[str, str, str]


@dataclass(frozen=True)
class Result:
    """What one translation produces.

    ``gateways`` and ``proxies`` hold the programmed Gateways of accepted classes, by
    ``<ns>/<name>``. ``statuses`` maps ``(kind, namespace, name)`` (namespace ``""`` for
    GatewayClasses) to the object's ``status``, for every GatewayClass and Gateway we own,
    every ListenerSet whose parentRef names one of our Gateways, every route with a
    parentRef to one of those Gateways or ListenerSets, and every BackendTLSPolicy such a
    route leads to.
    """

    gateways: dict[str, ir.Gateway]
    proxies: dict[str, ir.Proxy]
    statuses: dict[StatusKey, dict[str, Any]]
    # The keys whose status may differ from the previous result of the same Translator
    # (every other status is the very same object), or None when that is not known.
    changed: frozenset[StatusKey] | None = field(default=None, compare=False)


def translate(
    resources: Resources,
    *,
    controller_name: str = DEFAULT_CONTROLLER_NAME,
    telemetry: TelemetryDefaults = DEFAULT_TELEMETRY,
    now: str | None = None,
) -> Result:
    """Translate one consistent set of resources. Pure: same input, same output.

    ``telemetry`` is what the control plane adds to every Gateway's telemetry where its
    EnvoyProxy says nothing (the egobs sink, stdout access logs, the stats listener).
    """
    table = EndpointTable(resources.endpoint_slices)
    return _Translation(
        resources, controller_name, telemetry, now or rfc3339_now(), None, table
    ).run()


# What compiling an HTTPRoute/GRPCRoute reads besides the route itself: backend resolution
# looks at these kinds (GRPCRoutes because any gRPC reference makes a cluster HTTP/2).
# EndpointSlices are not among them: routes name clusters, and the endpoint table follows
# the slices on its own (see gatewayapi.endpoints).
_BACKEND_INPUTS = (
    "services",
    "backends",
    "reference_grants",
    "namespaces",
    "grpc_routes",
    "backend_tls_policies",  # the TLS to a Service port they target
    "config_maps",  # the CA certificates of those policies
)
# Everything but routes: what decides Gateway and listener state, and so route attachment.
_ENV_INPUTS = tuple(
    f.name
    for f in dataclasses.fields(Resources)
    if f.name
    not in (
        "http_routes",
        "grpc_routes",
        "tcp_routes",
        "udp_routes",
        "tls_routes",
        "endpoint_slices",
    )
)


class _RouteMemo:
    """What earlier runs learned about one HTTPRoute/GRPCRoute object.

    ``compiled`` and ``stamped`` depend on the route and the backend inputs only; ``outcome``
    (which listeners it attached to with which IR routes, and its status) also depends on
    the Gateway side of the input, so it is only valid under the environment token ``env``.
    """

    __slots__ = ("compiled", "env", "key", "outcome", "route", "stamped")

    def __init__(self, route: object, key: StatusKey) -> None:
        self.route = route
        self.key = key
        self.compiled: CompiledHTTPRoute | None = None
        # hostname (plus " <port>" when a redirect takes the listener's port) -> stamped
        # entries: the same ir.HTTPRoute objects while the route and its backends stay, so
        # the xDS translator finds them by identity.
        self.stamped: dict[str, list[RouteEntry]] = {}
        self.env: object = None
        self.outcome: _Outcome | None = None


@dataclass(frozen=True, slots=True)
class _Attachment:
    """One listener a route attached to (by ordinal) and the entries it added there (none
    when the listener is not programmed)."""

    listener: int
    entries: tuple[RouteEntry, ...]


@dataclass(frozen=True, slots=True)
class _Outcome:
    """Where a route attached and its status. ``attachments`` None: the route names none of
    our Gateways (and has no status)."""

    attachments: tuple[_Attachment, ...] | None
    status: dict[str, Any] | None

    @property
    def attached(self) -> bool:
        return self.attachments is not None


_NOT_OURS = _Outcome(None, None)


class _Memo:
    """What a Translator keeps between runs, and each run reads and adds to.

    * ``routes`` / ``by_id``: per HTTPRoute/GRPCRoute key (and id of its object), what was
      learned of it (:class:`_RouteMemo`). Valid while the backend inputs are the very same
      objects; the Translator empties them otherwise.
    * ``env``: a token the Translator replaces whenever the environment inputs (every kind
      but routes and EndpointSlices) change. A route's outcome is reused only under the token
      it was made under.
    * ``index``: the :class:`Index` of the environment inputs (None: built by the next run).
      It costs ~4 ms at 1,000 Services; its lazy caches are pure functions of those inputs.
    * ``sorted``: per HTTP listener ordinal, the last sorted entries, for patching the order
      instead of sorting (valid under ``env``).
    * ``endpoints``: the endpoint table of every cluster resolved under these memos.
    * ``telemetry_last_good``: per EnvoyProxy, the last telemetry it compiled to; what its
      proxies keep serving while an edit makes it untranslatable. It outlives :meth:`reset`.

    A run only adds to these (and sets ``index``); emptying them is the Translator's.
    """

    __slots__ = ("by_id", "endpoints", "env", "index", "routes", "sorted", "telemetry_last_good")

    def __init__(self) -> None:
        self.telemetry_last_good: LastGood = {}
        self.routes: dict[StatusKey, _RouteMemo] = {}
        # Finding an unchanged route's memo by id skips computing its key, which through
        # pydantic properties costs ~1 µs a route, ~10 ms per run at 10k. Each memo holds its
        # route alive, so the id is its own.
        self.by_id: dict[int, _RouteMemo] = {}
        self.env: object = object()
        self.index: Index | None = None
        self.sorted: dict[int, list[RouteEntry]] = {}
        self.endpoints = EndpointTable(())

    def reset(self) -> None:
        """Forget everything but the telemetry last good."""
        self.routes = {}
        self.by_id = {}
        self.env = object()
        self.index = None
        self.sorted = {}
        self.endpoints = EndpointTable(())


class Translator:
    """:func:`translate` that remembers per-route work between runs.

    Providers hand back the very same objects for what did not change (the contract in
    :mod:`egobs.provider.base`), so object identity tells what changed; equal copies are
    taken as changes, which costs recompiling, never a wrong result (tested). What is kept
    between runs is one :class:`_Memo`, documented there. A route is recompiled only when its object changed or when
    anything backend resolution reads changed. While the Gateway side of the input (every
    kind but routes) is the same objects too, an unchanged route's attachment, IR routes and
    status are taken as they were: its IR routes are the identical objects (which makes the
    xDS translator's cache hits cheap) and listener route order is patched, not re-sorted.
    When nothing but a few HTTPRoutes changed, not even the unchanged routes are looked at:
    the last run itself is patched (:meth:`_patch`), and the result names the statuses it
    touched (``Result.changed``). When nothing but endpoints changed (EndpointSlices, or a
    Backend's ``spec.endpoints``), only endpoint rows are recomputed
    (:meth:`_endpoints_only`).

    Output equals :func:`translate`'s for the same input and ``now``. With a later ``now``,
    statuses of routes whose inputs did not change keep their conditions, including
    ``lastTransitionTime``: nothing about them transitioned.
    """

    def __init__(
        self,
        *,
        controller_name: str = DEFAULT_CONTROLLER_NAME,
        telemetry: TelemetryDefaults = DEFAULT_TELEMETRY,
    ) -> None:
        self.controller_name = controller_name
        self.telemetry = telemetry
        self._memo = _Memo()
        # The inputs the memos were made from, compared by identity on each run.
        self._inputs: tuple[list[Resource], ...] = ()
        self._env_inputs: tuple[list[Resource], ...] = ()
        self.compiled_last = 0  # routes compiled by the last run, for tests and metrics
        self.reused_last = 0  # routes whose outcome was reused by the last run
        # What the last run changed in endpoint rows, when it took the endpoint path (the
        # clusters named), else None; for tests and the control plane's metrics.
        self.endpoint_update_last: frozenset[str] | None = None
        # The last run, kept for patching when only HTTPRoutes change (see _patch).
        self._last: _LastRun | None = None

    def translate(self, resources: Resources, *, now: str | None = None) -> Result:
        now = now or rfc3339_now()
        self.endpoint_update_last = None
        same = True
        inputs = tuple(list(getattr(resources, attr)) for attr in _BACKEND_INPUTS)
        # The endpoint path: EndpointSlices, or only the endpoints of Backends, changed.
        rows: frozenset[str] | None = None
        if self._last is not None and not _same_objects(inputs, self._inputs):
            rows = self._adopt_backend_endpoints(inputs)
        if _same_objects(inputs, self._inputs) and not self._memo.endpoints.same_slices(
            resources.endpoint_slices
        ):
            slice_rows = self._memo.endpoints.update_slices(resources.endpoint_slices)
            if slice_rows is None:  # an address type flips, or a pinned Service: start afresh
                self._forget()
                rows = None
            else:
                rows = slice_rows if rows is None else rows | slice_rows
        if rows is not None and self._last is not None:
            fast = self._endpoints_only(resources, rows)
            if fast is not None:
                return fast
        if not _same_objects(inputs, self._inputs):
            self._memo.routes = {}
            self._memo.by_id = {}
            self._inputs = inputs
            self._memo.endpoints = EndpointTable(resources.endpoint_slices)
            same = False
        env_inputs = tuple(list(getattr(resources, attr)) for attr in _ENV_INPUTS)
        if not _same_objects(env_inputs, self._env_inputs):
            proxies = {(p.namespace, p.name) for p in resources.envoy_proxies}
            for key in set(self._memo.telemetry_last_good) - proxies:
                del self._memo.telemetry_last_good[key]
            self._memo.env = object()
            self._env_inputs = env_inputs
            self._memo.sorted = {}
            self._memo.index = None
            same = False
        if same and self._last is not None:
            patched = self._patch(resources, now, self._last)
            if patched is not None:
                return patched
        self._last = None
        run = _Translation(
            resources, self.controller_name, self.telemetry, now, self._memo, self._memo.endpoints
        )
        result = run.run()
        live = run.touched_routes
        if len(live) != len(self._memo.routes):
            self._memo.routes = {k: v for k, v in self._memo.routes.items() if k in live}
            self._memo.by_id = {id(m.route): m for m in self._memo.routes.values()}
        self._memo.sorted = run.sorted_entries
        self.compiled_last = run.compiled
        self.reused_last = run.reused
        if not run.duplicates:
            l4 = _l4_lists(resources)
            self._last = _LastRun(
                run,
                list(resources.http_routes),
                l4,
                backend_keys(route for routes in l4 for route in routes),
                sum(1 for m in self._memo.routes.values() if _attached(m)),
                result,
            )
        return result

    def _adopt_backend_endpoints(self, inputs: tuple[list[Resource], ...]) -> frozenset[str] | None:
        """When the backend inputs differ from the last ones only in Backends whose
        ``spec.endpoints`` changed (and not their address type), take the new Backends as
        the current inputs without dropping any memo, and return the endpoint rows that
        changed. None (nothing taken) otherwise: the usual paths then run.

        Compiled routes stay valid: a Backend's cluster (name, protocol, address type) does
        not depend on its endpoints, which only the endpoint table holds.
        """
        at = _BACKEND_INPUTS.index("backends")
        if len(inputs) != len(self._inputs):
            return None
        for k, (old_list, new_list) in enumerate(zip(self._inputs, inputs, strict=True)):
            if k != at and not _same_objects((old_list,), (new_list,)):
                return None
        old, new = self._inputs[at], inputs[at]
        if len(old) != len(new):
            return None
        changes = {}
        for a, b in zip(old, new, strict=True):
            if a is b:
                continue
            assert isinstance(a, Backend) and isinstance(b, Backend)
            if a.key != b.key or _without_endpoints(a) != _without_endpoints(b):
                return None
            changes[(b.namespace, b.name)] = backend_endpoints(b)
        rows = self._memo.endpoints.update_backends(changes)
        if rows is None:
            return None
        self._inputs = inputs
        if self._env_inputs:
            env = list(self._env_inputs)
            env[_ENV_INPUTS.index("backends")] = new
            self._env_inputs = tuple(env)
        if self._memo.index is not None:
            for b in new:
                assert isinstance(b, Backend)
                self._memo.index.backends[(b.namespace, b.name)] = b
        return rows

    def _endpoints_only(self, resources: Resources, rows: frozenset[str]) -> Result | None:
        """The last result with new endpoint rows, when nothing but endpoints changed.

        No route, listener or status is looked at: each Gateway whose clusters include a
        changed row gets a copy of its last IR with a new endpoint table (every other field
        the very same objects, which the xDS translator notices); the others and every status
        are the last result's. None when anything else changed too.
        """
        last = self._last
        assert last is not None
        if not (
            _same_objects(tuple(list(getattr(resources, a)) for a in _ENV_INPUTS), self._env_inputs)
            and _same_objects(_l4_lists(resources), last.l4)
            and _route_diff(last.http_routes, last.http_ids, resources.http_routes) == ([], [])
        ):  # the backend inputs (GRPCRoutes among them) are known to be the same
            return None
        previous = last.result
        gateways = dict(previous.gateways)
        current = self._memo.endpoints.current()
        for name, gw in previous.gateways.items():
            clusters = last.run.gateway_clusters.get(name, ())
            if rows.isdisjoint(clusters):
                continue
            table = tuple(current[c.cluster] if c.cluster in rows else c for c in gw.endpoints)
            gateways[name] = dataclasses.replace(gw, endpoints=table)
        last.run.resources = resources
        last.run.index.resources = resources
        result = Result(gateways, previous.proxies, previous.statuses, changed=frozenset())
        last.result = result
        self.endpoint_update_last = rows
        self.compiled_last = 0
        self.reused_last = last.attached_live
        return result

    def _patch(self, resources: Resources, now: str, last: _LastRun) -> Result | None:
        """The last run's result patched for changed HTTPRoutes; None when that won't do.

        Only HTTPRoutes may differ from the last run (every other kind the very same
        objects), and few of them. A removed route's attachments are taken out of its
        listeners (entries by sort key, ``attachedRoutes``, its status), an added one is
        translated against the kept Gateway state and its entries inserted in order, so a
        change costs what the changed routes hold rather than what all routes hold. The
        result equals a full run's (the tests compare them on every step of edit series).
        """
        if not last.run.gateways:
            return None  # routes are not looked at without a Gateway of ours: nothing to patch
        diff = _route_diff(last.http_routes, last.http_ids, resources.http_routes)
        if diff is None:
            return None
        removed, added = diff
        if len(removed) + len(added) > _PATCH_LIMIT:
            return None
        if not _same_objects(_l4_lists(resources), last.l4):
            return None
        by_id, live = self._memo.by_id, last.run.touched_routes
        if any(id(r) not in by_id for r in removed):
            return None  # not translated last time (e.g. it named no Gateway of ours)
        removed_keys = [by_id[id(r)].key for r in removed]
        added_keys = [r.key for r in added]
        freed = set(removed_keys)
        if len(set(added_keys)) != len(added_keys) or any(
            k in live and k not in freed for k in added_keys
        ):
            return None  # a duplicate key: the full run decides which object is served
        if last.l4_keys and backend_keys([*removed, *added]) & last.l4_keys:
            return None  # L4 clusters are named by whether HTTP routes share the backend
        try:
            return self._apply_patch(resources, now, last, removed, removed_keys, added)
        except BaseException:
            # Half-patched state must not leak into later runs: start afresh next time.
            self._forget()
            raise

    def _apply_patch(
        self,
        resources: Resources,
        now: str,
        last: _LastRun,
        removed: list[HTTPRoute],
        removed_keys: list[StatusKey],
        added: list[HTTPRoute],
    ) -> Result:
        run = last.run
        run.resources = resources
        run.index.resources = resources
        # Fresh per-run lookup caches, as a full run has: kept, they would collect every
        # backend and namespace any patched route ever named.
        run.backends = Backends(run.index, resources, self._memo.endpoints)
        for ls in run.listeners:
            ls._ns_allowed.clear()
        run.conds = Conditions(now)
        # The last Result holds the old dict; unchanged entries are shared, not copied.
        statuses = run.statuses = dict(run.statuses)
        run.compiled = run.reused = 0
        listeners, touched = run.listeners, run.touched_routes
        attached_live = last.attached_live
        for route, key in zip(removed, removed_keys, strict=True):
            m = self._memo.by_id.pop(id(route))
            if self._memo.routes.get(key) is m:
                del self._memo.routes[key]
            touched.discard(key)
            statuses.pop(key, None)
            if _attached(m):
                attached_live -= 1
                assert m.outcome is not None and m.outcome.attachments is not None
                for ordinal, entries in ((a.listener, a.entries) for a in m.outcome.attachments):
                    ls = listeners[ordinal]
                    ls.attached.discard(key)
                    for entry in entries:
                        _remove_sorted(ls.http_entries, entry)
                    _recount(run, ordinal, entries, -1)
        fresh_attached = 0
        for route in added:
            key = route.key
            touched.add(key)
            m = self._memo.routes[key] = _RouteMemo(route, key)
            self._memo.by_id[id(route)] = m
            m.outcome = run._http_route(HTTP_ROUTE, route, m)
            m.env = self._memo.env
            if _attached(m):
                fresh_attached += 1
                assert m.outcome.attachments is not None
                for ordinal, entries in ((a.listener, a.entries) for a in m.outcome.attachments):
                    if entries:
                        # _http_route appended them; they belong in sort order.
                        ls = listeners[ordinal]
                        del ls.http_entries[-len(entries) :]
                        for entry in entries:
                            bisect.insort(ls.http_entries, entry, key=_entry_key)
                        _recount(run, ordinal, entries, 1)
        for name, state in run.classes.items():
            statuses[("GatewayClass", "", name)] = class_status(state, run.conds)
        result = run._result()
        changed = {*removed_keys, *(r.key for r in added)}
        changed.update(("GatewayClass", "", name) for name in run.classes)
        changed.update(("Gateway", ns, name) for ns, name in run.gateways)
        changed.update(("ListenerSet", ns, name) for ns, name in run.listener_sets)
        changed.update(p.key for p in resources.backend_tls_policies)
        result = dataclasses.replace(result, changed=frozenset(changed))
        last.http_routes = list(resources.http_routes)
        last.http_ids.difference_update(map(id, removed))
        last.http_ids.update(map(id, added))
        last.attached_live = attached_live + fresh_attached
        last.result = result
        self.compiled_last = run.compiled
        self.reused_last = last.attached_live - fresh_attached
        return result

    def _forget(self) -> None:
        self._last = None
        self._memo.reset()
        self._inputs = ()
        self._env_inputs = ()


# More changed routes than this in one run: a full run (it patches the sort order too).
_PATCH_LIMIT = 64


class _LastRun:
    """The state :meth:`Translator._patch` continues from."""

    __slots__ = ("attached_live", "http_ids", "http_routes", "l4", "l4_keys", "result", "run")

    def __init__(
        self,
        run: _Translation,
        http_routes: list[HTTPRoute],
        l4: tuple[list[Resource], ...],
        l4_keys: set[tuple[str, ...]],
        attached_live: int,
        result: Result,
    ) -> None:
        self.run = run
        self.result = result  # the last Result served: patched, or the run's
        self.http_routes = http_routes
        self.http_ids = {id(r) for r in http_routes}  # the objects are held by http_routes
        self.l4 = l4
        self.l4_keys = l4_keys
        # Live routes with an outcome that names our Gateways: what reused_last counts.
        self.attached_live = attached_live


def _route_diff(
    old: list[HTTPRoute], old_ids: set[int], new: list[HTTPRoute]
) -> tuple[list[HTTPRoute], list[HTTPRoute]] | None:
    """The route objects gone from ``old`` and new in ``new`` (by identity; a route that only
    moved is neither), or None when ``new`` holds one object twice."""
    if len(old) == len(new):
        if not any(map(operator.is_not, old, new)):
            return [], []  # the same objects: no route changed (the endpoint path's case)
        # The usual edit replaces objects in place: compare position by position, then look
        # at the differing positions only.
        was = [a for a, b in zip(old, new, strict=True) if a is not b]
        now = [b for a, b in zip(old, new, strict=True) if a is not b]
        was_ids = {id(r) for r in was}
        now_ids = {id(r) for r in now}
        if len(now_ids) != len(now) or any(i in old_ids and i not in was_ids for i in now_ids):
            return None  # also at a position that did not change: listed twice
        return [r for r in was if id(r) not in now_ids], [r for r in now if id(r) not in was_ids]
    new_ids = {id(r) for r in new}
    if len(new_ids) != len(new):
        return None
    return [r for r in old if id(r) not in new_ids], [r for r in new if id(r) not in old_ids]


def _l4_lists(resources: Resources) -> tuple[list[Resource], ...]:
    return (list(resources.tcp_routes), list(resources.udp_routes), list(resources.tls_routes))


def _attached(m: _RouteMemo) -> bool:
    return m.outcome is not None and m.outcome.attached


def _remove_sorted(
    entries: list[RouteEntry],
    entry: RouteEntry,
) -> None:
    # Sort keys are unique per entry, so bisecting on the key finds it.
    i = bisect.bisect_left(entries, entry[0], key=_entry_key)
    if i < len(entries) and entries[i] is entry:
        del entries[i]
        return
    for j, e in enumerate(entries):  # not where its key says: still remove that very entry
        if e is entry:
            del entries[j]
            return


def _same_objects(a: tuple[list[Resource], ...], b: tuple[list[Resource], ...]) -> bool:
    if len(a) != len(b):
        return False
    for xs, ys in zip(a, b, strict=True):
        if len(xs) != len(ys) or any(map(operator.is_not, xs, ys)):
            return False
    return True


def _patch_sorted(
    previous: list[RouteEntry],
    entries: list[RouteEntry],
) -> list[RouteEntry] | None:
    """``entries`` sorted, made from ``previous`` (sorted) when few entries differ.

    Entries are compared by identity: unchanged routes hand back the very same tuples. Sort
    keys are unique per entry (they end in namespace, name, kind, rule and match index), so
    the result is the same order a full sort gives. None when patching would not pay.
    """
    now_ids = {id(e) for e in entries}
    kept = [e for e in previous if id(e) in now_ids]
    if len(entries) - len(kept) > 64:
        return None
    kept_ids = {id(e) for e in kept}
    for e in entries:
        if id(e) not in kept_ids:
            bisect.insort(kept, e, key=_entry_key)
    return kept


def _entry_key(entry: RouteEntry) -> SortKey:
    return entry.key


class _Translation:
    def __init__(
        self,
        resources: Resources,
        controller_name: str,
        telemetry: TelemetryDefaults,
        now: str,
        memo: _Memo | None,
        endpoints: EndpointTable,
    ) -> None:
        self.memo = memo
        self.touched_routes: set[StatusKey] = set()
        self.compiled = 0
        self.reused = 0
        self.resources = resources
        self.controller = controller_name
        self.conds = Conditions(now)
        # The translation's time as a datetime, for what depends on it (certificate expiry).
        # (RFC 3339 allows lower-case t and z; nothing else in it is a letter.)
        self.now = datetime.fromisoformat(now.upper().replace("Z", "+00:00"))
        index = memo.index if memo is not None else None
        if index is None:
            index = Index(resources)
            if memo is not None:
                memo.index = index
        else:
            index.resources = resources  # the same objects but the routes; keep it current
        self.index = index
        self.backends = Backends(self.index, resources, endpoints)
        # Per Gateway name, the clusters its IR routes use (what its endpoint table holds),
        # and how many IR routes use each: counted over every route by the first _result(),
        # then kept up to date by Translator._apply_patch for the routes it takes out and puts
        # in (counting 10,000 routes again would cost a route edit ~10 ms).
        self.gateway_clusters: dict[str, tuple[str, ...]] = {}
        self.cluster_counts: dict[str, Counter[str]] | None = None
        self.listener_gateway: list[str] = []  # per listener ordinal, its Gateway's name
        last_good = memo.telemetry_last_good if memo is not None else {}
        self.telemetry = TelemetryCompiler(self.backends, telemetry, last_good)
        self.statuses: dict[StatusKey, dict[str, Any]] = {}
        self.classes: dict[str, ClassState] = {}
        self.gateways: dict[tuple[str, str], GatewayState] = {}
        # ListenerSets whose parentRef names a Gateway of ours, by namespace and name.
        self.listener_sets: dict[tuple[str, str], ListenerSetState] = {}
        self.policy_status_keys: set[StatusKey] = set()  # BackendTLSPolicy statuses given
        self.listeners: list[ListenerState] = []  # every listener, in a stable order
        self.ordinals: dict[int, int] = {}  # id(ListenerState) -> index in listeners
        self.sorted_entries: dict[int, list[RouteEntry]] = {}
        self.duplicates = False

    def run(self) -> Result:
        for cls in self.resources.gateway_classes:
            if cls.spec.controller_name == self.controller:
                state = process_class(cls, self.index, self.telemetry.compile)
                self.classes[cls.name] = state
                self.statuses[("GatewayClass", "", cls.name)] = class_status(state, self.conds)
        sets_by_parent: dict[tuple[str, str], list[ListenerSet]] = {}
        for lset in sorted(self.resources.listener_sets, key=oldest_first):
            ref = lset.spec.parent_ref
            if ref.group == GATEWAY_GROUP and ref.kind == "Gateway":
                parent = (ref.namespace or lset.namespace, ref.name)
                sets_by_parent.setdefault(parent, []).append(lset)
        for gw in self.resources.gateways:
            cls_state = self.classes.get(gw.spec.gateway_class_name)
            if cls_state is not None:
                gw_state = self.gateways[(gw.namespace, gw.name)] = process_gateway(
                    gw,
                    cls_state,
                    self.index,
                    self.telemetry.compile,
                    now=self.now,
                    listener_sets=sets_by_parent.get((gw.namespace, gw.name), ()),
                )
                for lset_state in gw_state.listener_sets:
                    self.listener_sets[lset_state.key] = lset_state
        for gw_state in self.gateways.values():
            for ls in gw_state.listeners:
                self.ordinals[id(ls)] = len(self.listeners)
                self.listeners.append(ls)
                self.listener_gateway.append(gw_state.name)
        if self.gateways:
            self._http_routes(HTTP_ROUTE, self.resources.http_routes)
            self._http_routes(GRPC_ROUTE, self.resources.grpc_routes)
            for routes in (
                self.resources.tls_routes,
                self.resources.tcp_routes,
                self.resources.udp_routes,
            ):
                self._l4_routes(routes)
        if self.memo is not None:
            self._presort()
        return self._result()

    # ------------------------------------------------------------------ routes

    def _http_routes(self, kind: str, routes: list[HTTPRoute] | list[GRPCRoute]) -> None:
        memo = self.memo
        if memo is None:
            for route in routes:
                self._http_route(kind, route, None)
            return
        env, memos, by_id, touched = memo.env, memo.routes, memo.by_id, self.touched_routes
        listeners, statuses = self.listeners, self.statuses
        for route in routes:
            m = by_id.get(id(route))
            if m is not None and m.route is route:
                key = m.key
            else:
                m = None
                key = route.key
            if key in touched:
                # The same key twice (only Resources.of allows that): leave the memo of
                # the first alone and sort in full, so order among equal keys is a sort's.
                self.duplicates = True
                self._http_route(kind, route, None)
                continue
            touched.add(key)
            if m is None:
                m = memos.get(key)
                if m is not None:
                    by_id.pop(id(m.route), None)
                m = memos[key] = _RouteMemo(route, key)
                by_id[id(route)] = m
            elif m.env is env and m.outcome is not None:
                # Same route, same Gateways: attach exactly as last time.
                attachments, status = m.outcome.attachments, m.outcome.status
                if attachments is None:
                    continue
                for ordinal, entries in ((a.listener, a.entries) for a in attachments):
                    ls = listeners[ordinal]
                    ls.attached.add(key)
                    if entries:
                        ls.http_entries.extend(entries)
                assert status is not None
                statuses[key] = status
                self.reused += 1
                continue
            m.outcome = self._http_route(kind, route, m)
            m.env = env

    def _http_route(
        self, kind: str, route: HTTPRoute | GRPCRoute, m: _RouteMemo | None
    ) -> _Outcome:
        parents = resolve_parents(
            route,
            kind,
            tuple(route.spec.hostnames),
            self.gateways,
            self.index,
            listener_sets=self.listener_sets,
        )
        if not parents:
            return _NOT_OURS
        key = route.key
        compiled = m.compiled if m is not None else None
        if compiled is None:
            compiled = (
                compile_http(route, self.backends)
                if isinstance(route, HTTPRoute)
                else compile_grpc(route, self.backends)
            )
            self.compiled += 1
            if m is not None:
                m.compiled = compiled
                m.stamped = {}
        invalid = None
        if compiled.all_dropped:
            invalid = Issue(
                R_UNSUPPORTED_VALUE,
                "every rule is invalid: " + describe_dropped(compiled.dropped),
            )
        attachments: list[_Attachment] = []
        entries = []
        for parent in parents:
            issue = invalid or parent.issue
            if issue is None:
                for ls, hosts in parent.listeners:
                    if key in ls.attached:
                        continue
                    ls.attached.add(key)
                    added: list[RouteEntry] = []
                    if ls.programmed:
                        for host in hosts:
                            added.extend(self._stamped(compiled, host, ls.spec.port, m))
                        ls.http_entries.extend(added)
                    attachments.append(_Attachment(self.ordinals[id(ls)], tuple(added)))
            entries.append(
                parent_status(
                    parent,
                    route,
                    self.controller,
                    issue,
                    list(compiled.resolved_issues),
                    list(compiled.dropped),
                    self.conds,
                )
            )
        status = {"parents": entries}
        self.statuses[key] = status
        return _Outcome(tuple(attachments), status)

    @staticmethod
    def _stamped(
        compiled: CompiledHTTPRoute, host: str, port: int, m: _RouteMemo | None
    ) -> list[RouteEntry]:
        # Most routes stamp the same IR on every listener; a port-less redirect does not.
        listener_port = port if compiled.redirects_to_listener_port else None
        if m is None:
            return stamp(compiled.entries, host, listener_port)
        key = host if listener_port is None else f"{host} {listener_port}"
        hit = m.stamped.get(key)
        if hit is None:
            hit = m.stamped[key] = stamp(compiled.entries, host, listener_port)
        return hit

    def _presort(self) -> None:
        """Order each programmed HTTP listener's entries, patching last run's order."""
        assert self.memo is not None
        previous = self.memo.sorted
        for ordinal, ls in enumerate(self.listeners):
            if not ls.programmed or ls.protocol not in ("HTTP", "HTTPS"):
                continue
            before = None if self.duplicates else previous.get(ordinal)
            patched = _patch_sorted(before, ls.http_entries) if before is not None else None
            if patched is None:
                ls.http_entries.sort(key=_entry_key)
            else:
                ls.http_entries = patched
            ls.http_sorted = True
            self.sorted_entries[ordinal] = ls.http_entries

    def _l4_routes(self, routes: Sequence[L4Route]) -> None:
        for route in sorted(routes, key=oldest_first):
            hostnames = tuple(route.spec.hostnames) if isinstance(route, TLSRoute) else None
            parents = resolve_parents(
                route,
                route.KIND,
                hostnames,
                self.gateways,
                self.index,
                listener_sets=self.listener_sets,
            )
            if not parents:
                continue
            compiled = compile_l4(route, self.backends)
            entries = []
            for parent in parents:
                issue = compiled.invalid or parent.issue
                if issue is None:
                    issue = attach_l4(route, compiled, parent)
                entries.append(
                    parent_status(
                        parent,
                        route,
                        self.controller,
                        issue,
                        list(compiled.resolved_issues),
                        [],
                        self.conds,
                    )
                )
            self.statuses[route.key] = {"parents": entries}

    # ------------------------------------------------------------------ output

    def _result(self) -> Result:
        gateways: dict[str, ir.Gateway] = {}
        proxies: dict[str, ir.Proxy] = {}
        # A patched run starts from the last statuses: a policy that lost its last
        # ancestor must lose the status the last run gave it.
        for key in self.policy_status_keys:
            self.statuses.pop(key, None)
        self.policy_status_keys = set()
        policies = self.backends.tls_policies
        if policies:  # their ancestors are the Gateways of the routes using their Services
            found = policies.statuses(
                self.resources,
                self.statuses,
                controller_name=self.controller,
                conds=self.conds,
                listener_set_gateways={
                    key: (lset.gateway.obj.namespace, lset.gateway.obj.name)
                    for key, lset in self.listener_sets.items()
                },
            )
            self.statuses.update(found)
            self.policy_status_keys = set(found)
        counts = self.cluster_counts
        fresh = counts is None
        if counts is None:
            counts = self.cluster_counts = {}
        for gw in self.gateways.values():
            self.statuses[("Gateway", gw.obj.namespace, gw.obj.name)] = gateway_status(
                gw, self.conds
            )
            for lset in gw.listener_sets:
                self.statuses[("ListenerSet", *lset.key)] = listener_set_status(lset, self.conds)
            if not gw.programmed:
                continue
            http: list[ir.HTTPListener] = []
            tcp: list[ir.TCPListener] = []
            udp: list[ir.UDPListener] = []
            proxy_listeners: list[ir.ProxyListener] = []
            for ls in gw.listeners:
                if not ls.programmed:
                    continue
                assert ls.protocol is not None
                lir = listener_ir(ls)
                if isinstance(lir, ir.HTTPListener):
                    http.append(lir)
                elif isinstance(lir, ir.TCPListener):
                    tcp.append(lir)
                else:
                    udp.append(lir)
                proxy_listeners.append(
                    ir.ProxyListener(ls.ir_name, ir.Protocol(ls.protocol), ls.port)
                )
            assert gw.telemetry is not None, "an accepted Gateway has its telemetry"
            telemetry = gw.telemetry.for_gateway(gw.obj.namespace, gw.obj.name)
            if fresh:
                counts[gw.name] = _count_clusters(http, tcp, udp)
            used = counts.get(gw.name, Counter())
            clusters = tuple(sorted(name for name, n in used.items() if n > 0))
            self.gateway_clusters[gw.name] = clusters
            gateways[gw.name] = ir.Gateway(
                name=gw.name,
                http=tuple(http),
                tcp=tuple(tcp),
                udp=tuple(udp),
                access_logs=telemetry.access_logs,
                tracing=telemetry.tracing,
                cluster_stats=telemetry.cluster_stats,
                virtual_host_stats=telemetry.virtual_host_stats,
                route_stats=telemetry.route_stats,
                endpoints=self.backends.endpoints.rows(clusters),
                backend_client_certificate=gw.backend_certificate,
            )
            proxies[gw.name] = ir.Proxy(
                name=gw.name,
                gateway_class=gw.cls.obj.name,
                listeners=tuple(proxy_listeners),
                config=gw.config,
                stats=telemetry.stats,
            )
        return Result(gateways=gateways, proxies=proxies, statuses=self.statuses)


def _route_clusters(route: ir.HTTPRoute) -> list[str]:
    dest = route.destination
    names = [s.cluster.name for s in dest.settings] if dest is not None else []
    names.extend(m.cluster.name for m in route.mirrors)
    return names


def _count_clusters(
    http: list[ir.HTTPListener], tcp: list[ir.TCPListener], udp: list[ir.UDPListener]
) -> Counter[str]:
    """How many IR routes of a Gateway use each cluster (mirrors included)."""
    counts: Counter[str] = Counter()
    for listener in http:
        for route in listener.routes:
            counts.update(_route_clusters(route))
    for tcp_listener in tcp:
        for tcp_route in tcp_listener.routes:
            counts.update(s.cluster.name for s in tcp_route.destination.settings)
    for udp_listener in udp:
        if udp_listener.route is not None:
            counts.update(s.cluster.name for s in udp_listener.route.destination.settings)
    return counts


def _recount(
    run: _Translation,
    ordinal: int,
    entries: Sequence[RouteEntry],
    delta: int,
) -> None:
    """Count the clusters of IR routes the patch path took out of (-1) or put in (+1) a
    listener, in its Gateway's counts (a Gateway not served has none)."""
    counts = run.cluster_counts
    used = counts.get(run.listener_gateway[ordinal]) if counts is not None else None
    if used is None:
        return
    for _, route in entries:
        for name in _route_clusters(route):
            used[name] += delta


# What of a Backend its endpoints do not include: bookkeeping metadata a controller bumps on
# every write is left out too.
_BACKEND_ENDPOINT_FIELDS: Any = {
    "spec": {"endpoints"},
    "metadata": {"generation", "resource_version", "managed_fields"},
}


def _without_endpoints(backend: Backend) -> dict[str, Any]:
    return backend.model_dump(exclude=_BACKEND_ENDPOINT_FIELDS)
