"""Hostname intersection between a Listener and a Route (HTTPRoute, GRPCRoute, TLSRoute).

Gateway API semantics: ``*.example.com`` is a suffix match that needs at least one more
label (so it matches ``a.example.com`` and ``a.b.example.com`` but not ``example.com``).
When both sides name hosts, the intersection is the more specific of each pair; Route
hostnames that match nothing on the Listener are ignored.
"""

from __future__ import annotations

from functools import lru_cache

ANY = "*"


def intersect_one(listener: str, route: str) -> str | None:
    """The hostname both match, the more specific of the two, or ``None``."""
    if listener == route:
        return route
    l_wild = listener.startswith("*.")
    r_wild = route.startswith("*.")
    if l_wild and r_wild:
        # ``*.a.example.com`` lies within ``*.example.com``; the narrower one is the overlap.
        if route.endswith(listener[1:]):
            return route
        if listener.endswith(route[1:]):
            return listener
        return None
    if l_wild:
        return route if route.endswith(listener[1:]) else None
    if r_wild:
        return listener if listener.endswith(route[1:]) else None
    return None


@lru_cache(maxsize=4096)
def intersect(listener: str | None, route: tuple[str, ...]) -> tuple[str, ...]:
    """Hostnames a Route gets on a Listener, in Route order, deduplicated.

    ``()`` means no intersection (the Route cannot attach there). A Route without hostnames
    takes the Listener's, and ``*`` stands for "any host".
    """
    if not route:
        return (listener or ANY,)
    out: list[str] = []
    for hostname in route:
        match = hostname if listener is None else intersect_one(listener, hostname)
        if match is not None and match not in out:
            out.append(match)
    return tuple(out)
