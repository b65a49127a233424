"""Where a host's proxies bind: the listener address and port map applied to the IR.

A Gateway's listeners bind ``0.0.0.0`` on the ports it declares. A development host
usually wants neither: :class:`HostBinding` moves every listener (and the stats listener)
to one address and through a :class:`~egobs.infra.ports.PortMap`, as the last step of
translation. ``egobs serve`` and ``egobs translate`` apply the same binding from the same
config, so what one prints is what the other serves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypeVar

from egobs import ir
from egobs.infra.ports import PortMap

__all__ = ["BindingError", "HostBinding"]

_L = TypeVar("_L", ir.HTTPListener, ir.TCPListener, ir.UDPListener)


class BindingError(ValueError):
    """The port map does not fit a Gateway's ports (out of range, or two ports merged)."""


@dataclass(frozen=True, slots=True)
class HostBinding:
    """Binds listeners to ``listener_address`` (None: as declared) through ``port_map``."""

    port_map: PortMap = dataclasses.field(default_factory=PortMap)
    listener_address: str | None = None
    # Per Gateway, its HTTP listeners as declared and as bound at the last binding, by
    # identity. IR listeners are immutable and a change that leaves a listener alone (an
    # endpoint change leaves them all) keeps its object, so its bound form is reused: the
    # xDS translator's identity caches keep hitting, and no route is scanned for redirects
    # again (~3 ms per change at 10,000 routes).
    _http: dict[str, dict[int, tuple[ir.HTTPListener, ir.HTTPListener]]] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def gateway(self, gw: ir.Gateway) -> ir.Gateway:
        """``gw`` with ports mapped and listeners on the address; the same object when
        nothing changes, so the xDS translator's caches keep hitting. Raises
        :class:`BindingError` naming the Gateway when its ports do not map."""
        try:
            # Maps every port, and refuses two declared ports that land on one.
            mapped = self.port_map.apply_gateway(gw)
        except ValueError as exc:
            raise BindingError(f"Gateway {gw.name}: {exc}") from None
        http = self._bound_http(gw.name, gw.http, mapped.http)
        tcp = self._bind(mapped.tcp)
        udp = self._bind(mapped.udp)
        if http is gw.http and tcp is gw.tcp and udp is gw.udp:
            return gw
        return dataclasses.replace(gw, http=http, tcp=tcp, udp=udp)

    def forget(self, gateway: str) -> None:
        """``gateway`` is gone: drop what was remembered of its listeners."""
        self._http.pop(gateway, None)

    def proxy(self, proxy: ir.Proxy) -> ir.Proxy:
        """``proxy`` with its stats listener mapped and bound.

        Its Gateway listeners keep their declared ports: the infra IR says what the Gateway
        asked for, and :meth:`gateway` is what the proxy binds.
        """
        stats = proxy.stats.prometheus
        if stats is None:
            return proxy
        address = self.listener_address or stats.address
        try:
            port = self.port_map.map(stats.port)
        except ValueError as exc:
            raise BindingError(f"Gateway {proxy.name}: stats listener: {exc}") from None
        if (address, port) == (stats.address, stats.port):
            return proxy
        bound = dataclasses.replace(stats, address=address, port=port)
        return dataclasses.replace(proxy, stats=dataclasses.replace(proxy.stats, prometheus=bound))

    def _bound_http(
        self,
        gateway: str,
        declared: tuple[ir.HTTPListener, ...],
        mapped: tuple[ir.HTTPListener, ...],
    ) -> tuple[ir.HTTPListener, ...]:
        last = self._http.get(gateway, {})
        seen: dict[int, tuple[ir.HTTPListener, ir.HTTPListener]] = {}
        out = []
        for lis, lis_mapped in zip(declared, mapped, strict=True):
            hit = last.get(id(lis))
            if hit is not None and hit[0] is lis:
                bound = hit[1]
            else:
                (bound,) = self._bind((self._redirects(lis_mapped),))
            seen[id(lis)] = (lis, bound)
            out.append(bound)
        self._http[gateway] = seen
        if all(a is b for a, b in zip(out, declared, strict=True)):
            return declared
        return tuple(out)

    def _redirects(self, lis: ir.HTTPListener) -> ir.HTTPListener:
        """Redirect ports through the port map: a Location must name where the Gateway's
        port is reachable on this host (80 is served on 10080 with offset 10000). A new
        scheme without a port means that scheme's well-known port, so it maps too."""
        if self.port_map.is_identity or not any(r.redirect is not None for r in lis.routes):
            return lis  # most listeners: nothing to map, nothing rebuilt
        routes = tuple(self._redirect(route) for route in lis.routes)
        if all(a is b for a, b in zip(routes, lis.routes, strict=True)):
            return lis
        return dataclasses.replace(lis, routes=routes)

    def _redirect(self, route: ir.HTTPRoute) -> ir.HTTPRoute:
        redirect = route.redirect
        if redirect is None:
            return route
        port = redirect.port
        if port is None:
            port = ir.SCHEME_PORTS.get((redirect.scheme or "").lower())
            if port is None:
                return route
        try:
            mapped = self.port_map.map(port)
        except ValueError:
            return route  # a port the map cannot move: the Location keeps it
        if mapped == port:
            return route
        return dataclasses.replace(route, redirect=dataclasses.replace(redirect, port=mapped))

    def _bind(self, listeners: tuple[_L, ...]) -> tuple[_L, ...]:
        address = self.listener_address
        if address is None or all(lis.address == address for lis in listeners):
            return listeners
        return tuple(dataclasses.replace(lis, address=address) for lis in listeners)
