"""The memoizing Translator gives exactly translate()'s output, compiling only what changed."""

from __future__ import annotations

from pathlib import Path

from egobs import gatewayapi
from egobs.resources import HTTPRoute, Resources, load_paths

TESTDATA = Path(__file__).parent / "testdata"
NOW = "2026-01-01T00:00:00Z"


def test_matches_pure_translation_on_every_golden_case() -> None:
    t = gatewayapi.Translator()
    for case in sorted(TESTDATA.glob("*.in.yaml")):
        res = load_paths([case])
        assert t.translate(res, now=NOW) == gatewayapi.translate(res, now=NOW), case.name
        # Same objects again: nothing recompiled, same output.
        assert t.translate(res, now=NOW) == gatewayapi.translate(res, now=NOW)
        assert t.compiled_last == 0


def test_only_the_changed_route_is_recompiled() -> None:
    res = load_paths([TESTDATA / "http_match_precedence.in.yaml"])
    t = gatewayapi.Translator()
    t.translate(res, now=NOW)
    assert t.compiled_last == len(res.http_routes) > 1
    objs = list(res)
    i = next(k for k, o in enumerate(objs) if isinstance(o, HTTPRoute))
    changed = objs[i].model_copy(deep=True)
    assert isinstance(changed, HTTPRoute)
    changed.spec.hostnames = []
    objs[i] = changed
    res2 = Resources.of(objs)
    assert t.translate(res2, now=NOW) == gatewayapi.translate(res2, now=NOW)
    assert t.compiled_last == 1


def test_backend_changes_recompile_everything() -> None:
    res = load_paths([TESTDATA / "backend_service_endpoints.in.yaml"])
    t = gatewayapi.Translator()
    t.translate(res, now=NOW)
    objs = [o for o in res if o.KIND != "EndpointSlice"]
    res2 = Resources.of(objs)
    assert t.translate(res2, now=NOW) == gatewayapi.translate(res2, now=NOW)
    assert t.compiled_last == len(res2.http_routes) + len(res2.grpc_routes)
