"""The bus between pipeline stages: a keyed, latest-value-wins store with subscriptions.

A stage publishes the newest value for a key; each subscriber sees, per key, only the latest
value that arrived since it last looked. So a burst of 100 edits while translation is busy
yields one or two translations, not 100. Coalescing keeps the *earliest* event time of the
merged publishes (latency is measured from the first change a value carries) and all their
trace contexts (so the work done for the merged value can link every cause).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Change", "Store", "Subscription"]

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Change(Generic[V]):
    """The latest value of one key, and what it stands for.

    ``value`` is ``None`` when the key was deleted. ``event_time`` is the wall-clock time
    (``time.time()``) of the earliest event merged into it; ``contexts`` are the trace
    contexts of every merged publish, oldest first; ``coalesced`` counts them.
    """

    key: str
    value: V | None
    event_time: float
    contexts: tuple[object, ...] = ()
    coalesced: int = 1


@dataclass
class _Pending(Generic[V]):
    changes: dict[str, Change[V]] = field(default_factory=dict)
    event: asyncio.Event = field(default_factory=asyncio.Event)


class Subscription(Generic[V]):
    """One consumer's view: an async iterator of batches of coalesced changes."""

    def __init__(self, store: Store[V], name: str) -> None:
        self._store = store
        self.name = name
        self._pending: _Pending[V] = _Pending()
        self.handled = 0
        self.closed = False

    @property
    def depth(self) -> int:
        """Keys with a change this subscriber has not taken yet."""
        return len(self._pending.changes)

    def _offer(self, change: Change[V]) -> None:
        prev = self._pending.changes.get(change.key)
        if prev is not None:
            change = Change(
                key=change.key,
                value=change.value,
                event_time=min(prev.event_time, change.event_time),
                contexts=prev.contexts + change.contexts,
                coalesced=prev.coalesced + change.coalesced,
            )
        self._pending.changes[change.key] = change
        self._pending.event.set()

    def take(self) -> list[Change[V]]:
        """Every pending change, without waiting (empty when none)."""
        batch = list(self._pending.changes.values())
        self._pending.changes.clear()
        self._pending.event.clear()
        self.handled += len(batch)
        return batch

    async def next_batch(self) -> list[Change[V]]:
        while not self._pending.changes:
            if self.closed:
                raise StopAsyncIteration
            await self._pending.event.wait()
            if not self._pending.changes:
                self._pending.event.clear()
        return self.take()

    def __aiter__(self) -> AsyncIterator[list[Change[V]]]:
        return self

    async def __anext__(self) -> list[Change[V]]:
        return await self.next_batch()

    def close(self) -> None:
        self.closed = True
        self._pending.event.set()
        self._store._unsubscribe(self)


class Store(Generic[V]):
    """Keyed latest values with subscriptions. Not thread-safe: use from one event loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._values: dict[str, Change[V]] = {}
        self._subs: list[Subscription[V]] = []
        self.publishes = 0

    def publish(
        self,
        key: str,
        value: V | None,
        *,
        event_time: float | None = None,
        context: object | None = None,
    ) -> None:
        """Set ``key`` to ``value`` (``None`` deletes it) and wake subscribers."""
        change = Change(
            key=key,
            value=value,
            event_time=time.time() if event_time is None else event_time,
            contexts=() if context is None else (context,),
        )
        self.publishes += 1
        if value is None:
            self._values.pop(key, None)
        else:
            self._values[key] = change
        for sub in self._subs:
            sub._offer(change)

    def delete(
        self, key: str, *, event_time: float | None = None, context: object | None = None
    ) -> None:
        self.publish(key, None, event_time=event_time, context=context)

    def get(self, key: str) -> V | None:
        change = self._values.get(key)
        return None if change is None else change.value

    def items(self) -> Iterator[tuple[str, V]]:
        for key, change in self._values.items():
            if change.value is not None:
                yield key, change.value

    def subscribe(self, name: str, *, replay: bool = True) -> Subscription[V]:
        """A new subscription; with ``replay`` it starts with every current value pending."""
        sub: Subscription[V] = Subscription(self, name)
        if replay:
            for change in self._values.values():
                sub._offer(change)
        self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription[V]) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    @property
    def depth(self) -> int:
        """The deepest backlog among subscribers."""
        return max((s.depth for s in self._subs), default=0)
