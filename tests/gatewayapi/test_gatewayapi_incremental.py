"""The memoizing Translator gives exactly translate()'s output, compiling only what changed."""

from __future__ import annotations

import asyncio
import time
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


def _ir_routes(result: gatewayapi.Result) -> list[object]:
    return [r for gw in result.gateways.values() for lis in gw.http for r in lis.routes]


def _replace_route(res: Resources, index: int, change: object) -> Resources:
    objs = list(res)
    routes = [k for k, o in enumerate(objs) if isinstance(o, HTTPRoute)]
    changed = objs[routes[index]].model_copy(deep=True)
    assert isinstance(changed, HTTPRoute)
    change(changed)  # type: ignore[operator]
    objs[routes[index]] = changed
    return Resources.of(objs)


def test_unchanged_routes_keep_their_ir_objects_and_statuses() -> None:
    res = load_paths([TESTDATA / "http_match_precedence.in.yaml"])
    t = gatewayapi.Translator()
    first = t.translate(res, now=NOW)
    before = {id(r): r for r in _ir_routes(first)}

    def rename_path(route: HTTPRoute) -> None:
        route.spec.rules[0].matches[0].path = type(route.spec.rules[0].matches[0].path)(
            type="PathPrefix", value="/moved"
        )

    res2 = _replace_route(res, 0, rename_path)
    second = t.translate(res2, now=NOW)
    assert second == gatewayapi.translate(res2, now=NOW)
    assert t.reused_last == len(res2.http_routes) - 1
    changed_key = res2.http_routes[0].key
    for key, status in second.statuses.items():
        if key[0] == "HTTPRoute" and key != changed_key:
            assert status is first.statuses[key]
    # Routes of unchanged objects are the very objects of the last run (the xDS translator
    # finds them by identity); only the changed route's are new.
    prefix = _prefix(res2)
    after = _ir_routes(second)
    assert any(id(r) in before for r in after)
    for r in after:
        assert (id(r) in before) == (not r.name.startswith(prefix)), r.name  # type: ignore[attr-defined]


def _prefix(res: Resources) -> str:
    r = res.http_routes[0]
    return f"httproute/{r.namespace}/{r.name}/"


def test_adding_and_removing_routes_keeps_precedence_order() -> None:
    res = load_paths([TESTDATA / "http_match_precedence.in.yaml"])
    objs = list(res)
    routes = [o for o in objs if isinstance(o, HTTPRoute)]
    t = gatewayapi.Translator()
    # Every subset in turn, each derived from the last translation's order by patching.
    for drop in [*routes, None, routes[-1], routes[0]]:
        subset = Resources.of([o for o in objs if o is not drop])
        assert t.translate(subset, now=NOW) == gatewayapi.translate(subset, now=NOW)


def test_gateway_change_recomputes_attachment() -> None:
    res = load_paths([TESTDATA / "listener_hostname_conflict.in.yaml"])
    t = gatewayapi.Translator()
    t.translate(res, now=NOW)
    objs = [o for o in res if o.KIND != "Gateway"]
    gateways = [o for o in res if o.KIND == "Gateway"]
    for gw in gateways:
        copy = gw.model_copy(deep=True)
        copy.spec.listeners = copy.spec.listeners[:1]
        objs.append(copy)
    res2 = Resources.of(objs)
    assert t.translate(res2, now=NOW) == gatewayapi.translate(res2, now=NOW)
    assert t.reused_last == 0
    # And back: same output as a fresh translation again.
    assert t.translate(res, now=NOW) == gatewayapi.translate(res, now=NOW)


def test_later_now_keeps_conditions_of_unchanged_routes() -> None:
    res = load_paths([TESTDATA / "http_basic.in.yaml"])
    t = gatewayapi.Translator()
    first = t.translate(res, now=NOW)
    later = t.translate(res, now="2026-01-01T00:05:00Z")
    for key, status in later.statuses.items():
        if key[0] == "HTTPRoute":
            assert status is first.statuses[key]
        else:
            for cond in status["conditions"]:
                assert cond["lastTransitionTime"] == "2026-01-01T00:05:00Z"


def test_copies_instead_of_the_same_objects_are_slower_never_wrong() -> None:
    """The Translator leans on the provider contract (egobs.provider.base): objects that did
    not change are the very same objects. A provider that hands back equal copies instead
    gets every route compiled again, and still exactly translate()'s output."""
    t = gatewayapi.Translator()
    for case in sorted(TESTDATA.glob("*.in.yaml")):
        res = load_paths([case])
        t.translate(res, now=NOW)
        copies = Resources.of([o.model_copy(deep=True) for o in res])
        assert t.translate(copies, now=NOW) == gatewayapi.translate(res, now=NOW), case.name
        assert t.endpoint_update_last is None
        attached = sum(1 for _ in res.http_routes) + sum(1 for _ in res.grpc_routes)
        assert t.compiled_last <= attached


def test_the_file_provider_keeps_objects_of_files_it_did_not_reload(tmp_path: Path) -> None:
    """The other half of that contract, on the provider that exists."""
    from egobs.provider import FileProvider, ResourceSnapshot

    (tmp_path / "a.yaml").write_text((TESTDATA / "http_basic.in.yaml").read_text())
    (tmp_path / "b.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: default}\n"
        "spec: {ports: [{port: 80}]}\n"
    )
    published: list[ResourceSnapshot] = []

    async def scenario() -> None:
        prov = FileProvider([tmp_path], publish=published.append)
        await prov.start()
        try:
            await asyncio.sleep(0.2)  # the watcher is up
            (tmp_path / "b.yaml").write_text(
                "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: default}\n"
                "spec: {ports: [{port: 81}]}\n"
            )
            deadline = time.monotonic() + 10
            while len(published) < 2:
                assert time.monotonic() < deadline, "the edit was not published"
                await asyncio.sleep(0.01)
        finally:
            await prov.stop()

    asyncio.run(scenario())
    before = {o.key: o for o in published[0].resources}
    after = {o.key: o for o in published[-1].resources}
    assert after.keys() == before.keys()
    for key, obj in after.items():
        if key == ("Service", "default", "extra"):
            assert obj is not before[key]
        else:
            assert obj is before[key], key
