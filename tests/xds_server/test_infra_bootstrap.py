"""The proxy bootstrap: its shape, its guards, and Envoy's own validation of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from testkit import envoy_binary, envoy_validate

from egobs import ir
from egobs.infra.bootstrap import TRACER_RUNTIME, XDS_CLUSTER, bootstrap


@pytest.fixture
def envoy_bin() -> str:
    return envoy_binary()


def render(*, node_cluster: str = "default/gw", **overrides: Any) -> dict[str, Any]:
    """A bootstrap of a proxy without bootstrap telemetry (no stats listener or sinks)."""
    args: dict[str, Any] = {
        "node_id": "envoy-1",
        "xds_host": "127.0.0.1",
        "xds_port": 18000,
        "admin_port": 19000,
    }
    args.update(overrides)
    return bootstrap(ir.Proxy(node_cluster, "egobs", ()), **args)


def test_shape() -> None:
    b = render()
    assert b["node"] == {"id": "envoy-1", "cluster": "default/gw"}
    assert b["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 19000}
    ads = b["dynamic_resources"]["ads_config"]
    assert ads["api_type"] == "GRPC" and ads["transport_api_version"] == "V3"
    assert ads["set_node_on_first_message_only"] is True
    assert ads["grpc_services"] == [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}]
    for key in ("cds_config", "lds_config"):
        assert b["dynamic_resources"][key] == {"ads": {}, "resource_api_version": "V3"}
    (xds,) = b["static_resources"]["clusters"]
    assert xds["name"] == XDS_CLUSTER and xds["type"] == "STATIC"
    endpoint = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 18000}
    (opts,) = xds["typed_extension_protocol_options"].values()
    assert opts["explicit_http_config"] == {"http2_protocol_options": {}}
    assert b["stats_flush_interval"] == "5.000s"
    layers = b["layered_runtime"]["layers"]
    assert layers == [
        {"name": "static", "static_layer": dict(TRACER_RUNTIME)},
        {"name": "admin", "admin_layer": {}},
    ]
    json.dumps(b)  # JSON-able


def test_options() -> None:
    b = render(delta=True, stats_flush_interval_s=0.25, runtime={"a.b": 1}, admin_port=0)
    assert b["dynamic_resources"]["ads_config"]["api_type"] == "DELTA_GRPC"
    assert b["stats_flush_interval"] == "0.250s"
    assert b["layered_runtime"]["layers"][0]["static_layer"] == {**TRACER_RUNTIME, "a.b": 1}
    assert b["admin"]["address"]["socket_address"]["port_value"] == 0


@pytest.mark.parametrize(
    ("host", "connect", "kind"),
    [
        ("0.0.0.0", "127.0.0.1", "STATIC"),
        ("::", "::1", "STATIC"),
        ("::1", "::1", "STATIC"),
        ("xds.example", "xds.example", "STRICT_DNS"),
    ],
)
def test_xds_host(host: str, connect: str, kind: str) -> None:
    (xds,) = render(xds_host=host)["static_resources"]["clusters"]
    assert xds["type"] == kind
    endpoint = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"]["address"] == connect


@pytest.mark.parametrize(
    "bad",
    [
        {"node_cluster": ""},
        {"node_id": ""},
        {"xds_port": 0},
        {"xds_port": 70000},
        {"admin_port": -1},
        {"stats_flush_interval_s": 0},
        {"stats_flush_interval_s": 300},
    ],
)
def test_rejects_what_envoy_would(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        render(**bad)


@pytest.mark.envoy
@pytest.mark.parametrize("delta", [False, True])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0"])
def test_envoy_validates(envoy_bin: str, tmp_path: Path, delta: bool, host: str) -> None:
    path = tmp_path / "bootstrap.json"
    b = render(delta=delta, xds_host=host, admin_port=0, runtime={"some.key": 5})
    path.write_text(json.dumps(b))
    problem = envoy_validate(envoy_bin, path)
    assert problem is None, problem
