"""The incremental xDS translator equals a fresh translation over a series of IR edits."""

from __future__ import annotations

import dataclasses
import random

from xds_ir import APP, CANARY, S, dest, route

from egobs import ir
from egobs.xds.resources import ResourceSet, resource_version
from egobs.xds.translate import Translator, translate

HOSTS = ["a.example.com", "b.example.com", "*.example.com", "*", "c.example.com"]


def _gateway(routes: list[ir.HTTPRoute], second: list[ir.HTTPRoute]) -> ir.Gateway:
    return ir.Gateway(
        "t/gw",
        http=(
            ir.HTTPListener("t/gw/http", "0.0.0.0", 80, ("*",), tuple(routes)),
            ir.HTTPListener("t/gw/alt", "0.0.0.0", 8080, ("*",), tuple(second)),
        ),
    )


def _versions(rs: ResourceSet) -> dict[str, dict[str, str]]:
    return {
        kind: {name: resource_version(msg) for name, msg in getattr(rs, kind).items()}
        for kind in ("listeners", "routes", "clusters", "endpoints", "secrets")
    }


def _new_route(rng: random.Random, n: int) -> ir.HTTPRoute:
    backend = rng.choice([((APP, 1),), ((APP, 90), (CANARY, 10)), ((CANARY, 1),)])
    return route(
        f"r{n}",
        rng.choice(HOSTS),
        path_match=ir.PathMatch(S.PREFIX, f"/p{rng.randrange(50)}"),
        destination=dest(f"r{n}", *backend),
    )


def test_incremental_translation_equals_fresh_over_random_edits() -> None:
    rng = random.Random(7)
    routes = [_new_route(rng, n) for n in range(40)]
    second = [_new_route(rng, 1000 + n) for n in range(5)]
    translator = Translator()
    built_total = 0
    for step in range(150):
        op = rng.randrange(6)
        i = rng.randrange(len(routes))
        if op == 0:
            routes[i] = dataclasses.replace(routes[i], hostname=rng.choice(HOSTS))
        elif op == 1:
            routes[i] = dataclasses.replace(
                routes[i], path_match=ir.PathMatch(S.PREFIX, f"/edit{step}")
            )
        elif op == 2 and len(routes) > 5:
            del routes[i]
        elif op == 3:
            routes.insert(i, _new_route(rng, 100 + step))
        elif op == 4:
            # An equal but not identical IR route: found by value, nothing rebuilt for it.
            routes[i] = dataclasses.replace(routes[i])
        else:
            routes[i], routes[-1] = routes[-1], routes[i]
        gw = _gateway(routes, second)
        got = translator.translate(gw)
        built_total += translator.last_stats["routes_built"]
        assert _versions(got) == _versions(translate(gw)), step
    # Most steps touch one route: nowhere near every route rebuilt every time.
    assert built_total < 150 * 3
