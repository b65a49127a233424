"""PortMap: declared listener ports to bound ports."""

from __future__ import annotations

import operator

import pytest

from egobs import ir
from egobs.infra.ports import PortMap


def _dest() -> ir.RouteDestination:
    return ir.RouteDestination(name="d", settings=())


def _gateway() -> ir.Gateway:
    return ir.Gateway(
        name="ns/gw",
        http=(
            ir.HTTPListener(
                name="ns/gw/http", address="0.0.0.0", port=80, hostnames=("*",), routes=()
            ),
            ir.HTTPListener(
                name="ns/gw/admin", address="0.0.0.0", port=8080, hostnames=("*",), routes=()
            ),
        ),
        tcp=(ir.TCPListener(name="ns/gw/tcp", address="0.0.0.0", port=443, routes=()),),
        udp=(ir.UDPListener(name="ns/gw/dns", address="0.0.0.0", port=53),),
    )


def _proxy() -> ir.Proxy:
    return ir.Proxy(
        name="ns/gw",
        gateway_class="eg",
        listeners=(
            ir.ProxyListener(name="ns/gw/http", protocol=ir.Protocol.HTTP, port=80),
            ir.ProxyListener(name="ns/gw/dns", protocol=ir.Protocol.UDP, port=53),
        ),
    )


def test_offset_shifts_every_listener() -> None:
    pm = PortMap(offset=10000)
    gw = pm.apply_gateway(_gateway())
    assert [lst.port for lst in gw.http] == [10080, 18080]
    assert gw.tcp[0].port == 10443
    assert gw.udp[0].port == 10053
    assert gw.name == "ns/gw" and gw.http[0].name == "ns/gw/http"
    assert [lst.port for lst in pm.apply_proxy(_proxy()).listeners] == [10080, 10053]


def test_explicit_entries_win_over_offset() -> None:
    pm = PortMap(offset=10000, explicit={80: 8000, 443: 8443})
    assert pm.map(80) == 8000
    assert pm.map(443) == 8443
    assert pm.map(53) == 10053
    gw = pm.apply_gateway(_gateway())
    assert [lst.port for lst in gw.http] == [8000, 18080]
    assert gw.tcp[0].port == 8443


def test_out_of_range_names_the_port() -> None:
    with pytest.raises(ValueError, match=r"port 80 maps to 65616"):
        PortMap(offset=65536).map(80)
    with pytest.raises(ValueError, match=r"port 80 "):
        PortMap(offset=-80).map(80)
    with pytest.raises(ValueError, match=r"listener ns/gw/admin: port 8080 maps to 73180"):
        PortMap(offset=65100).apply_gateway(_gateway())
    with pytest.raises(ValueError, match="70000"):
        PortMap(explicit={80: 70000})


def test_identity_returns_the_same_objects() -> None:
    gw, proxy = _gateway(), _proxy()
    for pm in (PortMap(), PortMap(explicit={80: 80}), PortMap(explicit={9999: 19999})):
        assert pm.apply_gateway(gw) is gw
        assert pm.apply_proxy(proxy) is proxy


def test_unchanged_listeners_are_kept_as_is() -> None:
    gw = _gateway()
    out = PortMap(explicit={80: 8000}).apply_gateway(gw)
    assert out is not gw
    assert out.http[0].port == 8000
    assert out.http[1] is gw.http[1]
    assert out.tcp is gw.tcp
    assert out.udp is gw.udp


def test_mapping_two_ports_onto_one_is_refused() -> None:
    with pytest.raises(ValueError, match="both map to 8080"):
        PortMap(explicit={80: 8080}).apply_gateway(_gateway())
    # TCP and UDP are separate port spaces.
    gw = ir.Gateway(
        name="ns/gw",
        tcp=(ir.TCPListener(name="ns/gw/t", address="0.0.0.0", port=53, routes=()),),
        udp=(ir.UDPListener(name="ns/gw/u", address="0.0.0.0", port=5353),),
    )
    out = PortMap(explicit={5353: 53}).apply_gateway(gw)
    assert out.tcp[0].port == out.udp[0].port == 53


def test_map_is_frozen_against_caller_mutation() -> None:
    explicit = {80: 8000}
    pm = PortMap(explicit=explicit)
    explicit[80] = 9000
    assert pm.map(80) == 8000
    with pytest.raises(TypeError):
        operator.setitem(pm.explicit, 80, 1)
