"""Helpers shared by the bench scripts: process figures from /proc (Linux only), free
ports, HTTP GETs and waiting on a condition."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from typing import Any

CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")  # the resolution of the CPU times below


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far; OSError once it is gone."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces or parentheses: fields start after the last ")".
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bytes(resp.read())


def wait_for(cond: Any, timeout: float, what: str) -> Any:
    """``cond()``'s first truthy value, polled every 50 ms (OSError counts as not yet);
    exits the bench naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = cond()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")
