"""Which xDS responses proxies rejected and still hold against us: an :class:`XdsObserver`.

A NACK stays in force until the same proxy ACKs a later version of the same type, or goes
away. The Gateway API stage turns what is in force into status conditions
(:func:`egobs.gatewayapi.merge_rejections`); this module only keeps the facts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from egobs.xds.server import NullObserver, ProxyStatus

__all__ = ["Rejection", "RejectionTracker"]

log = logging.getLogger("egobs.xds")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A proxy's NACK that no later ACK of the same type has superseded."""

    gateway: str
    node_id: str
    type_url: str
    version: str
    message: str
    at: float


class RejectionTracker(NullObserver):
    """Owns the NACKs in force, per Gateway (node cluster) and per proxy and type. An
    :class:`XdsObserver` that listens to disconnects, ACKs and NACKs only."""

    def __init__(self) -> None:
        self._by_gateway: dict[str, dict[tuple[str, str], Rejection]] = {}

    def on_disconnect(self, proxy: ProxyStatus, /) -> None:
        # A proxy that is gone holds no config; if its successor rejects it too, it says so.
        entries = self._by_gateway.get(proxy.cluster, {})
        for key in [k for k in entries if k[0] == proxy.node_id]:
            del entries[key]

    def on_ack(self, proxy: ProxyStatus, type_url: str, version: str, context: object, /) -> None:
        entries = self._by_gateway.get(proxy.cluster)
        if entries and entries.pop((proxy.node_id, type_url), None) is not None:
            log.info("%s (%s) accepted %s again", proxy.node_id, proxy.cluster, type_url)

    def on_nack(
        self,
        proxy: ProxyStatus,
        type_url: str,
        version: str,
        message: str,
        context: object,
        /,
    ) -> None:
        self._by_gateway.setdefault(proxy.cluster, {})[(proxy.node_id, type_url)] = Rejection(
            proxy.cluster, proxy.node_id, type_url, version, message, time.time()
        )

    def all(self) -> list[Rejection]:
        return [r for entries in self._by_gateway.values() for r in entries.values()]
