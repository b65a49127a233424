"""What a host-mode Envoy's directory says about it, so it can outlive its control plane.

Each Envoy :class:`~egobs.infra.host.HostInfra` spawns gets ``proxy.json`` beside its
bootstrap: pid, the kernel's start time of that pid, node id, bootstrap fingerprint and the
xDS address it was started for. A later ``egobs serve`` with the same runtime directory and
xDS address reads these records and adopts the Envoys that still run (no restart, no
dropped request); ``egobs proxies stop`` stops them deliberately.

A pid alone is not an identity: after the Envoy exits the kernel may give its pid to any
other process. A record only counts while ``/proc/<pid>/stat`` still shows the same start
time and the command line still names the record's bootstrap, so egobs never signals a
process it did not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "RECORD_FILE",
    "AdoptedProcess",
    "ChildProcess",
    "ProxyRecord",
    "default_runtime_dir",
    "is_alive",
    "live_records",
    "remove_record",
    "start_ticks",
    "stop_recorded",
    "write_record",
]

log = logging.getLogger(__name__)

RECORD_FILE = "proxy.json"


def default_runtime_dir() -> Path:
    """Where ``egobs serve`` keeps its Envoys' files unless configured: the same place on
    every start, so a restarted control plane finds the Envoys it left running."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / "egobs"
    return Path.home() / ".local" / "state" / "egobs" / "run"


@dataclass(frozen=True, slots=True)
class ProxyRecord:
    """One running Envoy as its control plane left it."""

    name: str  # the proxy (``<ns>/<gw>``)
    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: tells this process from a pid reuse
    node_id: str
    fingerprint: str  # of its bootstrap, as HostInfra computes it
    xds: str  # ``host:port`` of the control plane it connects to
    bootstrap: str  # path of its bootstrap file
    started_at: float  # wall clock

    @property
    def directory(self) -> Path:
        return Path(self.bootstrap).parent


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name may hold spaces or parentheses: fields start after the last ")".
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), None when it is gone."""
    fields = _stat(pid)
    return None if fields is None else int(fields[19])  # field 22; fields[0] is field 3


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_alive(record: ProxyRecord) -> bool:
    """Whether the record's process still runs and is still that Envoy."""
    fields = _stat(record.pid)
    if fields is None or int(fields[19]) != record.start_ticks or fields[0] in ("Z", "X"):
        return False  # gone, exited (a zombie), or the pid is another process's now
    # The same start time is the same process. Its command line names the bootstrap; it
    # reads empty for an instant while the process execs, which is no reason to doubt it.
    cmdline = _cmdline(record.pid)
    return not cmdline or record.bootstrap in cmdline


def write_record(record: ProxyRecord) -> None:
    path = record.directory / RECORD_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(record), f, indent=2)
    os.replace(tmp, path)


def remove_record(directory: Path, pid: int) -> None:
    """Remove ``directory``'s record if it still names ``pid`` (a newer Envoy's stays)."""
    path = directory / RECORD_FILE
    record = _read(path)
    if record is not None and record.pid == pid:
        path.unlink(missing_ok=True)


def _read(path: Path) -> ProxyRecord | None:
    try:
        data = json.loads(path.read_text())
        return ProxyRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def live_records(runtime_dir: Path) -> list[ProxyRecord]:
    """The records under ``runtime_dir`` whose Envoy still runs; stale ones are removed."""
    out: list[ProxyRecord] = []
    if not runtime_dir.is_dir():
        return out
    for path in sorted(runtime_dir.glob(f"*/{RECORD_FILE}")):
        record = _read(path)
        if record is None:
            log.warning("ignoring unreadable proxy record %s", path)
            continue
        if is_alive(record):
            out.append(record)
        else:
            path.unlink(missing_ok=True)
    return out


def stop_recorded(record: ProxyRecord, *, grace_s: float = 5.0) -> bool:
    """SIGTERM the record's Envoy, SIGKILL it after ``grace_s``; True once it is gone.

    For a command run without an event loop (``egobs proxies stop``); the process is not
    this one's child, so its end is seen through /proc, not waitpid."""
    try:
        fd = os.pidfd_open(record.pid)
    except OSError:
        fd = None
    try:
        # Checked after pidfd_open: the pidfd then names this very Envoy, never a reuse.
        if fd is None or not is_alive(record):
            remove_record(record.directory, record.pid)
            return True
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if not is_alive(record):
                    remove_record(record.directory, record.pid)
                    return True
                time.sleep(0.02)
        return False
    finally:
        if fd is not None:
            os.close(fd)


class _PidfdWatch:
    """A process the event loop watches through a pidfd, which turns readable when the
    process exits: ``running`` and ``wait`` without a child watcher, for children and for
    processes this one did not start alike."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._gone = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._fd: int | None = None

    def _watch(self, fd: int) -> None:
        self._fd = fd
        self._loop.add_reader(fd, self._on_exit)

    @property
    def running(self) -> bool:
        return not self._gone.is_set()

    def _on_exit(self) -> None:
        self.release()
        self._exited()
        self._gone.set()

    def _exited(self) -> None:
        """What to do once the process has exited (before waiters wake)."""

    def release(self) -> None:
        """Stop watching; the process goes on (an Envoy left serving at exit)."""
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None


class AdoptedProcess(_PidfdWatch):
    """An Envoy an earlier egobs started.

    It is not this process's child, so its exit code is never known (``returncode`` stays
    None). Signals go through the pidfd, which names this very process: a reused pid is
    never signalled.
    """

    def __init__(self, record: ProxyRecord) -> None:
        super().__init__(record.pid)
        self.record = record
        self.returncode: int | None = None
        try:
            fd = os.pidfd_open(record.pid)
        except OSError:
            self._gone.set()  # exited between reading the record and now
            return
        if not is_alive(record):  # the pid was reused just before pidfd_open
            os.close(fd)
            self._gone.set()
            return
        self._watch(fd)

    async def wait(self) -> None:
        await self._gone.wait()

    def _signal(self, sig: signal.Signals) -> None:
        if self._fd is None or not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._fd, sig)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)


class ChildProcess(_PidfdWatch):
    """An Envoy this process spawned.

    Not asyncio's subprocess: its transport kills a still-running child when it is closed
    or garbage-collected, and a kept Envoy must outlive this process. Once the pidfd says
    the child exited it is reaped here (``returncode`` is set).
    """

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        super().__init__(popen.pid)
        self.popen = popen
        # Unreaped, the child keeps its pid even after it exits: pidfd_open cannot miss it.
        self._watch(os.pidfd_open(popen.pid))

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def _exited(self) -> None:
        self.popen.wait()  # exited already: reaps without blocking

    async def wait(self) -> int | None:
        await self._gone.wait()
        return self.popen.returncode

    def terminate(self) -> None:
        if self.running:
            self.popen.terminate()  # not reaped yet: the pid is still this child's

    def kill(self) -> None:
        if self.running:
            self.popen.kill()
