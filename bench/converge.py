"""Convergence at scale: one route file edited while N HTTPRoutes are loaded, write → Envoy ACK.

Generates bench/translate.py's input shape (N HTTPRoutes over 50 hostnames, 1,000 Services)
as files: the Gateway and Services in one file, the routes 100 to a file (how teams tend to
group them), and the one route that gets edited in a file of its own. Runs the control plane
in-process with a real Envoy (delta xDS, everything on 127.0.0.1), waits until Envoy has
ACKed the whole configuration and gone idle (its CPU time stops growing, at most 10 s), then
rewrites the edited route's file ``--changes`` times.

For each change, the latency is from just before the file write to the moment the xDS
server processed Envoy's ACK of the RDS version that carries the change (``acked_at`` of the
stream's route type, recorded by the server on the stream, not inferred). Resources pushed
per change are counted by an xDS observer from the server's own push notifications.

    python bench/converge.py --routes 10000

The last line is JSON: ``routes``, ``changes``, ``p50_ms``, ``p99_ms``,
``resources_pushed_per_change`` (plus a per-stage breakdown).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _input import base_docs, route_doc  # bench/ is on sys.path when run as a script
from _proc import CLOCK_TICK_S, cpu_seconds

from egobs.config import Config
from egobs.controlplane import ControlPlane
from egobs.xds.resources import ROUTE_TYPE, TYPE_URLS

ROUTES_PER_FILE = 100
NODE_CLUSTER = "bench/eg"
CHANGED_ROUTE = 0


# --------------------------------------------------------------------------- input


def write_input(root: Path, routes: int) -> Path:
    """Write the input files; returns the path of the file holding the edited route."""
    (root / "base.yaml").write_text("\n---\n".join(base_docs()) + "\n")
    others = [r for r in range(routes) if r != CHANGED_ROUTE]
    for start in range(0, len(others), ROUTES_PER_FILE):
        chunk = others[start : start + ROUTES_PER_FILE]
        text = "\n---\n".join(route_doc(r) for r in chunk) + "\n"
        (root / f"routes-{start // ROUTES_PER_FILE:04d}.yaml").write_text(text)
    changed = root / "route-changed.yaml"
    changed.write_text(route_doc(CHANGED_ROUTE) + "\n")
    return changed


def write_atomically(path: Path, text: str) -> None:
    # Rename-over, as editors and config-management tools save: the provider never sees a
    # half-written file, so every write is exactly one reload.
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- observing


@dataclass
class PushCounter:
    """An :class:`~egobs.xds.server.XdsObserver` counting what the server pushed."""

    resources: int = 0
    bytes: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.resources = self.bytes = 0
        self.by_type = {}

    def on_connect(self, proxy: Any, /) -> None:
        pass

    def on_disconnect(self, proxy: Any, /) -> None:
        pass

    def on_push(
        self,
        proxy: Any,
        type_url: str,
        version: str,
        resource_count: int,
        size_bytes: int,
        context: object,
        /,
    ) -> None:
        self.resources += resource_count
        self.bytes += size_bytes
        short = type_url.rsplit(".", 1)[-1]
        self.by_type[short] = self.by_type.get(short, 0) + resource_count

    def on_ack(self, proxy: Any, type_url: str, version: str, context: object, /) -> None:
        pass

    def on_nack(
        self, proxy: Any, type_url: str, version: str, message: str, context: object, /
    ) -> None:
        print(f"NACK {type_url}: {message[:300]}", file=sys.stderr)


def _route_status(cp: ControlPlane) -> Any:
    for proxy in cp.xds.registry.for_cluster(NODE_CLUSTER):
        st = proxy.types.get(ROUTE_TYPE)
        if st is not None:
            return st
    return None


def _converged(cp: ControlPlane) -> bool:
    """Every type the snapshot has is ACKed at exactly the snapshot's content."""
    snap = cp.cache.get(NODE_CLUSTER)
    if snap is None:
        return False
    proxies = cp.xds.registry.for_cluster(NODE_CLUSTER)
    if not proxies:
        return False
    for type_url in TYPE_URLS:
        if not snap.resources[type_url]:
            continue
        st = proxies[0].types.get(type_url)
        if st is None or st.acked_version != snap.type_versions[type_url]:
            return False
    return True


async def _poll(cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        await asyncio.sleep(0.001)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _cpu_total(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def _envoy_children() -> list[int]:
    me = str(os.getpid())
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, rest = text.split(") ", 1)
        if comm.endswith("(envoy") and rest.split()[1] == me:
            out.append(int(stat.parent.name))
    return out


async def _settle(*, timeout: float) -> float:
    """Wait until Envoy has finished applying the initial configuration (its CPU time stops
    growing: at most one clock tick per 200 ms twice in a row), so that the first measured
    change does not share the CPU with the tail of the initial load. Returns the seconds
    waited."""
    start = time.monotonic()
    pids = _envoy_children()
    quiet = 0
    last = _cpu_total(pids)
    while quiet < 2 and time.monotonic() - start < timeout:
        await asyncio.sleep(0.2)
        now = _cpu_total(pids)
        quiet = quiet + 1 if now - last <= CLOCK_TICK_S * 1.5 else 0
        last = now
    return time.monotonic() - start


# --------------------------------------------------------------------------- run


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    # Nearest rank: with 20 samples p99 is the slowest, which is what a p99 target means.
    k = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))
    return ordered[k]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="egobs-converge-") as tmp:
        root = Path(tmp) / "config"
        root.mkdir()
        t0 = time.perf_counter()
        changed = write_input(root, args.routes)
        print(f"input: {args.routes} HTTPRoutes in {len(list(root.glob('*.yaml')))} files")
        listen_port = free_port()
        provider: dict[str, Any] = {"paths": [str(root)]}
        if args.debounce_ms is not None:
            provider["debounceMs"] = args.debounce_ms
        config = Config.model_validate(
            {
                "provider": {"file": provider},
                "xds": {"address": "127.0.0.1", "port": 0, "mode": "delta"},
                "admin": {"address": "127.0.0.1", "port": 0},
                "infra": {
                    "type": "Host",
                    "host": {
                        "runtimeDir": str(Path(tmp) / "run"),
                        "listenerAddress": "127.0.0.1",
                        "portMap": {80: listen_port},
                        "extraArgs": ["--concurrency", "1"],
                    },
                },
            }
        )
        counter = PushCounter()
        cp = ControlPlane(config, xds_observers=[counter])
        try:
            await cp.start()
            await _poll(lambda: _converged(cp), args.timeout, "Envoy to ACK the initial config")
            print(
                f"initial: loaded, translated and ACKed by Envoy in "
                f"{time.perf_counter() - t0:.1f} s ({counter.resources} resources pushed)"
            )
            quiet = await _settle(timeout=10.0)
            print(f"settled: Envoy idle after {quiet:.1f} s")
            await asyncio.sleep(args.pause)
            return await _changes(cp, counter, changed, args)
        finally:
            await cp.stop()


async def _changes(
    cp: ControlPlane, counter: PushCounter, changed: Path, args: argparse.Namespace
) -> dict[str, Any]:
    latencies: list[float] = []
    stages: dict[str, list[float]] = {"watch": [], "translate": [], "push": [], "ack": []}
    pushed: list[int] = []
    pushed_bytes: list[int] = []
    for i in range(1, args.changes + 1):
        before = cp.cache.get(NODE_CLUSTER)
        assert before is not None
        counter.reset()
        text = route_doc(CHANGED_ROUTE, version=i) + "\n"
        written = time.time()
        write_atomically(changed, text)

        def new_snapshot(before: Any = before) -> Any:
            snap = cp.cache.get(NODE_CLUSTER)
            if snap is None or snap is before:
                return None
            if snap.type_versions[ROUTE_TYPE] == before.type_versions[ROUTE_TYPE]:
                return None
            return snap

        snap = await _poll(new_snapshot, args.timeout, f"the snapshot of change {i}")
        want = snap.type_versions[ROUTE_TYPE]

        def acked(want: str = want) -> Any:
            st = _route_status(cp)
            return st if st is not None and st.acked_version == want else None

        st = await _poll(acked, args.timeout, f"Envoy's ACK of change {i}")
        await _poll(lambda: _converged(cp), args.timeout, f"convergence after change {i}")
        # Removals or follow-ups a change may cause are pushed after the RDS ACK; let them
        # be counted before the next change.
        await asyncio.sleep(args.pause)
        latency = (st.acked_at - written) * 1000
        latencies.append(latency)
        event_time = getattr(snap.context, "event_time", written)
        stages["watch"].append((event_time - written) * 1000)
        stages["translate"].append((snap.created_at - event_time) * 1000)
        stages["push"].append((st.sent_at - snap.created_at) * 1000)
        stages["ack"].append((st.acked_at - st.sent_at) * 1000)
        pushed.append(counter.resources)
        pushed_bytes.append(counter.bytes)
        if args.verbose:
            print(
                f"change {i:3d}: {latency:7.1f} ms  watch {stages['watch'][-1]:6.1f}  "
                f"translate {stages['translate'][-1]:6.1f}  push {stages['push'][-1]:5.1f}  "
                f"ack {stages['ack'][-1]:6.1f}  pushed {counter.by_type} {counter.bytes} B"
            )
    p50, p99 = statistics.median(latencies), _pct(latencies, 99)
    print(f"write -> ACK over {len(latencies)} changes: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    for name, values in stages.items():
        print(
            f"  {name:9s} p50 {statistics.median(values):7.1f} ms  p99 {_pct(values, 99):7.1f} ms"
        )
    print(
        f"pushed per change: {statistics.mean(pushed):.1f} resources, "
        f"{statistics.mean(pushed_bytes) / 1024:.0f} KiB"
    )
    return {
        "routes": args.routes,
        "changes": len(latencies),
        "p50_ms": round(p50, 1),
        "p99_ms": round(p99, 1),
        "resources_pushed_per_change": round(statistics.mean(pushed), 2),
        "bytes_pushed_per_change": round(statistics.mean(pushed_bytes)),
        "stages_p50_ms": {k: round(statistics.median(v), 1) for k, v in stages.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=10000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per wait")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between changes")
    parser.add_argument(
        "--debounce-ms", type=int, default=None, help="provider.file.debounceMs (default: config's)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every change")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
