"""Translator's patch path (only HTTPRoutes changed) gives exactly a full translation's output.

Every golden case with HTTPRoutes goes through a seeded series of edits, removals, additions
and re-additions of routes; after each step the memoizing Translator must equal the pure
translate(), and most steps must have been patched rather than run in full.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from egobs import gatewayapi
from egobs.gatewayapi import translator as translator_module
from egobs.resources import HTTPRoute, Resources, load_paths

TESTDATA = Path(__file__).parent / "testdata"
NOW = "2026-01-01T00:00:00Z"
CASES = sorted(
    case
    for case in TESTDATA.glob("*.in.yaml")
    if any(isinstance(o, HTTPRoute) for o in load_paths([case]))
)
HOSTNAMES = [[], ["a.example.com"], ["*.example.com"], ["www.example.com", "b.example.com"]]


def _edit(route: HTTPRoute, rng: random.Random) -> HTTPRoute:
    copy = route.model_copy(deep=True)
    choice = rng.randrange(4)
    if choice == 0:
        copy.spec.hostnames = rng.choice(HOSTNAMES)
    elif choice == 1 and len(copy.spec.rules) > 1:
        copy.spec.rules = list(reversed(copy.spec.rules))
    elif choice == 2 and copy.spec.parent_refs:
        ref = copy.spec.parent_refs[0]
        copy.spec.parent_refs = [ref.model_copy(update={"section_name": None})]
    else:
        for rule in copy.spec.rules:
            for match in rule.matches:
                if match.path is not None and match.path.type == "PathPrefix":
                    match.path = type(match.path)(type="PathPrefix", value="/edited")
    return copy


def _renamed(route: HTTPRoute, n: int) -> HTTPRoute:
    copy = route.model_copy(deep=True)
    copy.metadata.name = f"{route.name}-added-{n}"
    return copy


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name.removesuffix(".in.yaml"))
def test_patched_translation_equals_full_translation(
    case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_runs = 0
    run = translator_module._Translation.run

    def counting_run(self: Any) -> gatewayapi.Result:
        nonlocal full_runs
        if self.memo is not None:
            full_runs += 1
        return run(self)

    monkeypatch.setattr(translator_module._Translation, "run", counting_run)
    rng = random.Random(case.name)
    objs = list(load_paths([case]))
    removed: list[HTTPRoute] = []
    t = gatewayapi.Translator()
    steps = 40
    for step in range(steps):
        routes = [i for i, o in enumerate(objs) if isinstance(o, HTTPRoute)]
        op = rng.randrange(5)
        if op <= 1 and routes:
            i = rng.choice(routes)
            objs[i] = _edit(objs[i], rng)  # type: ignore[arg-type]
        elif op == 2 and len(routes) > 1:
            removed.append(objs.pop(rng.choice(routes)))  # type: ignore[arg-type]
        elif op == 3 and removed:
            objs.append(removed.pop(rng.randrange(len(removed))))
        elif routes:
            objs.append(_renamed(objs[rng.choice(routes)], step))  # type: ignore[arg-type]
        res = Resources.of(objs)
        assert t.translate(res, now=NOW) == gatewayapi.translate(res, now=NOW), (case.name, step)
    has_l4 = any(o.KIND in ("TCPRoute", "TLSRoute", "UDPRoute") for o in objs)
    if not has_l4:
        # The first run is full; a few more when an addition duplicates a removed key.
        assert full_runs < steps // 2, full_runs


def test_patch_moves_only_the_changed_routes_entries() -> None:
    res = load_paths([TESTDATA / "http_match_precedence.in.yaml"])
    t = gatewayapi.Translator()
    first = t.translate(res, now=NOW)
    objs = list(res)
    i = next(k for k, o in enumerate(objs) if isinstance(o, HTTPRoute))
    changed = objs[i].model_copy(deep=True)
    assert isinstance(changed, HTTPRoute)
    changed.spec.hostnames = ["moved.example.com"]
    objs[i] = changed
    res2 = Resources.of(objs)
    second = t.translate(res2, now=NOW)
    assert second == gatewayapi.translate(res2, now=NOW)
    assert t.compiled_last == 1
    assert t.reused_last == len(res2.http_routes) - 1
    # The previous result is not changed by patching the next one.
    assert first == gatewayapi.translate(res, now=NOW)


def test_a_failing_patch_leaves_no_half_state(monkeypatch: pytest.MonkeyPatch) -> None:
    res = load_paths([TESTDATA / "http_match_precedence.in.yaml"])
    t = gatewayapi.Translator()
    t.translate(res, now=NOW)
    objs = list(res)
    i = next(k for k, o in enumerate(objs) if isinstance(o, HTTPRoute))
    edited = _edit(objs[i], random.Random(1))  # type: ignore[arg-type]
    objs[i] = edited
    res2 = Resources.of(objs)

    def broken(*_: object, **__: object) -> object:
        raise RuntimeError("compile failed")

    monkeypatch.setattr(translator_module, "compile_http", broken)
    with pytest.raises(RuntimeError):
        t.translate(res2, now=NOW)
    monkeypatch.undo()
    assert t.translate(res2, now=NOW) == gatewayapi.translate(res2, now=NOW)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name.removesuffix(".in.yaml"))
def test_removing_and_readding_each_route_equals_a_full_translation(case: Path) -> None:
    """Statuses that depend on which routes exist besides the routes' own (BackendTLSPolicy
    ancestors, attachedRoutes of ListenerSet listeners) follow one route going and coming
    back on the patch path, as a full translation has them."""
    objs = list(load_paths([case]))
    for i, obj in enumerate(objs):
        if not isinstance(obj, HTTPRoute):
            continue
        translator = gatewayapi.Translator()
        translator.translate(Resources.of(objs), now=NOW)
        for step in (objs[:i] + objs[i + 1 :], objs):
            got = translator.translate(Resources.of(step), now=NOW)
            assert got == gatewayapi.translate(Resources.of(step), now=NOW), obj.name
