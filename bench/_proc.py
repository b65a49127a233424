"""Process figures from /proc, shared by the bench scripts (Linux only)."""

from __future__ import annotations

import os

CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")  # the resolution of the CPU times below


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far; OSError once it is gone."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces or parentheses: fields start after the last ")".
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S
