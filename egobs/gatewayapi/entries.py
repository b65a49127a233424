"""A listener's HTTP routes as the Gateway API translator orders them."""

from __future__ import annotations

from typing import NamedTuple

from egobs import ir

__all__ = ["RouteEntry", "SortKey"]

SortKey = tuple[str | int, ...]
"""Where an IR route goes in its listener: hostname, then Gateway API match precedence
(path kind and length, method, header and query counts), then the route's creation time,
namespace, name and kind, then rule and match index. Unique per entry, so sorting by it
gives one order whatever the input order."""


class RouteEntry(NamedTuple):
    """One IR route of a listener with its sort key (a tuple, so bisect and sort are C-fast)."""

    key: SortKey
    route: ir.HTTPRoute
