"""The ADS server: state-of-the-world and incremental (delta) xDS over one gRPC stream.

A proxy is matched to a :class:`~egobs.xds.snapshot.Snapshot` by ``node.cluster`` (taken
from the first request of a stream); a proxy whose cluster has no snapshot yet simply waits
until one appears. Each stream keeps, per type URL, what the proxy asked for, what it was
sent and what it accepted, and publishes that as a :class:`ProxyStatus` in the server's
:class:`ProxyRegistry`. An :class:`XdsObserver` is told about connects, pushes, ACKs and
NACKs, with the pushed snapshot's ``context`` so that convergence (provider event → ACK)
can be measured.

Nonces and versions
-------------------
* At most one response per type is in flight on a stream. A request is an ACK or NACK only
  if its ``response_nonce`` is the nonce of that in-flight response; a NACK is one with
  ``error_detail``. Any other nonce is stale: a SotW request carrying one is ignored
  entirely (the proxy repeats its subscription with the current nonce once it has read the
  in-flight response); a delta request still has its subscribe/unsubscribe lists applied,
  as those are deltas and would otherwise be lost.
* Versions are content hashes: a resource's version hashes its serialized bytes; a SotW
  ``version_info`` hashes the (name, version) pairs of exactly the resources sent. So a
  type is pushed only when what the proxy should hold differs from what it was last sent,
  and a NACKed version is never sent again: the proxy keeps its last accepted state
  until the snapshot changes what it should hold. Delta remembers rejected versions per
  resource for the same effect.
* SotW: CDS and LDS are wildcard; other types serve exactly the requested names that the
  snapshot has. A first request whose ``version_info`` already equals what would be sent
  (a reconnect) gets no response. Delta: ``initial_resource_versions`` seed what the proxy
  holds, so a reconnecting proxy is sent only resources whose versions differ.

Make-before-break ordering
--------------------------
Types refer to each other by name: LDS → RDS, SDS, CDS (TCP proxy); RDS → CDS;
CDS → EDS, SDS. Envoy itself keeps a new cluster warming until its endpoints (and
secrets) arrive, and a new listener warming until its routes (and secrets) arrive, but it
applies route and listener updates at once. Two rules follow, applied per stream, with at
most one response per type in flight:

1. **Additions and updates** go out in the order CDS, EDS, SDS, LDS, RDS, where LDS and
   RDS are only sent while no CDS, EDS or SDS response is in flight, i.e. once every
   cluster and secret they may use is ACKed (warm). EDS and SDS do not wait for the CDS
   ACK: Envoy holds that ACK back until the new clusters have their endpoints, so waiting
   would deadlock. RDS does not wait for the LDS ACK for the same reason (a new listener
   warms until its routes arrive).
2. **Removals** of a type are sent only once every type that can refer to it holds its
   final state (the new snapshot's resources, ACKed, nothing in flight): clusters after
   LDS and RDS, endpoints after CDS, secrets after LDS and CDS, routes after LDS;
   listeners at once. Until then the proxy is served the union of the new resources and
   those it holds that the snapshot dropped (SotW: CDS lists both; delta: the removal is
   not sent yet).

So switching a route from cluster ``a`` to a new cluster ``b`` goes: CDS ``{a, b}``,
EDS ``b`` (on Envoy's request), RDS pointing at ``b`` once CDS/EDS are ACKed, then CDS
``{b}`` (delta: ``a`` removed) once RDS is ACKed, then EDS without ``a`` (SotW: when Envoy
narrows its request; delta: a removal if Envoy did not unsubscribe itself). A NACK keeps
the union in place: the proxy's last good configuration never loses a cluster it uses. A
NACK does not hold back later types (Envoy applies the valid clusters of a rejected CDS
update, and one bad resource must not freeze unrelated routes).
Only types whose content changed are pushed (SotW) and only changed resources (delta).

Authentication
--------------
Plaintext by default (a server on loopback). With mTLS (``serve(tls=...)``) a client must
present a certificate that chains to the configured CA, or the handshake fails; the
Gateways its certificate names (:func:`egobs.certs.peer_gateways`, its URI SANs) are the
only ``node.cluster`` values it may ask for. A first request asking for another is
refused with ``PERMISSION_DENIED`` before anything is sent, and so is any later request
whose node names another cluster than the stream's first: a stream serves one Gateway.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, NoReturn, Protocol, TypeAlias

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from egobs.certs import ServerTLS, peer_gateways
from egobs.listen import ListenError, check_listen, host_literal
from egobs.xds.resources import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SCOPED_ROUTE_TYPE,
    SECRET_TYPE,
)
from egobs.xds.snapshot import Packed, Snapshot, SnapshotCache, combined_version

__all__ = [
    "NACK_MESSAGE_LIMIT",
    "FanOutObserver",
    "NullObserver",
    "ProxyRegistry",
    "ProxyStatus",
    "TypeStatus",
    "XdsObserver",
    "XdsServer",
    "serve",
]

log = logging.getLogger("egobs.xds.server")

NACK_MESSAGE_LIMIT: Final = 1024
"""Bytes of a NACK's error message kept (Envoy may quote the whole rejected resource)."""

# Envoy subscribes to every resource of these types (scoped routes too: a scoped-routes
# connection manager takes all the scopes there are).
_WILDCARD_TYPES = frozenset({CLUSTER_TYPE, LISTENER_TYPE, SCOPED_ROUTE_TYPE})
# Which types may refer to resources of a type by name.
_REFERRERS: dict[str, tuple[str, ...]] = {
    CLUSTER_TYPE: (LISTENER_TYPE, ROUTE_TYPE),
    ENDPOINT_TYPE: (CLUSTER_TYPE,),
    SECRET_TYPE: (LISTENER_TYPE, CLUSTER_TYPE),
    LISTENER_TYPE: (),
    SCOPED_ROUTE_TYPE: (LISTENER_TYPE,),
    ROUTE_TYPE: (LISTENER_TYPE, SCOPED_ROUTE_TYPE),
}
_WARMING = (CLUSTER_TYPE, ENDPOINT_TYPE, SECRET_TYPE)
# Push order, and for each type the types whose in-flight responses hold it back.
_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (CLUSTER_TYPE, ()),
    (ENDPOINT_TYPE, ()),
    (SECRET_TYPE, ()),
    (LISTENER_TYPE, _WARMING),
    (SCOPED_ROUTE_TYPE, _WARMING),
    (ROUTE_TYPE, _WARMING),
)
_Request: TypeAlias = discovery_pb2.DiscoveryRequest | discovery_pb2.DeltaDiscoveryRequest
_Response: TypeAlias = discovery_pb2.DiscoveryResponse | discovery_pb2.DeltaDiscoveryResponse
# Marks a delta removal the proxy rejected, in the per-name map of rejected versions.
_REMOVED = "\0removed"
# Envoy quotes rejected resources in error_detail, so a NACK of a large route table can
# exceed gRPC's 4 MiB default and would kill the stream (which Envoy retries forever).
_MAX_RECEIVE_BYTES = 64 * 1024 * 1024
# HTTP/2 streams one connection may hold open (gRPC's default: no limit). An Envoy opens one
# ADS stream on a connection of its own (bench/fanout.py's clients too), so this only bounds
# what one client can make the server hold; streams beyond it wait, unserved. (gRPC Python
# clients share one connection among channels to one target unless told otherwise, which is
# why the bench sets grpc.use_local_subchannel_pool.)
_MAX_CONCURRENT_STREAMS = 1024


# --------------------------------------------------------------------------- status


@dataclass(slots=True)
class TypeStatus:
    """One type on one stream. Versions are content versions (see the module docstring);
    times are wall-clock seconds; ``*_snapshot`` is the snapshot version a push came from."""

    sent_version: str | None = None
    sent_nonce: str | None = None
    sent_at: float | None = None
    sent_snapshot: str | None = None
    acked_version: str | None = None
    acked_at: float | None = None
    acked_snapshot: str | None = None
    nack_version: str | None = None
    nack_message: str | None = None
    nack_at: float | None = None


@dataclass(slots=True, eq=False)
class ProxyStatus:
    """One connected ADS stream. Owned and updated in place by the server; read only."""

    stream_id: int
    node_id: str
    cluster: str
    delta: bool
    peer: str
    connected_since: float
    types: dict[str, TypeStatus] = field(default_factory=dict)


class ProxyRegistry:
    """The streams currently connected, for status pages and tests."""

    def __init__(self) -> None:
        self._streams: dict[int, ProxyStatus] = {}

    def __iter__(self) -> Iterator[ProxyStatus]:
        return iter(list(self._streams.values()))

    def __len__(self) -> int:
        return len(self._streams)

    def for_cluster(self, cluster: str) -> list[ProxyStatus]:
        return [p for p in self._streams.values() if p.cluster == cluster]

    def _add(self, proxy: ProxyStatus) -> None:
        self._streams[proxy.stream_id] = proxy

    def _remove(self, proxy: ProxyStatus) -> None:
        self._streams.pop(proxy.stream_id, None)


class XdsObserver(Protocol):
    """Telemetry hooks. Called on the event loop; must not block. ``context`` is the
    :attr:`Snapshot.context` of the snapshot the pushed version came from."""

    def on_connect(self, proxy: ProxyStatus, /) -> None: ...

    def on_disconnect(self, proxy: ProxyStatus, /) -> None: ...

    def on_push(
        self,
        proxy: ProxyStatus,
        type_url: str,
        version: str,
        resource_count: int,
        size_bytes: int,
        context: object,
        /,
    ) -> None: ...

    def on_ack(
        self, proxy: ProxyStatus, type_url: str, version: str, context: object, /
    ) -> None: ...

    def on_nack(
        self,
        proxy: ProxyStatus,
        type_url: str,
        version: str,
        message: str,
        context: object,
        /,
    ) -> None: ...

    def on_refused(self, peer: str, gateway: str, reason: str, /) -> None:
        """A stream was refused (mTLS): ``reason`` is ``not_certified`` or
        ``gateway_switched``; ``gateway`` is the Gateway it asked for."""
        ...


class FanOutObserver:
    """One :class:`XdsObserver` calling several, in order (telemetry, status, benchmarks)."""

    def __init__(self, *observers: XdsObserver) -> None:
        self._observers = observers

    def on_connect(self, proxy: ProxyStatus, /) -> None:
        for o in self._observers:
            o.on_connect(proxy)

    def on_disconnect(self, proxy: ProxyStatus, /) -> None:
        for o in self._observers:
            o.on_disconnect(proxy)

    def on_push(
        self,
        proxy: ProxyStatus,
        type_url: str,
        version: str,
        resource_count: int,
        size_bytes: int,
        context: object,
        /,
    ) -> None:
        for o in self._observers:
            o.on_push(proxy, type_url, version, resource_count, size_bytes, context)

    def on_ack(self, proxy: ProxyStatus, type_url: str, version: str, context: object, /) -> None:
        for o in self._observers:
            o.on_ack(proxy, type_url, version, context)

    def on_nack(
        self,
        proxy: ProxyStatus,
        type_url: str,
        version: str,
        message: str,
        context: object,
        /,
    ) -> None:
        for o in self._observers:
            o.on_nack(proxy, type_url, version, message, context)

    def on_refused(self, peer: str, gateway: str, reason: str, /) -> None:
        for o in self._observers:
            o.on_refused(peer, gateway, reason)


class NullObserver:
    """The default observer: does nothing."""

    def on_connect(self, proxy: ProxyStatus, /) -> None:
        pass

    def on_disconnect(self, proxy: ProxyStatus, /) -> None:
        pass

    def on_push(
        self,
        proxy: ProxyStatus,
        type_url: str,
        version: str,
        resource_count: int,
        size_bytes: int,
        context: object,
        /,
    ) -> None:
        pass

    def on_ack(self, proxy: ProxyStatus, type_url: str, version: str, context: object, /) -> None:
        pass

    def on_nack(
        self,
        proxy: ProxyStatus,
        type_url: str,
        version: str,
        message: str,
        context: object,
        /,
    ) -> None:
        pass

    def on_refused(self, peer: str, gateway: str, reason: str, /) -> None:
        pass


# --------------------------------------------------------------------------- streams


@dataclass(slots=True)
class _Pending:
    """The response in flight for one type."""

    nonce: str
    version: str
    context: object
    snapshot_version: str
    entries: dict[str, Packed] = field(default_factory=dict)  # SotW: everything sent
    updates: dict[str, str] = field(default_factory=dict)  # delta: name -> version sent
    removed: tuple[str, ...] = ()  # delta


class _TypeState:
    __slots__ = (
        "accepted",
        "accepted_version",
        "initial_version",
        "known",
        "must_respond",
        "names",
        "nonce",
        "pending",
        "rejected",
        "sent_version",
        "status",
        "type_url",
        "wildcard",
    )

    def __init__(self, type_url: str, status: TypeStatus, wildcard: bool) -> None:
        self.type_url = type_url
        self.status = status
        self.wildcard = wildcard
        self.names: set[str] = set()
        self.pending: _Pending | None = None
        self.nonce: str | None = None  # last sent, in flight or not
        # SotW: what the proxy accepted last, and what it was sent last (maybe rejected).
        self.accepted: dict[str, Packed] = {}
        self.accepted_version: str | None = None
        self.sent_version: str | None = None
        self.initial_version: str | None = None
        # Delta: name -> version the proxy holds, and versions it rejected.
        self.known: dict[str, str] = {}
        self.rejected: dict[str, str] = {}
        self.must_respond = False


class _Stream:
    """Protocol state of one ADS stream; no I/O. Subclasses implement SotW and delta."""

    def __init__(self, proxy: ProxyStatus, observer: XdsObserver, nonces: Iterator[int]) -> None:
        self.proxy = proxy
        self.snapshot: Snapshot | None = None
        self._observer = observer
        self._nonces = nonces
        self._types: dict[str, _TypeState] = {}
        # The proxy said it holds resources from an earlier stream (a reconnect).
        self.resumed = False

    def handle(self, request: _Request) -> None:
        raise NotImplementedError

    def advance(self) -> _Response | None:
        """The next response to send, if the ordering rule allows one now."""
        snap = self.snapshot
        if snap is None:
            return None
        for type_url, blockers in _STEPS:
            st = self._types.get(type_url)
            if st is None or st.pending is not None:
                continue
            if any(self._in_flight(b) for b in blockers):
                continue
            response = self._build(st, snap, self._desired(st, snap))
            if response is not None:
                return response
        return None

    # -- subclass hooks

    def _build(
        self, st: _TypeState, snap: Snapshot, desired: Mapping[str, Packed | None]
    ) -> _Response | None:
        raise NotImplementedError

    def _endpoints_resent(self, clusters: list[str]) -> None:
        """``clusters`` the proxy holds are being updated: Envoy re-creates each and keeps
        it warming (and holds back the CDS ACK) until its ClusterLoadAssignment arrives
        again, which it does not ask for (delta) or asks for at the version it already
        holds (SotW). Their assignments go out again, unchanged."""
        raise NotImplementedError

    def _holds(self, st: _TypeState, final: Mapping[str, Packed]) -> bool:
        """Whether the proxy holds exactly ``final`` for this type."""
        raise NotImplementedError

    def _held(self, st: _TypeState, final: Mapping[str, Packed]) -> dict[str, Packed | None]:
        """What the proxy holds (and still wants) that ``final`` lacks."""
        raise NotImplementedError

    # -- shared logic

    def _state(self, type_url: str, wildcard: bool) -> tuple[_TypeState, bool]:
        st = self._types.get(type_url)
        if st is not None:
            return st, False
        status = self.proxy.types.setdefault(type_url, TypeStatus())
        st = self._types[type_url] = _TypeState(
            type_url, status, wildcard or type_url in _WILDCARD_TYPES
        )
        return st, True

    def _final(self, st: _TypeState, snap: Snapshot) -> Mapping[str, Packed]:
        available = snap.resources.get(st.type_url, {})
        if st.wildcard:
            return available
        return {n: available[n] for n in st.names if n in available}

    def _in_flight(self, type_url: str) -> bool:
        st = self._types.get(type_url)
        return st is not None and st.pending is not None

    def _holds_final(self, type_url: str, snap: Snapshot) -> bool:
        st = self._types.get(type_url)
        if st is None:
            if not self.resumed:
                return True  # never subscribed: nothing of that type can refer to anything
            # Not subscribed on this stream yet. A reconnecting Envoy still runs on the
            # listeners and routes of its last stream and subscribes to them just after its
            # clusters: removing a cluster before then could pull it from under a live
            # route (503 NC). Listeners are every Envoy's root subscription, so once they
            # are in their final state, a type still unsubscribed is one nothing uses.
            if type_url == LISTENER_TYPE:
                return False
            return self._holds_final(LISTENER_TYPE, snap)
        return st.pending is None and self._holds(st, self._final(st, snap))

    def _desired(self, st: _TypeState, snap: Snapshot) -> Mapping[str, Packed | None]:
        final = self._final(st, snap)
        if all(self._holds_final(r, snap) for r in _REFERRERS.get(st.type_url, ())):
            return final
        held = self._held(st, final)
        if not held:
            return final
        return {**held, **final}

    def _next_nonce(self) -> str:
        return str(next(self._nonces))

    def _sent(
        self,
        st: _TypeState,
        pending: _Pending,
        resource_count: int,
        size_bytes: int,
    ) -> None:
        st.pending = pending
        st.nonce = pending.nonce
        s = st.status
        s.sent_version = pending.version
        s.sent_nonce = pending.nonce
        s.sent_at = time.time()
        s.sent_snapshot = pending.snapshot_version
        log.debug(
            "push %s %s to %s (%s): %d resources, %d bytes",
            _short(st.type_url),
            pending.version,
            self.proxy.node_id,
            self.proxy.cluster,
            resource_count,
            size_bytes,
        )
        _call(
            self._observer.on_push,
            self.proxy,
            st.type_url,
            pending.version,
            resource_count,
            size_bytes,
            pending.context,
        )

    def _acked(self, st: _TypeState, pending: _Pending) -> None:
        s = st.status
        s.acked_version = pending.version
        s.acked_at = time.time()
        s.acked_snapshot = pending.snapshot_version
        _call(self._observer.on_ack, self.proxy, st.type_url, pending.version, pending.context)

    def _nacked(self, st: _TypeState, pending: _Pending, message: str) -> None:
        message = _truncate(message, NACK_MESSAGE_LIMIT)
        s = st.status
        s.nack_version = pending.version
        s.nack_message = message
        s.nack_at = time.time()
        log.warning(
            "%s (%s) rejected %s version %s: %s",
            self.proxy.node_id,
            self.proxy.cluster,
            _short(st.type_url),
            pending.version,
            message,
        )
        _call(
            self._observer.on_nack,
            self.proxy,
            st.type_url,
            pending.version,
            message,
            pending.context,
        )


class _SotwStream(_Stream):
    def handle(self, request: _Request) -> None:
        assert isinstance(request, discovery_pb2.DiscoveryRequest)
        names = set(request.resource_names)
        st, _ = self._state(request.type_url, "*" in names)
        nonce = request.response_nonce
        # A nonce is only stale once this stream has sent something of the type; before
        # that it can only come from an earlier stream, and the request counts as a first.
        if nonce and st.nonce is not None:
            if nonce != st.nonce:
                return  # stale: the proxy has not read our latest response yet
            pending = st.pending
            if pending is not None:
                st.pending = None
                if request.HasField("error_detail"):
                    self._nacked(st, pending, request.error_detail.message)
                else:
                    st.accepted = pending.entries
                    st.accepted_version = pending.version
                    self._acked(st, pending)
        elif st.sent_version is None and request.version_info:
            st.initial_version = request.version_info
            self.resumed = True
        st.wildcard = st.wildcard or "*" in names
        st.names = names - {"*"}

    def _endpoints_resent(self, clusters: list[str]) -> None:
        eds = self._types.get(ENDPOINT_TYPE)
        # Only clusters with assignments (EDS ones, which Envoy asks endpoints for).
        if eds is not None and not eds.names.isdisjoint(clusters):
            eds.sent_version = None  # the same assignments go out again

    def _holds(self, st: _TypeState, final: Mapping[str, Packed]) -> bool:
        if not final and not st.accepted:
            return True
        return st.accepted_version == self._version(st, final)

    def _held(self, st: _TypeState, final: Mapping[str, Packed]) -> dict[str, Packed | None]:
        return {
            n: p
            for n, p in st.accepted.items()
            if n not in final and (st.wildcard or n in st.names)
        }

    def _version(self, st: _TypeState, entries: Mapping[str, Packed | None]) -> str:
        snap = self.snapshot
        if snap is not None and entries is snap.resources.get(st.type_url):
            return snap.type_versions[st.type_url]
        return combined_version((n, p.version) for n, p in entries.items() if p is not None)

    def _build(
        self, st: _TypeState, snap: Snapshot, desired: Mapping[str, Packed | None]
    ) -> _Response | None:
        version = self._version(st, desired)
        initial, st.initial_version = st.initial_version, None
        if st.sent_version is None and initial == version:
            # Reconnect: the proxy already holds exactly this.
            st.sent_version = st.accepted_version = version
            st.accepted = {n: p for n, p in desired.items() if p is not None}
            st.status.acked_version = version
            st.status.acked_at = time.time()
            st.status.acked_snapshot = snap.version
            return None
        if version == st.sent_version:
            return None
        if st.type_url == CLUSTER_TYPE:
            accepted = st.accepted
            self._endpoints_resent(
                [
                    n
                    for n, p in desired.items()
                    if p is not None and n in accepted and accepted[n].version != p.version
                ]
            )
        if not desired and st.sent_version is None and not st.wildcard:
            return None  # nothing requested exists yet; an empty answer would mean nothing
        nonce = self._next_nonce()
        response = discovery_pb2.DiscoveryResponse(
            version_info=version, type_url=st.type_url, nonce=nonce
        )
        entries = {n: p for n, p in desired.items() if p is not None}
        response.resources.extend(entries[n].resource for n in sorted(entries))
        st.sent_version = version
        pending = _Pending(nonce, version, snap.context, snap.version, entries=entries)
        self._sent(st, pending, len(entries), response.ByteSize())
        return response


class _DeltaStream(_Stream):
    def handle(self, request: _Request) -> None:
        assert isinstance(request, discovery_pb2.DeltaDiscoveryRequest)
        subscribe = set(request.resource_names_subscribe)
        unsubscribe = set(request.resource_names_unsubscribe)
        st, new = self._state(request.type_url, "*" in subscribe)
        if new:
            st.known = dict(request.initial_resource_versions)
            if st.known:
                self.resumed = True
                # What the proxy holds from an earlier stream counts as accepted.
                st.status.acked_version = combined_version(st.known.items())
                st.status.acked_at = time.time()
            # A wildcard subscription must be answered even when empty: Envoy's startup
            # waits for it. A reconnect that says what it holds needs no answer.
            st.must_respond = st.wildcard and not st.known
        if "*" in subscribe:
            st.wildcard = True
        elif "*" in unsubscribe and st.type_url not in _WILDCARD_TYPES:
            st.wildcard = False
        st.names |= subscribe - {"*"}
        st.names -= unsubscribe
        dropped = False
        for name in unsubscribe:
            dropped = st.known.pop(name, None) is not None or dropped
            st.rejected.pop(name, None)
        if dropped and st.status.acked_version is not None:
            st.status.acked_version = combined_version(st.known.items())
        pending = st.pending
        if pending is None or not request.response_nonce:
            return
        if request.response_nonce != pending.nonce:
            return  # stale: only its subscription changes count
        st.pending = None
        if request.HasField("error_detail"):
            for name, version in pending.updates.items():
                st.rejected[name] = version
            for name in pending.removed:
                st.rejected[name] = _REMOVED
            self._nacked(st, pending, request.error_detail.message)
            return
        for name, version in pending.updates.items():
            if st.wildcard or name in st.names:
                st.known[name] = version
            st.rejected.pop(name, None)
        for name in pending.removed:
            st.known.pop(name, None)
            st.rejected.pop(name, None)
        self._acked(st, pending)
        # Subscriptions may have changed while the response was in flight.
        st.status.acked_version = combined_version(st.known.items())

    def _endpoints_resent(self, clusters: list[str]) -> None:
        eds = self._types.get(ENDPOINT_TYPE)
        if eds is None:
            return
        for name in clusters:
            eds.known.pop(name, None)
            # An assignment in flight would be taken as held when its ACK arrives, which
            # Envoy gives before it re-creates the cluster: send it again after that too.
            if eds.pending is not None:
                eds.pending.updates.pop(name, None)

    def _holds(self, st: _TypeState, final: Mapping[str, Packed]) -> bool:
        if len(st.known) != len(final):
            return False
        return all(st.known.get(n) == p.version for n, p in final.items())

    def _held(self, st: _TypeState, final: Mapping[str, Packed]) -> dict[str, Packed | None]:
        return {n: None for n in st.known if n not in final and (st.wildcard or n in st.names)}

    def _build(
        self, st: _TypeState, snap: Snapshot, desired: Mapping[str, Packed | None]
    ) -> _Response | None:
        known, rejected = st.known, st.rejected
        updates = {
            n: p
            for n, p in desired.items()
            if p is not None and known.get(n) != p.version and rejected.get(n) != p.version
        }
        removed = tuple(
            sorted(n for n in known if n not in desired and rejected.get(n) != _REMOVED)
        )
        if not updates and not removed and not st.must_respond:
            return None
        st.must_respond = False
        if st.type_url == CLUSTER_TYPE:
            self._endpoints_resent([n for n in updates if n in known])
        nonce = self._next_nonce()
        response = discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=snap.version, type_url=st.type_url, nonce=nonce
        )
        for name in sorted(updates):
            packed = updates[name]
            item = response.resources.add()
            item.name = name
            item.version = packed.version
            item.resource.CopyFrom(packed.resource)
        response.removed_resources.extend(removed)
        after = dict(known)
        after.update((n, p.version) for n, p in updates.items())
        for name in removed:
            after.pop(name, None)
        pending = _Pending(
            nonce,
            combined_version(after.items()),
            snap.context,
            snap.version,
            updates={n: p.version for n, p in updates.items()},
            removed=removed,
        )
        self._sent(st, pending, len(updates) + len(removed), response.ByteSize())
        return response


# --------------------------------------------------------------------------- gRPC


class _Signal:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_EOF = _Signal("eof")
_CHANGED = _Signal("changed")


class _AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(
        self,
        cache: SnapshotCache,
        registry: ProxyRegistry,
        observer: XdsObserver,
        *,
        authenticate: bool = False,
    ) -> None:
        self._cache = cache
        self._registry = registry
        self._observer = observer
        # mTLS: a stream may only ask for the Gateway its client certificate names.
        self._authenticate = authenticate
        self._stream_ids = itertools.count(1)
        self._nonces = itertools.count(1)

    async def StreamAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext[_Request, _Response],
    ) -> None:
        await self._serve(request_iterator, context, delta=False)

    async def DeltaAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest],
        context: grpc.aio.ServicerContext[_Request, _Response],
    ) -> None:
        await self._serve(request_iterator, context, delta=True)

    async def _serve(
        self,
        requests: AsyncIterator[_Request],
        context: grpc.aio.ServicerContext[_Request, _Response],
        *,
        delta: bool,
    ) -> None:
        # Requests, snapshot changes and our own writes are serialized through one queue,
        # so the protocol state is only ever touched by this coroutine.
        queue: asyncio.Queue[_Request | _Signal] = asyncio.Queue()
        reader = asyncio.create_task(_read(requests, queue))
        watcher: asyncio.Task[None] | None = None
        stream: _Stream | None = None
        try:
            while True:
                item = await queue.get()
                if item is _EOF:
                    return
                if item is _CHANGED:
                    assert stream is not None
                    stream.snapshot = self._cache.get(stream.proxy.cluster)
                else:
                    assert not isinstance(item, _Signal)
                    if stream is None:
                        stream = await self._open(item, context, delta)
                        watcher = asyncio.create_task(
                            self._watch(stream.proxy.cluster, stream.snapshot, queue)
                        )
                    elif self._authenticate:
                        await self._check_same_node(stream, item, context)
                    if log.isEnabledFor(logging.DEBUG):
                        _log_request(stream.proxy, item)
                    stream.handle(item)
                while (response := stream.advance()) is not None:
                    await context.write(response)
        finally:
            reader.cancel()
            if watcher is not None:
                watcher.cancel()
            if stream is not None:
                self._registry._remove(stream.proxy)
                log.info("proxy %s (%s) disconnected", stream.proxy.node_id, stream.proxy.cluster)
                _call(self._observer.on_disconnect, stream.proxy)

    async def _open(
        self,
        first: _Request,
        context: grpc.aio.ServicerContext[_Request, _Response],
        delta: bool,
    ) -> _Stream:
        node = first.node
        if not node.cluster:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first request must carry node.cluster (<namespace>/<gateway>)",
            )
        if self._authenticate:
            named = peer_gateways(context.auth_context())
            if node.cluster not in named:
                certified = ", ".join(sorted(named)) or "no Gateway"
                _call(self._observer.on_refused, context.peer(), node.cluster, "not_certified")
                await _refuse(
                    context,
                    f"node {node.id!r} asks for Gateway {node.cluster}, but its client "
                    f"certificate names {certified}",
                )
        proxy = ProxyStatus(
            stream_id=next(self._stream_ids),
            node_id=node.id,
            cluster=node.cluster,
            delta=delta,
            peer=context.peer(),
            connected_since=time.time(),
        )
        cls = _DeltaStream if delta else _SotwStream
        stream = cls(proxy, self._observer, self._nonces)
        stream.snapshot = self._cache.get(proxy.cluster)
        self._registry._add(proxy)
        log.info(
            "proxy %s (%s) connected (%s)%s",
            proxy.node_id,
            proxy.cluster,
            "delta" if delta else "sotw",
            "" if stream.snapshot is not None else ", waiting for its snapshot",
        )
        _call(self._observer.on_connect, proxy)
        return stream

    async def _check_same_node(
        self,
        stream: _Stream,
        request: _Request,
        context: grpc.aio.ServicerContext[_Request, _Response],
    ) -> None:
        """Refuse a request whose node names another Gateway than the stream's."""
        if not request.HasField("node") or not request.node.cluster:
            return
        if request.node.cluster != stream.proxy.cluster:
            _call(
                self._observer.on_refused,
                context.peer(),
                request.node.cluster,
                "gateway_switched",
            )
            await _refuse(
                context,
                f"node {request.node.id!r} asks for Gateway {request.node.cluster} on a "
                f"stream opened for {stream.proxy.cluster}: a stream serves one Gateway",
            )

    async def _watch(
        self, cluster: str, last: Snapshot | None, queue: asyncio.Queue[_Request | _Signal]
    ) -> None:
        while True:
            last = await self._cache.watch(cluster, last)
            queue.put_nowait(_CHANGED)


async def _refuse(context: grpc.aio.ServicerContext[_Request, _Response], message: str) -> NoReturn:
    log.warning("xDS stream from %s refused: %s", context.peer(), message)
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


async def _read(
    requests: AsyncIterator[_Request], queue: asyncio.Queue[_Request | _Signal]
) -> None:
    try:
        async for request in requests:
            queue.put_nowait(request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the peer went away mid-stream
        log.debug("ADS stream read ended: %r", exc)
    queue.put_nowait(_EOF)


class XdsServer:
    """A running ADS server; see :func:`serve`."""

    def __init__(self, server: grpc.aio.Server, port: int, registry: ProxyRegistry) -> None:
        self._server = server
        self.port = port
        self.registry = registry

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting streams; end open ones after ``grace`` seconds (None: at once)."""
        await self._server.stop(grace)


async def serve(
    cache: SnapshotCache,
    *,
    address: str = "127.0.0.1",
    port: int = 0,
    observer: XdsObserver | None = None,
    tls: ServerTLS | None = None,
) -> XdsServer:
    """Start an ADS server for ``cache`` on ``address:port`` (0: a free port, see ``.port``).

    With ``tls`` it speaks only mTLS and serves each stream only the Gateway its client
    certificate names (see Authentication in the module docstring).
    Raises :class:`ListenError` when the port cannot be bound, in use by anyone included.
    """
    check_listen("xds", address, port)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", _MAX_RECEIVE_BYTES),
            ("grpc.max_concurrent_streams", _MAX_CONCURRENT_STREAMS),
            # gRPC sets SO_REUSEPORT by default: a second control plane on the same port
            # would start fine and the kernel would split the proxies between the two.
            ("grpc.so_reuseport", 0),
            # Notice proxies that vanished without closing their connection.
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ]
    )
    registry = ProxyRegistry()
    servicer = _AdsServicer(
        cache, registry, observer or NullObserver(), authenticate=tls is not None
    )
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(servicer, server)
    host = host_literal(address)
    try:
        if tls is None:
            bound = server.add_insecure_port(f"{host}:{port}")
        else:
            bound = server.add_secure_port(f"{host}:{port}", tls.credentials())
    except RuntimeError:
        bound = 0
    if bound == 0:
        # check_listen passed, so the port was taken since (the other causes fail there).
        # Stopped although never started: see egobs.sink.server.Sink.start.
        await server.stop(None)
        raise ListenError("xds", address, port, code=errno.EADDRINUSE)
    await server.start()
    log.info("xDS server listening on %s:%d%s", host, bound, " (mTLS)" if tls else "")
    return XdsServer(server, bound, registry)


def _call(hook: object, *args: object) -> None:
    # A telemetry bug must never break config delivery.
    try:
        hook(*args)  # type: ignore[operator]
    except Exception:
        log.exception("xDS observer hook %s failed", getattr(hook, "__name__", hook))


def _log_request(proxy: ProxyStatus, request: _Request) -> None:
    if isinstance(request, discovery_pb2.DiscoveryRequest):
        names = f"names={list(request.resource_names)[:8]}"
    else:
        names = (
            f"subscribe={list(request.resource_names_subscribe)[:8]}"
            f" unsubscribe={list(request.resource_names_unsubscribe)[:8]}"
            f" initial={len(request.initial_resource_versions)}"
        )
    log.debug(
        "request %s from %s: nonce=%r %s%s",
        _short(request.type_url),
        proxy.node_id,
        request.response_nonce,
        names,
        " NACK" if request.HasField("error_detail") else "",
    )


def _short(type_url: str) -> str:
    return type_url.rsplit(".", 1)[-1]


def _truncate(message: str, limit: int) -> str:
    data = message.encode()
    if len(data) <= limit:
        return message
    # "…" is 3 bytes in UTF-8; errors="ignore" drops a character cut in half.
    return data[: limit - 3].decode(errors="ignore") + "…"
