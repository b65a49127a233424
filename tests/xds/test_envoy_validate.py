"""Translated output checked by the real Envoy: ``envoy --mode validate`` on a static bootstrap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testkit import envoy_validate
from xds_ir import CERT_PEM, KEY_PEM, TLS_APP, S, dest, full_gateway, gateway, route

from egobs import ir
from egobs.infra.host import find_envoy
from egobs.xds.dump import static_bootstrap
from egobs.xds.translate import Translator, translate

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def envoy() -> str:
    try:
        return find_envoy()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


def validation_problem(envoy: str, bootstrap: dict, tmp_path: Path) -> str | None:
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps(bootstrap, indent=1))
    return envoy_validate(envoy, config)


def assert_valid(envoy: str, bootstrap: dict, tmp_path: Path) -> None:
    problem = validation_problem(envoy, bootstrap, tmp_path)
    assert problem is None, problem


def test_every_feature_validates(envoy: str, tmp_path: Path) -> None:
    rs = translate(full_gateway())
    bootstrap = static_bootstrap(rs, admin_port=0)
    static = bootstrap["staticResources"]
    assert len(static["listeners"]) == len(rs.listeners)
    assert len(static["clusters"]) == len(rs.clusters)
    assert [s["name"] for s in static["secrets"]] == ["default/example-cert"]
    assert bootstrap["node"] == {"id": "egobs-static", "cluster": "egobs"}
    text = json.dumps(bootstrap)
    assert '"rds"' not in text and '"EDS"' not in text and '"ads"' not in text
    assert_valid(envoy, bootstrap, tmp_path)


def test_edge_cases_validate(envoy: str, tmp_path: Path) -> None:
    """Shapes Envoy is picky about: shared ports, repeated SNI, catch-all chains, no routes."""
    tls = ir.TLSConfig((ir.Certificate("t/cert", CERT_PEM, KEY_PEM),))
    app = dest("app", (TLS_APP, 1))
    listeners = (
        ir.HTTPListener("t/gw/plain", "0.0.0.0", 8080, ("*",), (route("a"),)),
        ir.HTTPListener("t/gw/tls", "0.0.0.0", 8080, ("*",), (route("b"),), tls=tls),
        ir.HTTPListener("t/gw/a", "0.0.0.0", 8443, ("a.example.com",), (), tls=tls),
        ir.HTTPListener("t/gw/dup", "0.0.0.0", 8443, ("a.example.com",), (), tls=tls),
        ir.HTTPListener("t/gw/empty", "0.0.0.0", 9090, ("*",), ()),
    )
    tcp = (
        ir.TCPListener(
            "t/gw/pt",
            "0.0.0.0",
            9443,
            (
                ir.TCPRoute("tlsroute/t/x/rule/0", app, ("x.example.com",)),
                ir.TCPRoute("tlsroute/t/y/rule/0", app, ("x.example.com", "y.example.com")),
                ir.TCPRoute("tlsroute/t/z/rule/0", app, ("x.example.com",)),
            ),
            tls_passthrough=True,
        ),
        ir.TCPListener("t/gw/tcp-empty", "0.0.0.0", 9444, ()),
    )
    udp = (
        ir.UDPListener("t/gw/udp-empty", "0.0.0.0", 9445),
        ir.UDPListener("t/gw/udp", "0.0.0.0", 9446, ir.UDPRoute("u", dest("u", invalid=1))),
    )
    rs = translate(gateway("t/gw", http=listeners, tcp=tcp, udp=udp))
    assert_valid(envoy, static_bootstrap(rs), tmp_path)


def test_many_routes_validate(envoy: str, tmp_path: Path) -> None:
    routes = tuple(
        route(
            f"r{i}",
            f"host-{i % 10}.example.com",
            path_match=ir.PathMatch(S.PREFIX, f"/api/r{i}/"),
            header_matches=(ir.HeaderMatch("x-tenant", f"t{i % 7}"),),
            request_headers=ir.HeaderModifier(set=(ir.HeaderValue("x-route", f"r{i}"),)),
        )
        for i in range(500)
    )
    gw = gateway("t/gw", http=(ir.HTTPListener("t/gw/http", "0.0.0.0", 80, ("*",), routes),))
    translator = Translator()
    translator.translate(gw)
    # Validate what an incremental translation produced, not only a fresh one.
    changed = routes[:10] + routes[11:]
    rs = translator.translate(
        gateway("t/gw", http=(ir.HTTPListener("t/gw/http", "0.0.0.0", 80, ("*",), changed),))
    )
    assert_valid(envoy, static_bootstrap(rs), tmp_path)


def test_invalid_regex_is_rejected(envoy: str, tmp_path: Path) -> None:
    """The harness can fail: Envoy rejects what RE2 cannot compile."""
    gw = gateway(
        "t/gw",
        http=(
            ir.HTTPListener(
                "t/gw/http",
                "0.0.0.0",
                80,
                ("*",),
                (route("bad", path_match=ir.PathMatch(S.REGEX, "/(unclosed")),),
            ),
        ),
    )
    problem = validation_problem(envoy, static_bootstrap(translate(gw)), tmp_path)
    assert problem is not None and "missing )" in problem  # rejected, with RE2's reason


def test_deprecated_fields_fail_validation(envoy: str, tmp_path: Path) -> None:
    """The guard that stands in for Envoy's dynamic-field checks (see envoy_validate)."""
    cluster = {
        "name": "c",
        "type": "STATIC",
        "load_assignment": {"cluster_name": "c"},
        "http2_protocol_options": {},  # deprecated in favour of typed_extension_protocol_options
    }
    config = tmp_path / "deprecated.json"
    config.write_text(json.dumps({"static_resources": {"clusters": [cluster]}}))
    problem = envoy_validate(envoy, config)
    assert problem is not None and "http2_protocol_options" in problem
