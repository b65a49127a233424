"""Helpers for the infra tests (a plain module: conftest names clash across test dirs)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

WAIT_S = 15.0


def run_async(coro: Awaitable[None]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro, 90)

    asyncio.run(bounded())
