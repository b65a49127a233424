"""The bus: latest value wins, bursts coalesce, earliest event time and all contexts survive."""

from __future__ import annotations

import asyncio

from egobs.store import Store


def test_burst_coalesces_to_latest_with_earliest_time_and_all_contexts() -> None:
    async def scenario() -> None:
        store: Store[int] = Store("test")
        sub = store.subscribe("translator")
        for i in range(100):
            store.publish("gw", i, event_time=1000.0 + i, context=f"ctx{i}")
        assert sub.depth == 1 and store.depth == 1
        (change,) = await asyncio.wait_for(sub.next_batch(), 1)
        assert change.value == 99
        assert change.event_time == 1000.0
        assert change.coalesced == 100
        assert change.contexts[0] == "ctx0" and change.contexts[-1] == "ctx99"
        assert store.publishes == 100 and sub.handled == 1 and sub.depth == 0

    asyncio.run(scenario())


def test_keys_are_independent_and_delete_is_a_change() -> None:
    async def scenario() -> None:
        store: Store[str] = Store("test")
        sub = store.subscribe("x")
        store.publish("a", "1")
        store.publish("b", "2")
        store.delete("a")
        batch = {c.key: c.value for c in await sub.next_batch()}
        assert batch == {"a": None, "b": "2"}
        assert dict(store.items()) == {"b": "2"}

    asyncio.run(scenario())


def test_replay_gives_current_values_to_late_subscribers() -> None:
    async def scenario() -> None:
        store: Store[str] = Store("test")
        store.publish("a", "1")
        late = store.subscribe("late")
        assert [c.value for c in late.take()] == ["1"]
        fresh = store.subscribe("fresh", replay=False)
        assert fresh.take() == []

    asyncio.run(scenario())


def test_subscriber_waits_until_publish() -> None:
    async def scenario() -> None:
        store: Store[int] = Store("test")
        sub = store.subscribe("x")
        waiter = asyncio.create_task(sub.next_batch())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        store.publish("k", 7)
        batch = await asyncio.wait_for(waiter, 1)
        assert batch[0].value == 7
        sub.close()
        assert store.depth == 0

    asyncio.run(scenario())
