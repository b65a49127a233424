"""Per-Gateway xDS snapshots with per-resource content versions, and the cache that serves them.

A :class:`Snapshot` is what every proxy of one Gateway should hold: for each type URL, a
map resource name → :class:`Packed` ``(version, Any)``. A resource's version is a hash of
its deterministic serialization (the same value as
:func:`egobs.xds.resources.resource_version`), so equal content gets equal versions in every
process and run, and a proxy reconnecting to a restarted control plane can be told that it
is already up to date.

:class:`SnapshotCache` keys snapshots by node cluster (``<namespace>/<gateway>``, the
``node.cluster`` of the proxies' bootstrap); any number of proxies read the same key.
Packing is the expensive part of a snapshot (``Any.Pack`` serializes), so the cache keeps,
per key, the packed form of every message of the current snapshot by object identity: the
translator hands back the very same message objects for unchanged IR, and those are never
serialized again. Messages are therefore treated as read-only once given to the cache.

The cache is not thread-safe: call it from the event loop that runs the xDS server.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from google.protobuf import any_pb2
from google.protobuf.message import Message

from egobs.xds.resources import TYPE_URLS, ResourceSet, content_version

__all__ = [
    "Packed",
    "Snapshot",
    "SnapshotCache",
    "TypeDiff",
    "combined_version",
    "diff",
]


class Packed(NamedTuple):
    """One resource as served: its content version, the packed message (read-only) and the
    size of its serialized form."""

    version: str
    resource: any_pb2.Any
    size: int = 0


def combined_version(entries: Iterable[tuple[str, str]]) -> str:
    """One version for a set of ``(name, version)`` pairs, independent of their order.

    Used for a type's version (``version_info`` of a state-of-the-world response) and for
    the snapshot label, so both are content hashes too.
    """
    # One hash over "<name>\0<version>\n" per entry, in name order; joined first, since
    # one update of the whole text costs a fraction of an update per piece.
    text = "".join(f"{name}\0{version}\n" for name, version in sorted(entries))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """What the proxies of one Gateway should hold; immutable, compared by identity.

    ``resources[type_url][name]`` is the packed resource; every type of
    :data:`egobs.xds.resources.TYPE_URLS` is present, possibly empty. ``type_versions`` holds
    :func:`combined_version` of each type's resources and ``version`` combines those;
    ``type_bytes`` the serialized size of each type's resources (for telemetry, which would
    otherwise sum thousands of sizes on every change).
    ``context`` is whatever the caller passed to :meth:`SnapshotCache.set_snapshot` (the
    provider event time and trace context of the change); the server hands it to its
    observer with every push and ACK of this snapshot. ``created_at`` is wall-clock time.
    """

    node_cluster: str
    version: str
    resources: Mapping[str, Mapping[str, Packed]]
    type_versions: Mapping[str, str]
    context: object
    created_at: float
    type_bytes: Mapping[str, int] = field(default_factory=dict)

    def versions(self, type_url: str) -> dict[str, str]:
        """Name → version of one type."""
        return {name: p.version for name, p in self.resources.get(type_url, {}).items()}


@dataclass(frozen=True, slots=True)
class TypeDiff:
    """How one type differs between two snapshots."""

    changed: frozenset[str]  # added or updated
    removed: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.changed or self.removed)


def diff(old: Snapshot | None, new: Snapshot | None) -> dict[str, TypeDiff]:
    """Per type URL (only types that differ, in push order): names added or updated, and
    names removed. ``None`` stands for an empty snapshot."""
    out: dict[str, TypeDiff] = {}
    for type_url in TYPE_URLS:
        if (
            old is not None
            and new is not None
            and old.type_versions[type_url] == new.type_versions[type_url]
        ):
            continue
        before = old.resources[type_url] if old is not None else {}
        after = new.resources[type_url] if new is not None else {}
        changed = frozenset(
            name
            for name, p in after.items()
            if (prev := before.get(name)) is None or prev.version != p.version
        )
        removed = frozenset(before.keys() - after.keys())
        if changed or removed:
            out[type_url] = TypeDiff(changed, removed)
    return out


class SnapshotCache:
    """The current :class:`Snapshot` per node cluster, with change notification."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}
        # Per key and type: the messages as given (name -> message) and, by id of message,
        # the message with its packed form. Holding the message keeps its id from being
        # reused by another object while the entry exists.
        self._given: dict[str, dict[str, dict[str, Message]]] = {}
        self._packed: dict[str, dict[str, dict[int, tuple[Message, Packed]]]] = {}
        self._changed: dict[str, asyncio.Event] = {}

    def set_snapshot(
        self, node_cluster: str, rs: ResourceSet, *, context: object = None
    ) -> Snapshot:
        """Install ``rs`` as the snapshot for ``node_cluster`` and wake its watchers.

        Messages that were in the previous snapshot of this key (the same objects) keep
        their packed form; only new objects are serialized. A type whose messages are all
        the very same objects as last time keeps its packed map and version outright. A
        snapshot with the same content is still installed (its ``context`` is new) but
        streams push nothing.
        """
        previous = self._snapshots.get(node_cluster)
        old_given = self._given.get(node_cluster, {})
        old_packed = self._packed.get(node_cluster, {})
        new_given: dict[str, dict[str, Message]] = {}
        new_packed: dict[str, dict[int, tuple[Message, Packed]]] = {}
        resources: dict[str, Mapping[str, Packed]] = {}
        type_versions: dict[str, str] = {}
        type_bytes: dict[str, int] = {}
        for type_url, msgs in rs.by_type().items():
            given = old_given.get(type_url)
            if previous is not None and given is not None and _same_messages(given, msgs):
                # A change touches one or two types; the others (thousands of clusters and
                # endpoints at scale) are neither looked up one by one nor hashed again.
                new_given[type_url] = given
                new_packed[type_url] = old_packed[type_url]
                resources[type_url] = previous.resources[type_url]
                type_versions[type_url] = previous.type_versions[type_url]
                type_bytes[type_url] = previous.type_bytes[type_url]
                continue
            last = old_packed.get(type_url, {})
            packed: dict[int, tuple[Message, Packed]] = {}
            entries: dict[str, Packed] = {}
            size = 0
            for name, msg in msgs.items():
                key = id(msg)
                hit = last.get(key) or packed.get(key)
                if hit is None or hit[0] is not msg:
                    hit = (msg, _pack(msg, type_url, name))
                packed[key] = hit
                entries[name] = hit[1]
                size += hit[1].size
            new_given[type_url] = msgs
            new_packed[type_url] = packed
            resources[type_url] = MappingProxyType(entries)
            type_versions[type_url] = combined_version((n, p.version) for n, p in entries.items())
            type_bytes[type_url] = size
        snap = Snapshot(
            node_cluster=node_cluster,
            version=combined_version(type_versions.items()),
            resources=MappingProxyType(resources),
            type_versions=MappingProxyType(type_versions),
            context=context,
            created_at=time.time(),
            type_bytes=MappingProxyType(type_bytes),
        )
        self._snapshots[node_cluster] = snap
        self._given[node_cluster] = new_given
        self._packed[node_cluster] = new_packed
        self._notify(node_cluster)
        return snap

    def get(self, node_cluster: str) -> Snapshot | None:
        return self._snapshots.get(node_cluster)

    def delete(self, node_cluster: str) -> None:
        """Forget a Gateway. Connected proxies keep what they have (nothing is pushed) and
        are served again when a snapshot for the key reappears."""
        self._packed.pop(node_cluster, None)
        self._given.pop(node_cluster, None)
        if self._snapshots.pop(node_cluster, None) is not None:
            self._notify(node_cluster)

    def snapshots(self) -> dict[str, Snapshot]:
        """All current snapshots by node cluster (a copy)."""
        return dict(self._snapshots)

    async def watch(self, node_cluster: str, last: Snapshot | None) -> Snapshot | None:
        """Wait until the snapshot of ``node_cluster`` is no longer ``last``; return it
        (``None`` if it was deleted). Returns at once if it already differs."""
        while True:
            current = self._snapshots.get(node_cluster)
            if current is not last:
                return current
            event = self._changed.get(node_cluster)
            if event is None:
                event = self._changed[node_cluster] = asyncio.Event()
            await event.wait()

    def _notify(self, node_cluster: str) -> None:
        # One Event per generation: waiters of this generation wake, later ones get a fresh
        # Event, so there is no clear() that could race with a waiter not yet woken.
        event = self._changed.pop(node_cluster, None)
        if event is not None:
            event.set()


def _same_messages(a: Mapping[str, Message], b: Mapping[str, Message]) -> bool:
    """Whether two name -> message maps hold the very same message objects."""
    if len(a) != len(b):
        return False
    get = a.get
    return all(get(name) is msg for name, msg in b.items())


def _pack(msg: Message, type_url: str, name: str) -> Packed:
    resource = any_pb2.Any()
    # Deterministic, so that the version (a hash of these bytes) depends on content only.
    resource.Pack(msg, deterministic=True)
    if resource.type_url != type_url:
        raise TypeError(f"resource {name!r}: {resource.type_url} given where {type_url} belongs")
    value = resource.value
    return Packed(content_version(value), resource, len(value))
