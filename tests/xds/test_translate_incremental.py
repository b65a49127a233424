"""The per-virtual-host incremental xDS translator: edge cases and a random series.

Every test holds the incremental translator to its contract: the same serialized content as
a fresh translation, the very same message objects for unchanged IR, messages handed out
never mutated afterwards, and a cache holding only what the last translation used.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from xds_ir import (
    APP,
    CANARY,
    CERT_PEM,
    EXTERNAL,
    KEY_PEM,
    SHADOW,
    S,
    cluster,
    dest,
    gateway,
    route,
)

from egobs import ir
from egobs.gatewayapi import SinkAddress, sink_access_log
from egobs.xds.resources import ResourceSet, resource_version
from egobs.xds.translate import Translator, translate
from egobs.xds.translate.listener import plan

KINDS = ("listeners", "routes", "clusters", "endpoints", "secrets")
TLS = ir.TLSConfig((ir.Certificate("t/cert", CERT_PEM, KEY_PEM),))
# Same cluster name as APP, other endpoints: the first use by route order must win.
APP_ELSEWHERE = cluster("service/default/app/80", "10.9.9.9")


def _versions(rs: ResourceSet) -> dict[str, dict[str, str]]:
    return {
        kind: {name: resource_version(msg) for name, msg in getattr(rs, kind).items()}
        for kind in KINDS
    }


def _same_objects(a: ResourceSet, b: ResourceSet) -> list[str]:
    """Names of the resources of ``b`` that are not the very same objects as in ``a``."""
    return [
        f"{kind}/{name}"
        for kind in KINDS
        for name, msg in getattr(b, kind).items()
        if getattr(a, kind).get(name) is not msg
    ]


def _gateway(*listeners: ir.HTTPListener) -> ir.Gateway:
    return gateway("t/gw", http=listeners)


def _http(name: str, routes: list[ir.HTTPRoute], **kw: Any) -> ir.HTTPListener:
    port = kw.pop("port", 80)
    hostnames = kw.pop("hostnames", ("*",))
    return ir.HTTPListener(f"t/gw/{name}", "0.0.0.0", port, hostnames, tuple(routes), **kw)


def _check(translator: Translator, gw: ir.Gateway, scopes_from: int | None = None) -> ResourceSet:
    got = translator.translate(gw)
    if scopes_from is None:
        assert _versions(got) == _versions(translate(gw))
    else:
        fresh = translate(gw, hostname_scopes_min_routes=scopes_from)
        assert _versions(got) == _versions(fresh)
        assert {n: resource_version(m) for n, m in got.scoped_routes.items()} == {
            n: resource_version(m) for n, m in fresh.scoped_routes.items()
        }
    return got


# --------------------------------------------------------------------------- bug


def test_wildcard_host_next_to_a_literal_wildcard_host_is_reused() -> None:
    """'*.example.com' and 'wildcard.example.com' get the same virtual host name.

    Both are valid Gateway API hostnames (Envoy accepts the duplicate virtual host name), but
    the per-host state is keyed by (route configuration, virtual host name): one host's state
    overwrites the other's, so every translation of unchanged IR rebuilds that host's routes,
    the host and the whole route configuration (a new object every time). Before c864e9a the
    key included the hostname and the IR route ids, and this was reused.
    """
    routes = [route(f"wild{i}", "*.example.com") for i in range(3)] + [
        route(f"literal{i}", "wildcard.example.com") for i in range(3)
    ]
    gw = _gateway(_http("http", routes))
    translator = Translator()
    first = _check(translator, gw)
    domains = [list(vh.domains) for vh in first.routes["t/gw/http"].virtual_hosts]
    assert domains == [["*.example.com"], ["wildcard.example.com"]]
    second = _check(translator, gw)
    assert translator.last_stats["routes_built"] == 0, dict(translator.last_stats)
    assert _same_objects(first, second) == []


# --------------------------------------------------------------------------- edge cases


def test_wildcard_collision_still_equals_fresh_over_edits() -> None:
    rng = random.Random(3)
    hosts = ["*.example.com", "wildcard.example.com", "*", "wildcard"]
    routes = [route(f"r{i}", rng.choice(hosts)) for i in range(12)]
    translator = Translator()
    for step in range(60):
        i = rng.randrange(len(routes))
        if step % 3 == 0:
            routes[i] = dataclasses.replace(routes[i], hostname=rng.choice(hosts))
        elif step % 3 == 1:
            routes[i] = dataclasses.replace(routes[i])
        else:
            routes.insert(i, route(f"n{step}", rng.choice(hosts)))
        _check(translator, _gateway(_http("http", routes)))


def test_vhosts_reordered_removed_and_added() -> None:
    """The copy-and-patch assembly with hosts moving, disappearing and appearing."""
    a, b, c, d = (route(h, f"{h}.example.com") for h in "abcd")
    translator = Translator()
    held: list[tuple[ResourceSet, dict[str, dict[str, str]]]] = []
    for order in ([a, b, c, d], [d, c, b, a], [b, a, c, d], [a, c, d], [a, b, c, d], [a]):
        got = _check(translator, _gateway(_http("http", order)))
        vhosts = [vh.name for vh in got.routes["t/gw/http"].virtual_hosts]
        assert vhosts == [f"t/gw/http/{r.hostname.replace('.', '_')}" for r in order]
        held.append((got, _versions(got)))
    # Nothing handed out was patched in place afterwards.
    for rs, versions in held:
        assert _versions(rs) == versions


def test_one_changed_host_among_many_is_patched_from_the_last_configuration() -> None:
    routes = [route(f"r{i}", f"h{i}.example.com") for i in range(12)]
    translator = Translator()
    first = _check(translator, _gateway(_http("http", routes)))
    before = resource_version(first.routes["t/gw/http"])
    routes[5] = dataclasses.replace(routes[5], path_match=ir.PathMatch(S.PREFIX, "/x"))
    second = _check(translator, _gateway(_http("http", routes)))
    assert translator.last_stats["vhosts_built"] == 1
    assert second.routes["t/gw/http"] is not first.routes["t/gw/http"]
    assert resource_version(first.routes["t/gw/http"]) == before
    # Swapping two hosts (same count, two positions differ) is patched as well.
    routes[0], routes[11] = routes[11], routes[0]
    _check(translator, _gateway(_http("http", routes)))


def test_merged_listeners_hand_a_hostname_over() -> None:
    """Two HTTP listeners on one port: the most specific one owns a shared hostname."""
    general = [route("g-www", "www.example.com"), route("g-any")]
    specific = [route("s-www", "www.example.com", path_match=ir.PathMatch(S.PREFIX, "/s"))]
    translator = Translator()
    for hostnames, spec_routes in (
        (("www.example.com",), specific),
        (("*.example.com",), specific),
        (("*",), specific),  # equal rank: the first listener keeps it
        (("www.example.com",), []),
        (("www.example.com",), specific),
    ):
        gw = _gateway(_http("a", general), _http("b", spec_routes, hostnames=hostnames, port=80))
        got = _check(translator, gw)
        (rc,) = got.routes.values()
        assert rc.name == "t/gw/a"
    # The first listener of the port goes away: the configuration is renamed, still equal.
    _check(translator, _gateway(_http("b", specific, hostnames=("www.example.com",))))


def test_same_ir_route_object_in_two_route_configurations() -> None:
    shared = route("shared", "app.example.com")
    other = route("other", "app.example.com", path_match=ir.PathMatch(S.PREFIX, "/o"))
    translator = Translator()
    first = _check(
        translator, _gateway(_http("a", [shared, other]), _http("b", [shared], port=8080))
    )
    # Editing only listener a's other route leaves listener b's configuration as it was.
    other2 = dataclasses.replace(other, path_match=ir.PathMatch(S.PREFIX, "/o2"))
    second = _check(
        translator, _gateway(_http("a", [shared, other2]), _http("b", [shared], port=8080))
    )
    assert second.routes["t/gw/b"] is first.routes["t/gw/b"]
    assert second.routes["t/gw/a"] is not first.routes["t/gw/a"]
    # The same object twice in one host, then gone from one configuration.
    _check(translator, _gateway(_http("a", [shared, shared]), _http("b", [shared], port=8080)))
    _check(translator, _gateway(_http("a", [other]), _http("b", [shared], port=8080)))


def test_equal_but_not_identical_gateway_gives_the_same_objects() -> None:
    routes = [route(f"r{i}", f"h{i % 3}.example.com") for i in range(9)]
    translator = Translator()
    first = _check(translator, _gateway(_http("http", routes), _http("tls", routes, tls=TLS)))
    copies = [dataclasses.replace(r) for r in routes]
    second = _check(translator, _gateway(_http("http", copies), _http("tls", copies, tls=TLS)))
    assert translator.last_stats["routes_built"] == 0
    assert _same_objects(first, second) == []


def test_hostname_change_moves_a_route_between_hosts() -> None:
    r = route("mover", "a.example.com")
    keep = route("keep", "b.example.com")
    translator = Translator()
    _check(translator, _gateway(_http("http", [r, keep])))
    _check(
        translator,
        _gateway(_http("http", [dataclasses.replace(r, hostname="b.example.com"), keep])),
    )
    _check(translator, _gateway(_http("http", [keep, r])))


def test_cluster_first_use_order_across_hosts() -> None:
    """Two IR clusters with one name: the first use, in host then route order, wins."""
    x = route("x", "a.example.com", destination=dest("x", (APP, 1)))
    y = route("y", "b.example.com", destination=dest("y", (APP_ELSEWHERE, 1)))
    translator = Translator()
    for order in ([x, y], [y, x], [x, y], [y]):
        _check(translator, _gateway(_http("http", order)))


# --------------------------------------------------------------------------- series


_HOSTS = ["a.example.com", "*.example.com", "*", "b.example.com", "www.example.com"]
_LISTENER_HOSTS = [("*",), ("*.example.com",), ("www.example.com",), ("a.example.com",)]
# Mostly exact: tables without a wildcard or catch-all host (which can be split) are common.
_MOSTLY_EXACT = ["a.example.com", "b.example.com", "www.example.com", "c.example.com", "*"]


def _random_route(rng: random.Random, n: int, hosts: list[str] = _HOSTS) -> ir.HTTPRoute:
    backend = rng.choice(
        [((APP, 1),), ((APP, 90), (CANARY, 10)), ((CANARY, 1),), ((APP_ELSEWHERE, 1),)]
    )
    kw: dict[str, Any] = {}
    if rng.random() < 0.2:
        kw["mirrors"] = (ir.Mirror(SHADOW),)
    return route(
        f"r{n}",
        rng.choice(hosts),
        path_match=ir.PathMatch(S.PREFIX, f"/p{rng.randrange(5)}"),
        destination=dest(f"r{n}", *backend),
        **kw,
    )


# 4: the largest route table with exact hostnames only is split by hostname now and then.
@pytest.mark.parametrize("scopes_from", [None, 4])
def test_random_series_over_merged_listeners_tls_and_shared_routes(
    scopes_from: int | None,
) -> None:
    rng = random.Random(11)
    hosts = _HOSTS if scopes_from is None else _MOSTLY_EXACT
    # [name, port, hostnames, routes, tls]
    listeners: list[list[Any]] = [
        [f"l{i}", rng.choice([80, 8080]), rng.choice(_LISTENER_HOSTS), [], None] for i in range(3)
    ]
    for i, lis in enumerate(listeners):
        lis[3] = [_random_route(rng, i * 100 + j, hosts) for j in range(6)]
    translator = (
        Translator() if scopes_from is None else Translator(hostname_scopes_min_routes=scopes_from)
    )
    held: list[tuple[ResourceSet, dict[str, dict[str, str]]]] = []
    splits = 0
    for step in range(250):
        lis = rng.choice(listeners)
        routes = lis[3]
        op = rng.randrange(12)
        if op == 0 and routes:
            i = rng.randrange(len(routes))
            routes[i] = dataclasses.replace(routes[i], hostname=rng.choice(hosts))
        elif op == 1 and routes:
            i = rng.randrange(len(routes))
            routes[i] = dataclasses.replace(routes[i], path_match=ir.PathMatch(S.EXACT, f"/{step}"))
        elif op == 2 and routes:
            del routes[rng.randrange(len(routes))]
        elif op == 3:
            routes.insert(rng.randrange(len(routes) + 1), _random_route(rng, 1000 + step, hosts))
        elif op == 4 and routes:
            i = rng.randrange(len(routes))
            routes[i] = dataclasses.replace(routes[i])
        elif op == 5 and len(routes) > 1:
            i, j = rng.randrange(len(routes)), rng.randrange(len(routes))
            routes[i], routes[j] = routes[j], routes[i]
        elif op == 6:
            donor = rng.choice(listeners)[3]
            if donor:
                routes.append(rng.choice(donor))  # one IR object in two listeners
        elif op == 7:
            lis[2] = rng.choice(_LISTENER_HOSTS)
        elif op == 8:
            rng.shuffle(listeners)
        elif op == 9:
            lis[4] = None if lis[4] else TLS
        elif op == 10:
            lis[1] = rng.choice([80, 8080, 9090])
        else:
            for other in listeners:
                other[3] = [dataclasses.replace(r) for r in other[3]]
        gw = gateway(
            "t/gw",
            http=tuple(
                ir.HTTPListener(f"t/gw/{n}", "0.0.0.0", p, h, tuple(rs), tls=t)
                for n, p, h, rs, t in listeners
            ),
            access_logs=(sink_access_log(SinkAddress("10.0.0.9", 9001)),) if step % 2 else (),
        )
        got = _check(translator, gw, scopes_from)
        splits += bool(got.scoped_routes)
        again = translator.translate(gw)
        assert _same_objects(got, again) == [], step
        held = [*held[-4:], (got, _versions(got))]
        for rs, versions in held:
            assert _versions(rs) == versions, step
        cache = translator._caches["t/gw"]
        # Per route configuration, at most the distinct IR routes of its listeners.
        distinct = sum(
            len({id(r) for lis in group for r in lis.routes}) for _, group in plan(gw).route_configs
        )
        assert sum(len(s.routes) for s in cache.vhosts.values()) <= distinct
        assert len(cache.vhosts) == sum(len(rc.virtual_hosts) for rc in got.routes.values())
        assert len(cache.route_configs) == len(got.routes)
        assert len(cache.clusters) <= len(got.clusters)
        assert len(cache.listeners) == len(got.listeners)
    if scopes_from is not None:
        assert 0 < splits < 250, splits  # both shapes, and the switches between them
    else:
        assert splits == 0


def test_routes_of_a_renamed_route_configuration_are_reused() -> None:
    """Removing the first listener on a port renames the port's route configuration; the
    other listener's routes are found by value, not rebuilt."""
    a = [
        route(f"a{i}", "a.example.com", path_match=ir.PathMatch(S.PREFIX, f"/{i}"))
        for i in range(5)
    ]
    b = [
        route(f"b{i}", "b.example.com", path_match=ir.PathMatch(S.PREFIX, f"/{i}"))
        for i in range(5)
    ]
    first = ir.HTTPListener("t/gw/first", "0.0.0.0", 80, ("a.example.com",), tuple(a))
    second = ir.HTTPListener("t/gw/second", "0.0.0.0", 80, ("b.example.com",), tuple(b))
    translator = Translator()
    before = translator.translate(gateway("t/gw", http=(first, second)))
    after = translator.translate(gateway("t/gw", http=(second,)))
    assert set(before.routes) != set(after.routes)  # the configuration was renamed
    assert translator.last_stats["routes_built"] == 0
    fresh = translate(gateway("t/gw", http=(second,)))
    assert {n: resource_version(m) for n, m in after.routes.items()} == {
        n: resource_version(m) for n, m in fresh.routes.items()
    }


# --------------------------------------------------------------------------- endpoint rows


def _with_rows(gw: ir.Gateway, **changes: tuple[ir.Endpoint, ...]) -> ir.Gateway:
    """``gw`` with the rows of some clusters (by Python name of the IR constant) changed."""
    names = {APP.name: "app", CANARY.name: "canary", EXTERNAL.name: "external"}
    rows = tuple(
        ir.ClusterEndpoints(row.cluster, changes[names[row.cluster]])
        if names.get(row.cluster) in changes
        else row
        for row in gw.endpoints
    )
    return dataclasses.replace(gw, endpoints=rows)


def _endpoint_gateway() -> ir.Gateway:
    return _gateway(
        _http(
            "http",
            [
                route("a", path_match=ir.PathMatch(S.PREFIX, "/a")),
                route("b", destination=dest("b", (CANARY, 1), (EXTERNAL, 1))),
            ],
        )
    )


def test_a_changed_row_rebuilds_only_its_assignment() -> None:
    translator = Translator()
    gw = _endpoint_gateway()
    first = _check(translator, gw)
    changed = _with_rows(gw, app=(ir.Endpoint("10.5.5.5", 8080),))
    second = _check(translator, changed)
    assert _same_objects(first, second) == [f"endpoints/{APP.name}"]
    assert dict(translator.last_stats) == {"assignments_built": 1}
    socket = second.endpoints[APP.name].endpoints[0].lb_endpoints[0].endpoint.address
    assert (socket.socket_address.address, socket.socket_address.port_value) == ("10.5.5.5", 8080)
    # Back to the first rows, and then a route edit: still what a fresh translation gives.
    _check(translator, gw)
    _check(translator, _gateway(_http("http", [route("a")])))


def test_a_changed_row_of_a_dns_cluster_rebuilds_that_cluster() -> None:
    """DNS names cannot be EDS endpoints: the cluster carries them, so it is rebuilt."""
    translator = Translator()
    gw = _endpoint_gateway()
    first = _check(translator, gw)
    second = _check(translator, _with_rows(gw, external=(ir.Endpoint("other.example.org", 443),)))
    assert _same_objects(first, second) == [f"clusters/{EXTERNAL.name}"]
    assert dict(translator.last_stats) == {"clusters_built": 1}


def test_rows_and_routes_changed_together_take_the_full_path() -> None:
    translator = Translator()
    gw = _endpoint_gateway()
    first = _check(translator, gw)
    edited = _with_rows(
        _gateway(_http("http", [route("a", path_match=ir.PathMatch(S.PREFIX, "/z"))])),
        app=(ir.Endpoint("10.6.6.6", 8080),),
    )
    second = _check(translator, edited)
    assert translator.last_stats["routes_built"] == 1
    assert second.endpoints[APP.name] is not first.endpoints[APP.name]
