"""Worker-task shutdown shared by the sink's pipeline and forwarder."""

from __future__ import annotations

import asyncio
import contextlib


async def finish(task: asyncio.Task[None] | None, timeout: float) -> None:
    """Let ``task`` finish its remaining work for up to ``timeout`` s, then cancel it.

    The caller has already told the task to wind down; whatever it still holds after this
    is the caller's to count as dropped.
    """
    if task is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
