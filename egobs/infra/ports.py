"""Listener port mapping for unprivileged host runs.

A Gateway usually declares ports 80 and 443, which a non-root process cannot bind. A
:class:`PortMap` moves them (``80 -> 10080`` by offset, or port by port) before the IR reaches
the xDS translator and the host infra, so the proxies bind reachable ports while the Gateway
resources stay as written.

Only the ports Envoy binds are mapped. Route-level ports (``Redirect.port``) are left alone:
they are what clients are told to use, which is the operator's choice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from egobs import ir

__all__ = ["PortMap"]

_MIN_PORT = 1
_MAX_PORT = 65535

_L = TypeVar("_L", ir.HTTPListener, ir.TCPListener, ir.UDPListener, ir.ProxyListener)


@dataclass(frozen=True)
class PortMap:
    """Maps a declared listener port to the port the proxy binds.

    ``explicit`` entries win; every other port is shifted by ``offset``.
    """

    offset: int = 0
    explicit: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Copy into a read-only view: the map is shared by every translation, and a caller
        # mutating its dict afterwards would silently change ports of already-built IR.
        object.__setattr__(self, "explicit", MappingProxyType(dict(self.explicit)))
        for src, dst in self.explicit.items():
            for p in (src, dst):
                if not _MIN_PORT <= p <= _MAX_PORT:
                    raise ValueError(f"port map entry {src} -> {dst}: port {p} is out of range")

    @property
    def is_identity(self) -> bool:
        return self.offset == 0 and all(src == dst for src, dst in self.explicit.items())

    def map(self, port: int) -> int:
        """The port to bind for declared ``port``; ValueError if it falls outside 1..65535."""
        mapped = self.explicit.get(port, port + self.offset)
        if not _MIN_PORT <= mapped <= _MAX_PORT:
            raise ValueError(
                f"port {port} maps to {mapped} (offset {self.offset:+d}), outside 1..65535"
            )
        return mapped

    def apply_gateway(self, gw: ir.Gateway) -> ir.Gateway:
        """``gw`` with its listener ports mapped; the same object when nothing changes."""
        if self.is_identity:
            return gw
        stream = _Transport(self)
        dgram = _Transport(self)
        http = stream.listeners(gw.http)
        tcp = stream.listeners(gw.tcp)
        udp = dgram.listeners(gw.udp)
        if http is gw.http and tcp is gw.tcp and udp is gw.udp:
            return gw
        return dataclasses.replace(gw, http=http, tcp=tcp, udp=udp)

    def apply_proxy(self, p: ir.Proxy) -> ir.Proxy:
        """``p`` with its listener ports mapped; the same object when nothing changes."""
        if self.is_identity:
            return p
        stream = _Transport(self)
        dgram = _Transport(self)
        out: list[ir.ProxyListener] = []
        changed = False
        for lst in p.listeners:
            t = dgram if lst.protocol is ir.Protocol.UDP else stream
            new = t.listener(lst)
            changed = changed or new is not lst
            out.append(new)
        if not changed:
            return p
        return dataclasses.replace(p, listeners=tuple(out))


class _Transport:
    """Maps the listeners of one transport (TCP or UDP) and rejects mapped collisions.

    TCP and UDP port spaces are separate, so a TCP and a UDP listener may share a number.
    Within one space, two distinct declared ports landing on the same bound port would be
    merged into one Envoy listener, mixing unrelated Gateway listeners: refuse that.
    """

    def __init__(self, pm: PortMap) -> None:
        self._pm = pm
        self._owner: dict[int, int] = {}

    def listener(self, lst: _L) -> _L:
        try:
            mapped = self._pm.map(lst.port)
        except ValueError as exc:
            raise ValueError(f"listener {lst.name}: {exc}") from None
        prev = self._owner.setdefault(mapped, lst.port)
        if prev != lst.port:
            raise ValueError(
                f"ports {prev} and {lst.port} both map to {mapped} (listener {lst.name})"
            )
        if mapped == lst.port:
            return lst
        return dataclasses.replace(lst, port=mapped)

    def listeners(self, items: tuple[_L, ...]) -> tuple[_L, ...]:
        out = tuple(self.listener(x) for x in items)
        return items if _same(out, items) else out


def _same(a: Iterable[Any], b: Iterable[Any]) -> bool:
    return all(x is y for x, y in zip(a, b, strict=True))
