"""IR → xDS translation, checked on the protos."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.filters.udp.udp_proxy.v3 import route_pb2 as udp_route_pb2
from envoy.extensions.filters.udp.udp_proxy.v3 import udp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2
from xds_ir import (
    APP,
    CANARY,
    DB,
    DB2,
    KEY_PEM,
    SHADOW,
    S,
    cluster,
    dest,
    full_gateway,
    gateway,
    route,
)

from egobs import ir
from egobs.xds import resources
from egobs.xds.dump import config_dump
from egobs.xds.resources import ResourceSet, resource_version
from egobs.xds.translate import Translator, translate

BLACKHOLE = "egobs/invalid-backend"


@pytest.fixture(scope="module")
def rs() -> ResourceSet:
    return translate(full_gateway())


def find_route(rs: ResourceSet, name: str) -> rc.Route:
    found = [
        r
        for config in rs.routes.values()
        for vhost in config.virtual_hosts
        for r in vhost.routes
        if r.name == name
    ]
    assert len(found) == 1, f"{name}: {len(found)} routes"
    return found[0]


def hroute(rs: ResourceSet, short: str) -> rc.Route:
    return find_route(rs, f"httproute/default/{short}/rule/0/match/0")


def hcm_of(chain: object) -> hcm_pb2.HttpConnectionManager:
    out = hcm_pb2.HttpConnectionManager()
    assert chain.filters[0].name == "envoy.filters.network.http_connection_manager"  # type: ignore[attr-defined]
    assert chain.filters[0].typed_config.Unpack(out)  # type: ignore[attr-defined]
    return out


def tcp_proxy_of(chain: object) -> tcp_proxy_pb2.TcpProxy:
    out = tcp_proxy_pb2.TcpProxy()
    assert chain.filters[0].name == "envoy.filters.network.tcp_proxy"  # type: ignore[attr-defined]
    assert chain.filters[0].typed_config.Unpack(out)  # type: ignore[attr-defined]
    return out


def built(translator: Translator) -> dict[str, int]:
    return {k: v for k, v in translator.last_stats.items() if k.endswith("_built") and v}


def one_listener_gateway(*routes: ir.HTTPRoute) -> ir.Gateway:
    return gateway("t/gw", http=(ir.HTTPListener("t/gw/http", "0.0.0.0", 80, ("*",), routes),))


# --------------------------------------------------------------------------- resources


def test_type_urls_and_by_type(rs: ResourceSet) -> None:
    assert resources.LISTENER_TYPE == "type.googleapis.com/envoy.config.listener.v3.Listener"
    assert resources.ROUTE_TYPE == "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    assert resources.CLUSTER_TYPE == "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    assert (
        resources.ENDPOINT_TYPE
        == "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    )
    assert (
        resources.SECRET_TYPE
        == "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    )
    assert (
        resources.SCOPED_ROUTE_TYPE
        == "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration"
    )
    by_type = rs.by_type()
    assert set(by_type) == {
        resources.LISTENER_TYPE,
        resources.SCOPED_ROUTE_TYPE,
        resources.ROUTE_TYPE,
        resources.CLUSTER_TYPE,
        resources.ENDPOINT_TYPE,
        resources.SECRET_TYPE,
    }
    assert by_type[resources.CLUSTER_TYPE] == rs.clusters
    assert (
        by_type[resources.ENDPOINT_TYPE]["service/default/app/80"]
        is rs.endpoints["service/default/app/80"]
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        rs.listeners = {}  # type: ignore[misc]


def test_resource_version_is_a_stable_content_hash(rs: ResourceSet) -> None:
    config = rs.routes["default/eg/http"]
    version = resource_version(config)
    assert re.fullmatch(r"[0-9a-f]{16}", version)
    assert resource_version(translate(full_gateway()).routes["default/eg/http"]) == version
    assert resource_version(rs.routes["default/eg/https"]) != version


# --------------------------------------------------------------------------- listeners


def test_http_listeners_on_one_port_are_merged(rs: ResourceSet) -> None:
    assert list(rs.listeners) == [
        "default/eg/http",
        "default/eg/https",
        "default/eg/tcp",
        "default/eg/tcp-single",
        "default/eg/tcp-none",
        "default/eg/tls",
        "default/eg/udp",
    ]
    listener = rs.listeners["default/eg/http"]
    assert listener.address.socket_address.address == "0.0.0.0"
    assert listener.address.socket_address.port_value == 80
    assert len(listener.filter_chains) == 1
    assert not listener.listener_filters
    hcm = hcm_of(listener.filter_chains[0])
    assert hcm.stat_prefix == "http-80"
    assert hcm.rds.route_config_name == "default/eg/http"
    assert hcm.rds.config_source.HasField("ads")
    assert hcm.rds.config_source.resource_api_version == config_source_pb2.V3
    assert hcm.use_remote_address.value is True
    assert hcm.normalize_path.value is True
    assert hcm.merge_slashes is True
    assert hcm.path_with_escaped_slashes_action == hcm.UNESCAPE_AND_REDIRECT
    assert hcm.codec_type == hcm.AUTO
    assert [u.upgrade_type for u in hcm.upgrade_configs] == ["websocket"]
    assert hcm.http_filters[-1].name == "envoy.filters.http.router"


def test_route_configuration_has_one_vhost_per_hostname(rs: ResourceSet) -> None:
    config = rs.routes["default/eg/http"]
    assert config.ignore_port_in_host_matching is True
    assert [(v.name, list(v.domains)) for v in config.virtual_hosts] == [
        ("default/eg/http/app_example_com", ["app.example.com"]),
        ("default/eg/http/wildcard_example_com", ["*.example.com"]),
        ("default/eg/http/wildcard", ["*"]),
        ("default/eg/http/www_example_com", ["www.example.com"]),
        ("default/eg/http/grpc_example_com", ["grpc.example.com"]),
    ]
    # IR order is kept inside a virtual host.
    wildcard = config.virtual_hosts[1]
    assert [r.name.split("/")[2] for r in wildcard.routes] == [
        "regex",
        "rewrite-prefix",
        "strip-prefix",
        "root-prefix",
        "full",
    ]


def test_most_specific_listener_hostname_wins(rs: ResourceSet) -> None:
    www = [
        v for v in rs.routes["default/eg/http"].virtual_hosts if v.domains == ["www.example.com"]
    ]
    assert len(www) == 1
    # default/eg/http ("*") also has a www.example.com route; default/eg/http-www wins.
    assert [r.name for r in www[0].routes] == ["httproute/default/www-only/rule/0/match/0"]


@pytest.mark.parametrize(
    ("hostnames", "winner"),
    [
        ((("*",), ("*.example.com",)), 1),
        ((("*.example.com",), ("a.example.com",)), 1),
        ((("a.example.com",), ("*.example.com",)), 0),
        ((("*.example.com",), ("*",)), 0),
        ((("*.example.com",), ("*.a.example.com",)), 1),
    ],
)
def test_specificity_order(hostnames: tuple[tuple[str, ...], ...], winner: int) -> None:
    listeners = tuple(
        ir.HTTPListener(
            f"t/gw/l{i}",
            "0.0.0.0",
            80,
            hosts,
            (route(f"r{i}", "a.example.com"),),
        )
        for i, hosts in enumerate(hostnames)
    )
    out = translate(gateway("t/gw", http=listeners))
    assert list(out.listeners) == ["t/gw/l0"]
    (vhost,) = out.routes["t/gw/l0"].virtual_hosts
    assert [r.name for r in vhost.routes] == [f"httproute/default/r{winner}/rule/0/match/0"]


def test_https_filter_chains_by_sni(rs: ResourceSet) -> None:
    listener = rs.listeners["default/eg/https"]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    assert [c.name for c in listener.filter_chains] == ["default/eg/https", "default/eg/https-wild"]
    expected = {
        "default/eg/https": (["www.example.com"], ["h2", "http/1.1"]),
        "default/eg/https-wild": (["*.example.com"], ["http/1.1"]),
    }
    for chain in listener.filter_chains:
        server_names, alpn = expected[chain.name]
        assert list(chain.filter_chain_match.server_names) == server_names
        assert chain.filter_chain_match.transport_protocol == ""
        assert chain.transport_socket.name == "envoy.transport_sockets.tls"
        context = tls_pb2.DownstreamTlsContext()
        assert chain.transport_socket.typed_config.Unpack(context)
        (sds,) = context.common_tls_context.tls_certificate_sds_secret_configs
        assert sds.name == "default/example-cert"
        assert sds.sds_config.HasField("ads")
        assert list(context.common_tls_context.alpn_protocols) == alpn
        hcm = hcm_of(chain)
        assert hcm.rds.route_config_name == chain.name
        assert hcm.stat_prefix == "https-443"
    assert [v.domains[0] for v in rs.routes["default/eg/https"].virtual_hosts] == [
        "www.example.com"
    ]


def test_secrets(rs: ResourceSet) -> None:
    secret = rs.secrets["default/example-cert"]
    assert secret.tls_certificate.certificate_chain.inline_string.startswith("-----BEGIN CERT")
    assert secret.tls_certificate.private_key.inline_string == KEY_PEM


def test_https_wildcard_listener_and_duplicate_sni() -> None:
    tls = ir.TLSConfig((ir.Certificate("t/cert", "c", "k"),))
    listeners = (
        ir.HTTPListener("t/gw/a", "0.0.0.0", 443, ("a.example.com",), (), tls=tls),
        # Same hostname again: Envoy would reject two chains with one server name.
        ir.HTTPListener("t/gw/dup", "0.0.0.0", 443, ("a.example.com",), (), tls=tls),
        ir.HTTPListener("t/gw/all", "0.0.0.0", 443, ("*",), (), tls=tls),
    )
    out = translate(gateway("t/gw", http=listeners))
    chains = out.listeners["t/gw/a"].filter_chains
    assert [(c.name, list(c.filter_chain_match.server_names)) for c in chains] == [
        ("t/gw/a", ["a.example.com"]),
        ("t/gw/all", []),
    ]
    assert set(out.routes) == {"t/gw/a", "t/gw/all"}


def test_plaintext_and_tls_on_one_port_are_told_apart_by_transport() -> None:
    tls = ir.TLSConfig((ir.Certificate("t/cert", "c", "k"),))
    listeners = (
        ir.HTTPListener("t/gw/plain", "0.0.0.0", 8080, ("*",), ()),
        ir.HTTPListener("t/gw/tls", "0.0.0.0", 8080, ("*",), (), tls=tls),
    )
    out = translate(gateway("t/gw", http=listeners))
    (listener,) = out.listeners.values()
    assert [(c.name, c.filter_chain_match.transport_protocol) for c in listener.filter_chains] == [
        ("t/gw/tls", "tls"),
        ("t/gw/plain", ""),
    ]


def test_tcp_listener_uses_first_route_and_rejects_invalid_share(rs: ResourceSet) -> None:
    listener = rs.listeners["default/eg/tcp"]
    (chain,) = listener.filter_chains
    proxy = tcp_proxy_of(chain)
    assert proxy.stat_prefix == "tcp-5432"
    assert [(c.name, c.weight) for c in proxy.weighted_clusters.clusters] == [
        (DB.name, 3),
        (DB2.name, 1),
        (BLACKHOLE, 1),
    ]
    assert tcp_proxy_of(rs.listeners["default/eg/tcp-single"].filter_chains[0]).cluster == DB.name
    # No valid backend: connections go to a cluster without endpoints and are closed.
    assert tcp_proxy_of(rs.listeners["default/eg/tcp-none"].filter_chains[0]).cluster == BLACKHOLE
    blackhole = rs.clusters[BLACKHOLE]
    assert blackhole.type == cluster_pb2.Cluster.STATIC
    assert not blackhole.load_assignment.endpoints


def test_tcp_listener_without_routes_is_skipped() -> None:
    out = translate(gateway("t/gw", tcp=(ir.TCPListener("t/gw/tcp", "0.0.0.0", 9000, ()),)))
    assert out.listeners == {}
    assert BLACKHOLE not in out.clusters


def test_tls_passthrough(rs: ResourceSet) -> None:
    listener = rs.listeners["default/eg/tls"]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    chains = [(c.name, list(c.filter_chain_match.server_names)) for c in listener.filter_chains]
    assert chains == [
        ("tlsroute/default/a/rule/0", ["a.example.com", "b.example.com"]),
        ("tlsroute/default/any/rule/0", []),
    ]
    for chain in listener.filter_chains:
        assert not chain.HasField("transport_socket")
        proxy = tcp_proxy_of(chain)
        assert proxy.cluster == "service/default/tls-app/443"
        assert proxy.stat_prefix == "tls-passthrough-8443"


def test_udp_listener(rs: ResourceSet) -> None:
    listener = rs.listeners["default/eg/udp"]
    assert listener.address.socket_address.protocol == listener.address.socket_address.UDP
    assert listener.address.socket_address.port_value == 5353
    assert listener.HasField("udp_listener_config")
    assert not listener.filter_chains
    (udp_filter,) = listener.listener_filters
    assert udp_filter.name == "envoy.filters.udp_listener.udp_proxy"
    config = udp_proxy_pb2.UdpProxyConfig()
    assert udp_filter.typed_config.Unpack(config)
    assert config.stat_prefix == "udp-5353"
    action = config.matcher.on_no_match.action
    target = udp_route_pb2.Route()
    assert action.typed_config.Unpack(target)
    assert target.cluster == "service/default/dns/53"


# --------------------------------------------------------------------------- matches


def test_matches(rs: ResourceSet) -> None:
    match = hroute(rs, "exact").match
    assert match.path == "/exact"
    headers = {h.name: h.string_match for h in match.headers}
    assert headers["x-env"].exact == "prod"
    assert headers["x-re"].safe_regex.regex == "^a.*"
    assert headers[":method"].exact == "GET"
    params = {q.name: q.string_match for q in match.query_parameters}
    assert params["q"].exact == "1"
    assert params["r"].safe_regex.regex == "[0-9]+"

    assert hroute(rs, "weighted").match.path_separated_prefix == "/api"  # trailing "/" dropped
    assert hroute(rs, "catch-all").match.prefix == "/"  # no path match
    assert hroute(rs, "root-prefix").match.prefix == "/"
    regex = hroute(rs, "regex").match.safe_regex
    assert regex.regex == "/items/[0-9]+"
    assert not regex.HasField("google_re2")
    grpc = find_route(rs, "grpcroute/default/grpc/rule/0/match/0")
    assert grpc.match.path == "/pkg.Svc/Method"
    assert grpc.route.cluster == "service/default/grpc/9000"


# --------------------------------------------------------------------------- actions


def test_single_and_weighted_destinations(rs: ResourceSet) -> None:
    assert hroute(rs, "exact").route.cluster == APP.name
    weighted = hroute(rs, "weighted").route
    assert [(c.name, c.weight.value) for c in weighted.weighted_clusters.clusters] == [
        (APP.name, 80),
        (CANARY.name, 20),
    ]


def test_invalid_share_gets_500_by_runtime_fraction(rs: ResourceSet) -> None:
    vhost = next(
        v for v in rs.routes["default/eg/http"].virtual_hosts if v.domains == ["app.example.com"]
    )
    names = [r.name for r in vhost.routes]
    base = "httproute/default/invalid-share/rule/0/match/0"
    i = names.index(base + "/invalid-backend")
    assert names[i + 1] == base
    invalid, valid = vhost.routes[i], vhost.routes[i + 1]
    assert invalid.direct_response.status == 500
    assert invalid.match.path_separated_prefix == valid.match.path_separated_prefix == "/partial"
    fraction = invalid.match.runtime_fraction
    assert fraction.default_value.numerator == 500_000  # invalid 2 of total 4
    assert fraction.default_value.denominator == percent_pb2.FractionalPercent.MILLION
    assert fraction.runtime_key
    assert not valid.match.HasField("runtime_fraction")
    assert [(c.name, c.weight.value) for c in valid.route.weighted_clusters.clusters] == [
        (APP.name, 1),
        (CANARY.name, 1),
    ]
    # Runtime keys are per route, so each route's share can be overridden on its own.
    other = translate(
        one_listener_gateway(
            route(
                "other",
                path_match=ir.PathMatch(S.PREFIX, "/partial"),
                destination=dest("other", (APP, 3), invalid=1),
            )
        )
    )
    other_invalid = other.routes["t/gw/http"].virtual_hosts[0].routes[0]
    assert other_invalid.match.runtime_fraction.default_value.numerator == 250_000
    assert other_invalid.match.runtime_fraction.runtime_key != fraction.runtime_key


def test_no_valid_backend_is_500(rs: ResourceSet) -> None:
    route_ = hroute(rs, "no-backend")
    assert route_.WhichOneof("action") == "direct_response"
    assert route_.direct_response.status == 500


def test_direct_response(rs: ResourceSet) -> None:
    direct = hroute(rs, "direct").direct_response
    assert direct.status == 418
    assert direct.body.inline_string == "short and stout"


def test_redirects(rs: ResourceSet) -> None:
    redirect = hroute(rs, "redirect").redirect
    assert redirect.scheme_redirect == "https"
    assert redirect.host_redirect == "new.example.com"
    assert redirect.port_redirect == 8443
    assert redirect.prefix_rewrite == "/here"
    assert redirect.response_code == rc.RedirectAction.MOVED_PERMANENTLY
    full = hroute(rs, "redirect-full").redirect
    assert full.path_redirect == "/elsewhere"
    assert full.response_code == rc.RedirectAction.PERMANENT_REDIRECT
    strip = hroute(rs, "redirect-strip").redirect
    assert strip.response_code == rc.RedirectAction.TEMPORARY_REDIRECT
    assert strip.regex_rewrite.pattern.regex == "^/s/*"
    assert strip.regex_rewrite.substitution == "/"


@pytest.mark.parametrize(
    ("scheme", "port", "expected"),
    [
        ("https", 443, 0),
        ("http", 80, 0),
        ("http", 443, 443),
        (None, 80, 0),
        (None, 443, 0),
        (None, 8080, 8080),
    ],
)
def test_redirect_well_known_ports_stay_out_of_location(
    scheme: str | None, port: int, expected: int
) -> None:
    out = translate(
        one_listener_gateway(
            route("r", redirect=ir.Redirect(scheme=scheme, port=port, status_code=303))
        )
    )
    redirect = out.routes["t/gw/http"].virtual_hosts[0].routes[0].redirect
    assert redirect.port_redirect == expected
    assert redirect.response_code == rc.RedirectAction.SEE_OTHER


def _rewrite(target: rc.RouteAction | rc.RedirectAction, match: rc.RouteMatch, path: str) -> str:
    """What Envoy does to the path for prefix_rewrite / regex_rewrite."""
    if target.HasField("regex_rewrite"):
        substitution = target.regex_rewrite.substitution.replace("\\\\", "\\")
        return re.sub(target.regex_rewrite.pattern.regex, lambda _: substitution, path)
    if target.prefix_rewrite:
        matched = match.path_separated_prefix or match.prefix or match.path
        assert path.startswith(matched)
        return target.prefix_rewrite + path[len(matched) :]
    return path


# Gateway API's ReplacePrefixMatch table, plus the matched-prefix-"/" cases.
PREFIX_CASES = [
    ("/foo", "/xyz", "/foo/bar", "/xyz/bar"),
    ("/foo", "/xyz/", "/foo/bar", "/xyz/bar"),
    ("/foo/", "/xyz", "/foo/bar", "/xyz/bar"),
    ("/foo/", "/xyz/", "/foo/bar", "/xyz/bar"),
    ("/foo", "/xyz", "/foo", "/xyz"),
    ("/foo", "/xyz", "/foo/", "/xyz/"),
    ("/foo", "", "/foo/bar", "/bar"),
    ("/foo", "", "/foo/", "/"),
    ("/foo", "", "/foo", "/"),
    ("/foo", "/", "/foo/bar", "/bar"),
    ("/foo", "/", "/foo/", "/"),
    ("/foo", "/", "/foo", "/"),
    ("/", "/xyz", "/bar", "/xyz/bar"),
    ("/", "/xyz/", "/bar/baz", "/xyz/bar/baz"),
    ("/", "/", "/bar", "/bar"),
    ("/a.b", "/", "/a.b/c", "/c"),
]


@pytest.mark.parametrize(("prefix", "replacement", "path", "expected"), PREFIX_CASES)
def test_replace_prefix_match(prefix: str, replacement: str, path: str, expected: str) -> None:
    path_match = ir.PathMatch(S.PREFIX, prefix)
    out = translate(
        one_listener_gateway(
            route("rw", path_match=path_match, url_rewrite=ir.URLRewrite(path_prefix=replacement)),
            route(
                "rd",
                path_match=path_match,
                redirect=ir.Redirect(path_prefix=replacement),
                header_matches=(ir.HeaderMatch("x-redirect", "1"),),
            ),
        )
    )
    rewrite, redirect = out.routes["t/gw/http"].virtual_hosts[0].routes
    assert "//" not in rewrite.route.prefix_rewrite
    assert _rewrite(rewrite.route, rewrite.match, path) == expected
    assert _rewrite(redirect.redirect, redirect.match, path) == expected


def test_url_rewrites(rs: ResourceSet) -> None:
    rewrite = hroute(rs, "rewrite-prefix").route
    assert rewrite.host_rewrite_literal == "internal.example.com"
    assert rewrite.prefix_rewrite == "/new"
    full = hroute(rs, "full").route
    assert full.regex_rewrite.pattern.regex == "^/.*$"
    assert full.regex_rewrite.substitution == "/replaced"
    assert _rewrite(full, hroute(rs, "full").match, "/full") == "/replaced"
    assert hroute(rs, "strip-prefix").route.regex_rewrite.pattern.regex == "^/strip/*"


def test_header_modifiers(rs: ResourceSet) -> None:
    route_ = hroute(rs, "weighted")
    added = {
        h.header.key: (h.header.value, h.append_action, h.keep_empty_value)
        for h in route_.request_headers_to_add
    }
    assert added == {
        "x-set": ("1", base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD, False),
        "x-add": ("", base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD, True),
    }
    assert list(route_.request_headers_to_remove) == ["x-rm"]
    assert [h.header.key for h in route_.response_headers_to_add] == ["x-resp"]
    assert list(route_.response_headers_to_remove) == ["server"]


def test_pseudo_headers_and_host_are_not_modified() -> None:
    mod = ir.HeaderModifier(
        set=(ir.HeaderValue(":path", "/x"), ir.HeaderValue("Host", "h"), ir.HeaderValue("a", "1")),
        remove=(":authority", "b"),
    )
    out = translate(one_listener_gateway(route("r", request_headers=mod)))
    route_ = out.routes["t/gw/http"].virtual_hosts[0].routes[0]
    assert [h.header.key for h in route_.request_headers_to_add] == ["a"]
    assert list(route_.request_headers_to_remove) == ["b"]


def test_mirrors(rs: ResourceSet) -> None:
    mirrors = hroute(rs, "weighted").route.request_mirror_policies
    assert [m.cluster for m in mirrors] == [SHADOW.name, SHADOW.name]
    partial, full = mirrors
    assert partial.runtime_fraction.default_value.numerator == 255_000
    assert (
        partial.runtime_fraction.default_value.denominator == percent_pb2.FractionalPercent.MILLION
    )
    assert not full.HasField("runtime_fraction")
    assert SHADOW.name in rs.clusters
    assert SHADOW.name in rs.endpoints


def test_timeouts(rs: ResourceSet) -> None:
    both = hroute(rs, "exact").route
    assert both.timeout.ToTimedelta().total_seconds() == 15
    assert both.retry_policy.per_try_timeout.ToMilliseconds() == 2500
    assert not both.retry_policy.retry_on
    disabled = hroute(rs, "weighted").route
    assert disabled.HasField("timeout")
    assert disabled.timeout.seconds == 0 and disabled.timeout.nanos == 0
    assert not disabled.HasField("retry_policy")
    default = hroute(rs, "catch-all").route
    assert not default.HasField("timeout")
    assert not default.HasField("retry_policy")
    out = translate(one_listener_gateway(route("r", timeouts=ir.Timeouts(backend_request=30))))
    backend_only = out.routes["t/gw/http"].virtual_hosts[0].routes[0].route
    assert backend_only.timeout.seconds == 30
    assert not backend_only.HasField("retry_policy")


# --------------------------------------------------------------------------- clusters


def test_ip_clusters_use_eds(rs: ResourceSet) -> None:
    app = rs.clusters[APP.name]
    assert app.type == cluster_pb2.Cluster.EDS
    assert app.eds_cluster_config.eds_config.HasField("ads")
    assert app.connect_timeout.seconds == 10
    assert app.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN
    assert not app.HasField("load_assignment")
    assignment = rs.endpoints[APP.name]
    assert assignment.cluster_name == APP.name
    addresses = [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for group in assignment.endpoints
        for e in group.lb_endpoints
    ]
    assert addresses == [("10.0.0.1", 8080), ("10.0.0.2", 8080)]
    empty = rs.endpoints["service/default/empty/80"]
    assert empty.cluster_name == "service/default/empty/80"
    assert not empty.endpoints


def test_fqdn_and_unix_clusters_are_inline(rs: ResourceSet) -> None:
    external = rs.clusters["backend/default/external/443"]
    assert external.type == cluster_pb2.Cluster.STRICT_DNS
    assert external.dns_lookup_family == cluster_pb2.Cluster.V4_PREFERRED
    address = external.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
    assert (address.socket_address.address, address.socket_address.port_value) == (
        "httpbin.org",
        443,
    )
    assert "backend/default/external/443" not in rs.endpoints
    socket = rs.clusters["backend/default/socket"]
    assert socket.type == cluster_pb2.Cluster.STATIC
    pipe = socket.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe
    assert pipe.path == "/run/app.sock"
    assert "backend/default/socket" not in rs.endpoints


def test_http2_protocol_options(rs: ResourceSet) -> None:
    grpc = rs.clusters["service/default/grpc/9000"]
    options = http_protocol_options_pb2.HttpProtocolOptions()
    packed = grpc.typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert packed.Unpack(options)
    assert options.explicit_http_config.HasField("http2_protocol_options")
    assert not rs.clusters[APP.name].typed_extension_protocol_options


def test_only_used_clusters(rs: ResourceSet) -> None:
    assert set(rs.clusters) == {
        APP.name,
        CANARY.name,
        SHADOW.name,
        "service/default/grpc/9000",
        "backend/default/external/443",
        "backend/default/socket",
        "service/default/empty/80",
        DB.name,
        DB2.name,
        "service/default/tls-app/443",
        "service/default/dns/53",
        BLACKHOLE,
    }
    assert set(rs.endpoints) == {
        name for name, c in rs.clusters.items() if c.type == cluster_pb2.Cluster.EDS
    }


# --------------------------------------------------------------------------- incremental


def _cached_routes(cache: Any) -> list[tuple[ir.HTTPRoute, tuple[Any, ...]]]:
    """Every (IR route, Envoy routes) pair the translator's cache holds."""
    return [pair for state in cache.vhosts.values() for pair in state.routes.values()]


def _change_one_route(gw: ir.Gateway) -> tuple[ir.Gateway, str]:
    http = gw.http[0]
    routes = list(http.routes)
    i = next(i for i, r in enumerate(routes) if r.name.startswith("httproute/default/regex/"))
    routes[i] = dataclasses.replace(routes[i], path_match=ir.PathMatch(S.REGEX, "/things/.*"))
    changed_http = dataclasses.replace(http, routes=tuple(routes))
    return dataclasses.replace(gw, http=(changed_http, *gw.http[1:])), routes[i].name


def test_incremental_rebuilds_only_the_changed_route() -> None:
    translator = Translator()
    gw = full_gateway()
    first = translator.translate(gw)
    cache = translator._caches[gw.name]
    route_msgs = dict(_cached_routes(cache))

    changed, changed_name = _change_one_route(gw)
    second = translator.translate(changed)
    stats = translator.last_stats
    assert stats["routes_built"] == 1
    assert stats["routes_reused"] == len(route_msgs) - 1
    assert stats["vhosts_built"] == 1
    assert stats["route_configs_built"] == 1
    assert stats["clusters_built"] == 0
    assert stats["listeners_built"] == 0
    assert stats.get("secrets_built", 0) == 0

    for kind in ("listeners", "clusters", "endpoints", "secrets"):
        before, after = getattr(first, kind), getattr(second, kind)
        assert before.keys() == after.keys()
        for name in before:
            assert after[name] is before[name], f"{kind} {name} was rebuilt"
    assert second.routes["default/eg/https"] is first.routes["default/eg/https"]
    assert second.routes["default/eg/http"] is not first.routes["default/eg/http"]
    assert resource_version(second.routes["default/eg/http"]) != resource_version(
        first.routes["default/eg/http"]
    )
    # Patched from the last configuration, equal to one built from scratch.
    fresh = translate(changed)
    for name, msg in second.routes.items():
        assert resource_version(msg) == resource_version(fresh.routes[name]), name

    new_cache = translator._caches[gw.name]
    for ir_route, msgs in _cached_routes(new_cache):
        if ir_route.name == changed_name:
            assert ir_route not in route_msgs
            assert msgs[0].match.safe_regex.regex == "/things/.*"
        else:
            assert msgs is route_msgs[ir_route]
            assert all(a is b for a, b in zip(msgs, route_msgs[ir_route], strict=True))

    # Translating the same IR again rebuilds nothing and returns the same objects.
    third = translator.translate(changed)
    assert built(translator) == {}
    assert third.routes["default/eg/http"] is second.routes["default/eg/http"]


def test_equal_but_not_identical_ir_is_reused() -> None:
    translator = Translator()
    first = translator.translate(full_gateway())
    second = translator.translate(full_gateway())
    assert built(translator) == {}
    assert all(second.routes[n] is first.routes[n] for n in first.routes)


def test_endpoint_change_touches_only_its_assignment() -> None:
    translator = Translator()
    gw = one_listener_gateway(
        route("a", destination=dest("a", (APP, 1))),
        route("b", path_match=ir.PathMatch(S.PREFIX, "/b"), destination=dest("b", (CANARY, 1))),
    )
    first = translator.translate(gw)
    moved = cluster(CANARY.name, "10.9.9.9")
    gw2 = one_listener_gateway(
        route("a", destination=dest("a", (APP, 1))),
        route("b", path_match=ir.PathMatch(S.PREFIX, "/b"), destination=dest("b", (moved, 1))),
    )
    second = translator.translate(gw2)
    assert second.endpoints[APP.name] is first.endpoints[APP.name]
    assert second.endpoints[CANARY.name] is not first.endpoints[CANARY.name]
    assert second.listeners["t/gw/http"] is first.listeners["t/gw/http"]
    # The IR route changed (it embeds the cluster) but its Envoy route did not.
    assert resource_version(second.routes["t/gw/http"]) == resource_version(
        first.routes["t/gw/http"]
    )


def test_cache_holds_only_the_last_translation() -> None:
    translator = Translator()
    for i in range(20):
        routes = tuple(
            route(f"r{i}-{j}", path_match=ir.PathMatch(S.PREFIX, f"/{i}/{j}")) for j in range(5)
        )
        gw = one_listener_gateway(*routes)
        translator.translate(gw)
        cache = translator._caches["t/gw"]
        assert len(_cached_routes(cache)) == 5
        assert len(cache.vhosts) == 1
        assert len(cache.route_configs) == 1
        assert len(cache.clusters) == 1
        assert len(cache.listeners) == 1
    translator.translate(gateway("t/gw"))
    cache = translator._caches["t/gw"]
    assert not (cache.vhosts or cache.route_configs or cache.clusters)
    translator.forget("t/gw")
    assert translator._caches == {}


def test_gateways_have_separate_caches() -> None:
    translator = Translator()
    a = translator.translate(full_gateway())
    other = gateway("other/gw", http=(ir.HTTPListener("other/gw/http", "", 80, ("*",), ()),))
    b = translator.translate(other)
    assert b.listeners["other/gw/http"].address.socket_address.address == "0.0.0.0"
    again = translator.translate(full_gateway())
    assert built(translator) == {}
    assert again.listeners["default/eg/http"] is a.listeners["default/eg/http"]


# --------------------------------------------------------------------------- dumps


def test_config_dump(rs: ResourceSet) -> None:
    dump = config_dump(rs)
    assert list(dump) == ["listeners", "routes", "clusters", "endpoints", "secrets"]
    assert dump["listeners"][0]["@type"] == resources.LISTENER_TYPE
    assert dump["listeners"][0]["name"] == "default/eg/http"
    hcm = dump["listeners"][0]["filterChains"][0]["filters"][0]["typedConfig"]
    assert hcm["@type"].endswith("HttpConnectionManager")
    assert type(hcm) is dict
    (secret,) = dump["secrets"]
    assert secret["tlsCertificate"]["privateKey"] == {"inlineString": "[redacted]"}
    assert "PRIVATE KEY" not in json.dumps(dump)
    assert secret["tlsCertificate"]["certificateChain"]["inlineString"].startswith("-----BEGIN")

    only = config_dump(rs, types=["secrets", "routes"])
    assert list(only) == ["routes", "secrets"]
    assert list(config_dump(rs, types="clusters")) == ["clusters"]
    with pytest.raises(ValueError, match="bogus"):
        config_dump(rs, types=["bogus"])


def test_identical_ir_routes_are_found_without_hashing_the_rest() -> None:
    routes = [route(f"r{j}", path_match=ir.PathMatch(S.PREFIX, f"/{j}")) for j in range(50)]
    translator = Translator()
    first = translator.translate(one_listener_gateway(*routes))
    routes[7] = route("r7", path_match=ir.PathMatch(S.PREFIX, "/seven"))
    second = translator.translate(one_listener_gateway(*routes))
    assert built(translator) == {"routes_built": 1, "vhosts_built": 1, "route_configs_built": 1}
    assert translator.last_stats["routes_reused"] == 49
    assert second.routes["t/gw/http"] is not first.routes["t/gw/http"]
    cache = translator._caches["t/gw"]
    assert len(_cached_routes(cache)) == 50
