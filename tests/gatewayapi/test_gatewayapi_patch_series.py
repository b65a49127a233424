"""Translator's patch path (only HTTPRoutes changed): regressions and edit series.

The first group holds regression tests for bugs a review found in the patch path:

* the last full run saw no Gateway of ours (routes not processed, so no memos): editing or
  removing an HTTPRoute then raises KeyError in ``_patch``, on every run until some other
  kind changes;
* the same route object twice in ``Resources.of`` slips into the patch path through the
  unequal-length branch of ``_patch`` (a no-op patch), after which ``last.http_routes``
  holds a duplicate: a later equal-length step "removes" a route that is still there
  (wrong output) or pops its memo twice (KeyError);
* the per-run caches kept by the patched run (``Backends._cache``,
  ``ListenerState._ns_allowed``) only ever grow across patches;
* a route that merely moves in the list is re-translated by the equal-length branch, so
  with a later ``now`` it gets a new ``lastTransitionTime`` that the full memoizing run
  keeps (the documented behaviour).

The second group covers what the other patch tests do not: seeded edit series over
two Gateways (one listener unprogrammed, one hostname-restricted, a Gateway of another
controller), a GRPCRoute and a TCPRoute sharing backends with HTTPRoutes, routes moving
position, changing or dropping parentRefs, removed and re-added under one key in a step,
and failures injected midway. After every step the Translator must equal ``translate()``,
``Result.changed`` must name every status that is not the previous result's object, and
metrics from the changed keys must equal a full pass.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from egobs import gatewayapi
from egobs.gatewayapi import translator as translator_module
from egobs.resources import HTTPRoute, Resource, Resources, Source, load_paths, load_text
from egobs.resources import parse_object as _parse_object
from egobs.telemetry.statuses import StatusGauges

TESTDATA = Path(__file__).parent / "testdata"
NOW = "2026-01-01T00:00:00Z"
LATER = "2026-02-01T00:00:00Z"

ENV = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: egobs}
spec: {controllerName: gateway.egobs.dev/gatewayclass-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw1, namespace: default}
spec:
  gatewayClassName: egobs
  listeners:
    - {name: http, protocol: HTTP, port: 80, allowedRoutes: {namespaces: {from: All}}}
    - name: web
      protocol: HTTP
      port: 8080
      hostname: "*.example.com"
      allowedRoutes: {namespaces: {from: All}}
    - name: https
      protocol: HTTPS
      port: 443
      tls: {certificateRefs: [{name: missing}]}
      allowedRoutes: {namespaces: {from: All}}
    - {name: tcp, protocol: TCP, port: 9000, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw2, namespace: default}
spec:
  gatewayClassName: egobs
  listeners:
    - {name: http, protocol: HTTP, port: 80, hostname: a.example.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw3, namespace: default}
spec:
  gatewayClassName: other
  listeners:
    - {name: http, protocol: HTTP, port: 80}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {clusterIP: 10.96.0.11, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: shared, namespace: default}
spec: {clusterIP: 10.96.0.12, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: other}
spec: {clusterIP: 10.96.0.13, ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: tcp, namespace: default}
spec:
  parentRefs: [{name: gw1, sectionName: tcp}]
  rules:
    - backendRefs: [{name: shared, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: default}
spec:
  parentRefs: [{name: gw1, sectionName: http}]
  hostnames: [grpc.example.com]
  rules:
    - backendRefs: [{name: api, port: 80}]
"""
PARENTS: list[dict[str, Any]] = [
    {"name": "gw1"},
    {"name": "gw1", "sectionName": "http"},
    {"name": "gw1", "sectionName": "web"},
    {"name": "gw1", "sectionName": "https"},  # not programmed: attaches, no IR
    {"name": "gw1", "port": 8080},
    {"name": "gw1", "sectionName": "tcp"},  # does not allow HTTPRoutes
    {"name": "gw1", "sectionName": "nope"},
    {"name": "gw2"},
    {"name": "gw3"},  # another controller's
    {"name": "missing"},
]
HOSTS = [[], ["a.example.com"], ["*.example.com"], ["b.example.com", "a.example.com"], ["x.org"]]
BACKENDS = ["web", "api", "shared", "missing"]
PATHS = ["/", "/a", "/b", "/a/b"]
TIMESTAMPS = [None, "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"]
SOURCE = Source("review", 1, 1)


def _parse(data: dict[str, Any]) -> Resource:
    return _parse_object(data, SOURCE)


def _crd_valid_parents(parents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parentRefs the CRD takes together: references to one parent must all set
    sectionName (and port) or none, and must not repeat; a later one that would break this
    is left out."""
    kept: list[dict[str, Any]] = []
    shapes: dict[tuple[str, str | None], tuple[bool, bool]] = {}
    for parent in parents:
        shape = ("sectionName" in parent, "port" in parent)
        if shapes.setdefault((parent["name"], parent.get("namespace")), shape) != shape:
            continue
        if parent not in kept:
            kept.append(parent)
    return kept


def _route(rng: random.Random, ns: str | None = None, name: str | None = None) -> HTTPRoute:
    ns = ns or rng.choice(["default", "default", "other"])
    meta: dict[str, Any] = {"name": name or f"r{rng.randrange(40)}", "namespace": ns}
    ts = rng.choice(TIMESTAMPS)
    if ts:
        meta["creationTimestamp"] = ts
    parents = []
    for _ in range(rng.randrange(4)):
        parent = dict(rng.choice(PARENTS))
        if ns != "default":
            parent["namespace"] = "default"
        parents.append(parent)
    parents = _crd_valid_parents(parents)
    rules = []
    for _ in range(rng.randrange(1, 3)):
        rule: dict[str, Any] = {}
        matches = []
        for _ in range(rng.randrange(3)):
            kind = rng.choice(["PathPrefix", "Exact", "RegularExpression"])
            if kind == "RegularExpression":
                value = rng.choice(["/r.*", "/(?=lookahead)"])  # the second drops the rule
            else:
                value = rng.choice(PATHS)
            matches.append({"path": {"type": kind, "value": value}})
        if matches:
            rule["matches"] = matches
        refs = [{"name": rng.choice(BACKENDS), "port": 80} for _ in range(rng.randrange(3))]
        if refs:
            rule["backendRefs"] = refs
        if rng.random() < 0.15:
            mirror = {"backendRef": {"name": rng.choice(BACKENDS), "port": 80}}
            rule["filters"] = [{"type": "RequestMirror", "requestMirror": mirror}]
        rules.append(rule)
    spec: dict[str, Any] = {"parentRefs": parents, "rules": rules}
    hostnames = rng.choice(HOSTS)
    if hostnames:
        spec["hostnames"] = hostnames
    route = _parse(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": meta,
            "spec": spec,
        }
    )
    assert isinstance(route, HTTPRoute)
    return route


def _has_key(objs: list[Resource], key: tuple[str, str, str]) -> bool:
    return any(isinstance(o, HTTPRoute) and o.key == key for o in objs)


def _step(rng: random.Random, objs: list[Resource], pool: list[Resource]) -> None:
    """One to three edits; never two HTTPRoutes with one key (that path is a full run)."""
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        routes = [i for i, o in enumerate(objs) if isinstance(o, HTTPRoute)]
        op = rng.randrange(9)
        if op == 0 and routes:  # a new object under the same key
            i = rng.choice(routes)
            objs[i] = _route(rng, objs[i].namespace, objs[i].name)
        elif op == 1 and routes:
            pool.append(objs.pop(rng.choice(routes)))
        elif op == 2 and pool:  # the very object again, anywhere
            back = pool.pop(rng.randrange(len(pool)))
            if not _has_key(objs, back.key):
                objs.insert(rng.randrange(len(objs) + 1), back)
        elif op == 3:
            new = _route(rng)
            if not _has_key(objs, new.key):
                objs.insert(rng.randrange(len(objs) + 1), new)
        elif op == 4 and routes:  # moves position
            moved = objs.pop(rng.choice(routes))
            objs.insert(rng.randrange(len(objs) + 1), moved)
        elif op == 5 and len(routes) > 1:
            a, b = rng.sample(routes, 2)
            objs[a], objs[b] = objs[b], objs[a]
        elif op == 6 and routes:  # stops naming any Gateway
            i = rng.choice(routes)
            stripped = objs[i].model_copy(deep=True)
            assert isinstance(stripped, HTTPRoute)
            stripped.spec.parent_refs = []
            objs[i] = stripped
        elif op == 7 and routes:  # only the parentRefs change (Gateway, listener, section)
            i = rng.choice(routes)
            moved_ref = objs[i].model_copy(deep=True)
            assert isinstance(moved_ref, HTTPRoute)
            donor = _route(rng, moved_ref.namespace, moved_ref.name)
            moved_ref.spec.parent_refs = donor.spec.parent_refs
            objs[i] = moved_ref
        elif op == 8 and rng.random() < 0.3:  # another kind: the next run is a full one
            kinds = ("TCPRoute", "GRPCRoute", "Service")
            k = rng.choice([k for k, o in enumerate(objs) if o.KIND in kinds])
            objs[k] = objs[k].model_copy(deep=True)


def _gauges(gauges: StatusGauges) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in gauges.collect()
        for s in fam.samples
    }


def _check(
    t: gatewayapi.Translator,
    res: Resources,
    prev: gatewayapi.Result | None,
) -> gatewayapi.Result:
    got = t.translate(res, now=NOW)
    assert got == gatewayapi.translate(res, now=NOW)
    if got.changed is not None:
        assert prev is not None
        for key in prev.statuses.keys() | got.statuses.keys():
            if prev.statuses.get(key) is not got.statuses.get(key):
                assert key in got.changed, key
    return got


# --------------------------------------------------------------------------- bugs


def _without_gateways() -> list[Resource]:
    return [
        o for o in load_paths([TESTDATA / "http_match_precedence.in.yaml"]) if o.KIND != "Gateway"
    ]


def test_editing_a_route_while_no_gateway_is_ours_does_not_crash() -> None:
    """translator.py _patch: ``by_id[id(r)]`` for a route the last full run never looked at
    (no Gateway of ours, so _http_routes did not run): KeyError, again on every later run."""
    objs = _without_gateways()
    t = gatewayapi.Translator()
    _check(t, Resources.of(objs), None)
    i = next(k for k, o in enumerate(objs) if isinstance(o, HTTPRoute))
    edited = objs[i].model_copy(deep=True)
    assert isinstance(edited, HTTPRoute)
    edited.spec.hostnames = ["edited.example.com"]
    objs[i] = edited
    res = Resources.of(objs)
    for _ in range(2):
        assert t.translate(res, now=NOW) == gatewayapi.translate(res, now=NOW)


def test_removing_a_route_while_no_gateway_is_ours_does_not_crash() -> None:
    objs = _without_gateways()
    t = gatewayapi.Translator()
    _check(t, Resources.of(objs), None)
    i = next(k for k, o in enumerate(objs) if isinstance(o, HTTPRoute))
    del objs[i]
    res = Resources.of(objs)
    assert t.translate(res, now=NOW) == gatewayapi.translate(res, now=NOW)


def _precedence_objs() -> tuple[list[Resource], list[HTTPRoute]]:
    objs = list(load_paths([TESTDATA / "http_match_precedence.in.yaml"]))
    routes = [o for o in objs if isinstance(o, HTTPRoute)]
    assert len(routes) >= 2
    return objs, routes


def _renamed(route: HTTPRoute, name: str) -> HTTPRoute:
    copy = route.model_copy(deep=True)
    copy.metadata.name = name
    return copy


def test_a_route_listed_twice_is_not_lost_by_a_later_patch() -> None:
    """[..., B] -> [..., B, B] is patched as a no-op (the unequal-length branch compares
    ids only), leaving last.http_routes with B twice. [..., B, C] then pairs (B, C) and
    removes B's attachments and status although B is still in the input."""
    objs, routes = _precedence_objs()
    b = routes[-1]
    t = gatewayapi.Translator()
    prev = _check(t, Resources.of(objs), None)
    prev = _check(t, Resources.of([*objs, b]), prev)
    res = Resources.of([*objs, _renamed(b, "brand-new")])
    got = t.translate(res, now=NOW)
    assert b.key in got.statuses
    assert got == gatewayapi.translate(res, now=NOW)


def test_a_route_listed_twice_then_replaced_serves_what_a_full_run_serves() -> None:
    """Same path with a different object under B's key: the patch serves the new object;
    a full run serves the first object listed (B) and only uses the status of the second."""
    objs, routes = _precedence_objs()
    b = routes[-1]
    t = gatewayapi.Translator()
    prev = _check(t, Resources.of(objs), None)
    prev = _check(t, Resources.of([*objs, b]), prev)
    replaced = b.model_copy(deep=True)
    replaced.spec.hostnames = ["replaced.example.com"]
    res = Resources.of([*objs, replaced])
    assert t.translate(res, now=NOW) == gatewayapi.translate(res, now=NOW)


def test_a_route_listed_three_times_then_replaced_does_not_crash() -> None:
    """With B three times, an equal-length step replacing two of them lists B twice in
    ``removed``: _apply_patch pops its memo twice (KeyError)."""
    objs, routes = _precedence_objs()
    b = routes[-1]
    t = gatewayapi.Translator()
    prev = _check(t, Resources.of(objs), None)
    prev = _check(t, Resources.of([*objs, b, b]), prev)
    res = Resources.of([*objs, _renamed(b, "new-1"), _renamed(b, "new-2")])
    assert t.translate(res, now=NOW) == gatewayapi.translate(res, now=NOW)


def test_patches_do_not_accumulate_per_run_caches() -> None:
    """The patched run keeps its Backends and ListenerStates from one patch to the next, so
    their lookup caches keep an entry for every reference and namespace ever seen until some
    other kind changes. A full run starts them empty; here one route remains."""
    objs = list(load_paths([TESTDATA / "http_basic.in.yaml"]))
    i = next(k for k, o in enumerate(objs) if isinstance(o, HTTPRoute))
    t = gatewayapi.Translator()
    t.translate(Resources.of(objs), now=NOW)
    for n in range(200):
        edited = objs[i].model_copy(deep=True)
        assert isinstance(edited, HTTPRoute)
        edited.metadata.namespace = f"ns-{n}"
        edited.spec.parent_refs = [
            edited.spec.parent_refs[0].model_copy(update={"namespace": "default"})
        ]
        edited.spec.rules[0].backend_refs[0].name = f"gone-{n}"
        objs[i] = edited
        res = Resources.of(objs)
        assert t.translate(res, now=NOW) == gatewayapi.translate(res, now=NOW)
    last = t._last
    assert last is not None, "still patching"
    assert len(last.run.backends._cache) < 10
    assert all(len(ls._ns_allowed) < 10 for ls in last.run.listeners)


def test_a_moved_route_keeps_its_status_like_a_full_memoized_run() -> None:
    """Swapping two unchanged routes in the list: the equal-length branch of _patch takes
    both as removed and added, recompiles them and, with a later ``now``, gives them new
    lastTransitionTimes. The full memoizing run (same memo state, _last dropped) reuses
    both and keeps their conditions, which is the documented behaviour."""
    objs, _ = _precedence_objs()
    idx = [k for k, o in enumerate(objs) if isinstance(o, HTTPRoute)]
    swapped = list(objs)
    swapped[idx[0]], swapped[idx[1]] = swapped[idx[1]], swapped[idx[0]]
    res = Resources.of(swapped)

    patched_t = gatewayapi.Translator()
    patched_t.translate(Resources.of(objs), now=NOW)
    patched = patched_t.translate(res, now=LATER)
    assert patched.changed is not None  # went through _patch

    full_t = gatewayapi.Translator()
    full_t.translate(Resources.of(objs), now=NOW)
    full_t._last = None
    full = full_t.translate(res, now=LATER)
    assert full.changed is None

    assert patched == full
    assert patched_t.compiled_last == 0


# --------------------------------------------------------------------------- coverage


@pytest.mark.parametrize("seed", range(12))
def test_edit_series_over_two_gateways_equal_full_translation(seed: int) -> None:
    rng = random.Random(seed)
    objs = list(load_text(ENV))
    objs.extend(_route(rng) for _ in range(rng.randrange(1, 10)))
    pool: list[Resource] = []
    t = gatewayapi.Translator()
    remembering = StatusGauges()
    prev = None
    patched = 0
    for _ in range(50):
        _step(rng, objs, pool)
        prev = _check(t, Resources.of(objs), prev)
        patched += prev.changed is not None
        remembering.update(prev.statuses)
        fresh = StatusGauges()
        fresh.update(prev.statuses)
        assert _gauges(remembering) == _gauges(fresh)
    assert patched > 0


@pytest.mark.parametrize("seed", range(6))
def test_failures_midway_leave_no_stale_state(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    fail = {"p": 0.0}
    failures = random.Random(seed + 1000)
    compile_http, stamp = translator_module.compile_http, translator_module.stamp

    def flaky(real: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if failures.random() < fail["p"]:
                raise RuntimeError("injected")
            return real(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(translator_module, "compile_http", flaky(compile_http))
    monkeypatch.setattr(translator_module, "stamp", flaky(stamp))
    objs = list(load_text(ENV))
    objs.extend(_route(rng) for _ in range(rng.randrange(1, 10)))
    pool: list[Resource] = []
    t = gatewayapi.Translator()
    for _ in range(40):
        _step(rng, objs, pool)
        res = Resources.of(objs)
        fail["p"] = 0.1 if rng.random() < 0.4 else 0.0
        try:
            got: gatewayapi.Result | None = t.translate(res, now=NOW)
        except RuntimeError:
            got = None
        fail["p"] = 0.0
        want = gatewayapi.translate(res, now=NOW)
        if got is not None:
            assert got == want
        assert t.translate(res, now=NOW) == want


def test_a_route_removed_and_readded_under_its_key_in_one_step() -> None:
    objs, routes = _precedence_objs()
    t = gatewayapi.Translator()
    prev = _check(t, Resources.of(objs), None)
    first = routes[0]
    again = first.model_copy(deep=True)
    rest = [o for o in objs if o is not first]
    prev = _check(t, Resources.of([*rest, again]), prev)  # moved to the end, new object
    assert prev.changed is not None and first.key in prev.changed
    prev = _check(t, Resources.of([*rest, first]), prev)  # the old object back
    assert prev.changed is not None


def test_an_http_route_sharing_a_tcp_routes_backend_is_a_full_run() -> None:
    """L4 cluster protocol depends on HTTP routes naming the same backend: HTTPRoutes that
    start or stop naming it must not be patched."""
    objs = list(load_text(ENV))
    t = gatewayapi.Translator()
    prev = _check(t, Resources.of(objs), None)
    shared = _parse(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "uses-shared", "namespace": "default"},
            "spec": {
                "parentRefs": [{"name": "gw1", "sectionName": "http"}],
                "rules": [{"backendRefs": [{"name": "shared", "port": 80}]}],
            },
        }
    )
    prev = _check(t, Resources.of([*objs, shared]), prev)
    assert prev.changed is None
    prev = _check(t, Resources.of(objs), prev)
    assert prev.changed is None
