"""Route tables split by hostname: when the xDS translator splits, what it emits, what a
change rebuilds, and that Envoy accepts the result (its static form, validated)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from testkit import envoy_validate
from xds_ir import S, gateway, route

from egobs import ir
from egobs.infra.host import find_envoy
from egobs.xds.dump import config_dump, static_bootstrap
from egobs.xds.resources import ResourceSet, resource_version
from egobs.xds.translate import Translator, translate


def _routes(*hostnames: str, per_host: int = 2) -> list[ir.HTTPRoute]:
    return [
        route(f"r{i}-{j}", host, path_match=ir.PathMatch(S.PREFIX, f"/p{j}"))
        for i, host in enumerate(hostnames)
        for j in range(per_host)
    ]


def _gateway(*listeners: tuple[str, int, list[ir.HTTPRoute]]) -> ir.Gateway:
    return gateway(
        "t/gw",
        http=tuple(
            ir.HTTPListener(f"t/gw/{name}", "0.0.0.0", port, ("*",), tuple(routes))
            for name, port, routes in listeners
        ),
    )


def _hcm(rs: ResourceSet, listener: str) -> hcm_pb2.HttpConnectionManager:
    out = hcm_pb2.HttpConnectionManager()
    rs.listeners[listener].filter_chains[0].filters[0].typed_config.Unpack(out)
    return out


def _versions(rs: ResourceSet) -> dict[str, dict[str, str]]:
    kinds = ("listeners", "scoped_routes", "routes", "clusters", "endpoints")
    return {k: {n: resource_version(m) for n, m in getattr(rs, k).items()} for k in kinds}


HOSTS = ("a.example.com", "b.example.com", "c.example.com")


def test_a_table_of_exact_hostnames_is_split_from_the_threshold() -> None:
    gw = _gateway(("http", 80, _routes(*HOSTS)))  # 6 routes
    whole = translate(gw, hostname_scopes_min_routes=7)
    assert list(whole.routes) == ["t/gw/http"] and not whole.scoped_routes
    assert _hcm(whole, "t/gw/http").rds.route_config_name == "t/gw/http"

    split = translate(gw, hostname_scopes_min_routes=6)
    names = [f"t/gw/http/{h.replace('.', '_')}" for h in HOSTS]
    assert list(split.routes) == names
    for name, host in zip(names, HOSTS, strict=True):
        config = split.routes[name]
        assert [vh.name for vh in config.virtual_hosts] == [name]
        assert list(config.virtual_hosts[0].domains) == [host]
        assert config.ignore_port_in_host_matching
        scope = split.scoped_routes[name]
        assert scope.route_configuration_name == name
        assert [f.string_key for f in scope.key.fragments] == [host]
    hcm = _hcm(split, "t/gw/http")
    assert not hcm.HasField("rds")
    scoped = hcm.scoped_routes
    assert scoped.name == "hostnames"  # in Envoy's stat names: one metric per counter
    assert scoped.scoped_rds.scoped_rds_config_source.HasField("ads")
    assert scoped.rds_config_source.HasField("ads")
    (fragment,) = scoped.scope_key_builder.fragments
    extractor = fragment.header_value_extractor
    assert (extractor.name, extractor.element_separator, extractor.index) == (":authority", ":", 0)
    # The very same routes, only arranged by hostname.
    assert [r for c in split.routes.values() for vh in c.virtual_hosts for r in vh.routes] == [
        r for vh in whole.routes["t/gw/http"].virtual_hosts for r in vh.routes
    ]
    assert translate(gw, hostname_scopes_min_routes=None).routes.keys() == whole.routes.keys()


@pytest.mark.parametrize("odd", ["*.example.com", "*"])
def test_a_wildcard_or_catch_all_hostname_keeps_the_table_whole(odd: str) -> None:
    rs = translate(_gateway(("http", 80, _routes(*HOSTS, odd))), hostname_scopes_min_routes=0)
    assert list(rs.routes) == ["t/gw/http"] and not rs.scoped_routes


def test_only_the_largest_table_is_split() -> None:
    gw = _gateway(
        ("small", 80, _routes(*HOSTS, per_host=1)),
        ("large", 8080, _routes(*HOSTS, per_host=3)),
    )
    rs = translate(gw, hostname_scopes_min_routes=0)
    assert "t/gw/small" in rs.routes
    assert {s.route_configuration_name for s in rs.scoped_routes.values()} == {
        f"t/gw/large/{h.replace('.', '_')}" for h in HOSTS
    }
    assert _hcm(rs, "t/gw/small").HasField("rds")
    assert _hcm(rs, "t/gw/large").HasField("scoped_routes")


def test_a_route_edit_rebuilds_only_its_hostnames_table() -> None:
    routes = _routes(*HOSTS, per_host=3)
    translator = Translator(hostname_scopes_min_routes=0)
    first = translator.translate(_gateway(("http", 80, routes)))
    routes[4] = dataclasses.replace(routes[4], path_match=ir.PathMatch(S.PREFIX, "/edited"))
    gw = _gateway(("http", 80, routes))
    second = translator.translate(gw)
    assert _versions(second) == _versions(translate(gw, hostname_scopes_min_routes=0))
    changed = [n for n, m in second.routes.items() if first.routes[n] is not m]
    assert changed == ["t/gw/http/b_example_com"]
    assert translator.last_stats["route_configs_built"] == 1
    assert all(second.scoped_routes[n] is m for n, m in first.scoped_routes.items())
    assert second.listeners["t/gw/http"] is first.listeners["t/gw/http"]


def test_a_new_hostname_adds_a_scope_and_keeps_the_listener() -> None:
    translator = Translator(hostname_scopes_min_routes=0)
    first = translator.translate(_gateway(("http", 80, _routes(*HOSTS))))
    gw = _gateway(("http", 80, _routes(*HOSTS, "d.example.com")))
    second = translator.translate(gw)
    assert _versions(second) == _versions(translate(gw, hostname_scopes_min_routes=0))
    assert set(second.scoped_routes) - set(first.scoped_routes) == {"t/gw/http/d_example_com"}
    assert second.listeners["t/gw/http"] is first.listeners["t/gw/http"]
    assert translator.last_stats["route_configs_built"] == 1


def test_switching_between_whole_and_split_equals_a_fresh_translation() -> None:
    translator = Translator(hostname_scopes_min_routes=0)
    exact = _routes(*HOSTS)
    for routes in (exact, [*exact, route("w", "*.example.com")], exact, exact[:2], exact):
        gw = _gateway(("http", 80, routes))
        got = translator.translate(gw)
        assert _versions(got) == _versions(translate(gw, hostname_scopes_min_routes=0))


def test_the_dump_shows_scopes_only_when_there_are_some() -> None:
    gw = _gateway(("http", 80, _routes(*HOSTS)))
    assert "scoped_routes" not in config_dump(translate(gw))
    dump = config_dump(translate(gw, hostname_scopes_min_routes=0))
    assert [s["key"]["fragments"][0]["stringKey"] for s in dump["scoped_routes"]] == list(HOSTS)
    assert dump["scoped_routes"][0]["@type"].endswith("ScopedRouteConfiguration")


@pytest.mark.envoy
def test_envoy_accepts_the_split_table_in_static_form(tmp_path: Path) -> None:
    try:
        envoy = find_envoy()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    rs = translate(_gateway(("http", 80, _routes(*HOSTS))), hostname_scopes_min_routes=0)
    bootstrap = static_bootstrap(rs, admin_port=0)
    text = json.dumps(bootstrap)
    assert '"scopedRouteConfigurationsList"' in text and '"scopedRds"' not in text
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps(bootstrap, indent=1))
    assert envoy_validate(envoy, config) is None
