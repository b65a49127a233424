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
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _input import base_docs, route_doc  # bench/ is on sys.path when run as a script
from _proc import free_port
from _xds import (
    PushCounter,
    converged,
    converged_plane,
    host_config,
    pct,
    poll,
    type_status,
    write_atomically,
    write_route_files,
)

from egobs.controlplane import ControlPlane
from egobs.xds.resources import ROUTE_TYPE

ROUTES_PER_FILE = 100
NODE_CLUSTER = "bench/eg"
CHANGED_ROUTE = 0


# --------------------------------------------------------------------------- input


def write_input(root: Path, routes: int) -> Path:
    """Write the input files; returns the path of the file holding the edited route."""
    (root / "base.yaml").write_text("\n---\n".join(base_docs()) + "\n")
    write_route_files(root, routes, edited=CHANGED_ROUTE, per_file=ROUTES_PER_FILE)
    changed = root / "route-changed.yaml"
    changed.write_text(route_doc(CHANGED_ROUTE) + "\n")
    return changed


# --------------------------------------------------------------------------- run


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="egobs-converge-") as tmp:
        root = Path(tmp) / "config"
        root.mkdir()
        t0 = time.perf_counter()
        changed = write_input(root, args.routes)
        print(f"input: {args.routes} HTTPRoutes in {len(list(root.glob('*.yaml')))} files")
        config = host_config(root, Path(tmp) / "run", free_port(), args.debounce_ms)
        counter = PushCounter()
        async with converged_plane(
            config, counter, NODE_CLUSTER, timeout=args.timeout, started=t0
        ) as cp:
            await asyncio.sleep(args.pause)
            return await _changes(cp, counter, changed, args)


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

        snap = await poll(new_snapshot, args.timeout, f"the snapshot of change {i}")
        want = snap.type_versions[ROUTE_TYPE]

        def acked(want: str = want) -> Any:
            st = type_status(cp, NODE_CLUSTER, ROUTE_TYPE)
            return st if st is not None and st.acked_version == want else None

        st = await poll(acked, args.timeout, f"Envoy's ACK of change {i}")
        await poll(
            lambda: converged(cp, NODE_CLUSTER), args.timeout, f"convergence after change {i}"
        )
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
    p50, p99 = statistics.median(latencies), pct(latencies, 99)
    print(f"write -> ACK over {len(latencies)} changes: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    for name, values in stages.items():
        print(f"  {name:9s} p50 {statistics.median(values):7.1f} ms  p99 {pct(values, 99):7.1f} ms")
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
