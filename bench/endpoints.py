"""Endpoint churn at scale: EndpointSlice edits while N HTTPRoutes are loaded, write → Envoy ACK.

The input is bench/converge.py's (N HTTPRoutes over 50 hostnames and 1,000 Services, the
routes 100 to a file), except that the EndpointSlices of the Services that get edited are in
files of their own, as a controller writing one object at a time would have them. Runs the
control plane in-process with a real Envoy (delta xDS, everything on 127.0.0.1), waits until
Envoy has ACKed the whole configuration and gone idle, then makes ``--changes`` rollout
steps: each rewrites one EndpointSlice (cycling over ``--services`` Services) so that one
of its endpoints gets a new address.

Per change:
- ``build``: the control plane's translation of the change (Gateway API translation, xDS
  translation, snapshot), as ``ControlPlane.last_translation_s`` reports it;
- write → ACK: from just before the file write to the moment the xDS server processed
  Envoy's ACK of the EDS version carrying the change (recorded by the server on the stream);
- what was pushed, per type, counted by an xDS observer from the server's push
  notifications (``types_pushed`` is the union over all changes).

    python bench/endpoints.py --routes 10000

The last line is JSON: ``routes``, ``changes``, ``build_p50_ms``, ``p50_ms``, ``p99_ms``,
``types_pushed`` (plus build p99 and resources pushed per change).
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

from _input import base_docs, slice_doc  # bench/ is on sys.path as a script
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
from egobs.xds.resources import ENDPOINT_TYPE

ROUTES_PER_FILE = 100
NODE_CLUSTER = "bench/eg"


def write_input(root: Path, routes: int, services: int) -> list[Path]:
    """Write the input files; returns the slice files that get edited, by Service."""
    edited = frozenset(range(services))
    (root / "base.yaml").write_text("\n---\n".join(base_docs(separate_slices=edited)) + "\n")
    write_route_files(root, routes, edited=None, per_file=ROUTES_PER_FILE)
    files = []
    for s in sorted(edited):
        path = root / f"slice-svc-{s}.yaml"
        path.write_text(slice_doc(s) + "\n")
        files.append(path)
    return files


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="egobs-endpoints-") as tmp:
        root = Path(tmp) / "config"
        root.mkdir()
        t0 = time.perf_counter()
        files = write_input(root, args.routes, args.services)
        print(f"input: {args.routes} HTTPRoutes in {len(list(root.glob('*.yaml')))} files")
        config = host_config(root, Path(tmp) / "run", free_port(), args.debounce_ms)
        counter = PushCounter()
        async with converged_plane(
            config, counter, NODE_CLUSTER, timeout=args.timeout, started=t0
        ) as cp:
            await asyncio.sleep(args.pause)
            return await _changes(cp, counter, files, args)


async def _changes(
    cp: ControlPlane, counter: PushCounter, files: list[Path], args: argparse.Namespace
) -> dict[str, Any]:
    latencies: list[float] = []
    builds: list[float] = []
    pushed: list[int] = []
    types: set[str] = set()
    for i in range(1, args.changes + 1):
        before = cp.cache.get(NODE_CLUSTER)
        assert before is not None
        counter.reset()
        service = (i - 1) % len(files)
        text = slice_doc(service, version=i) + "\n"
        written = time.time()
        write_atomically(files[service], text)

        def new_snapshot(before: Any = before) -> Any:
            snap = cp.cache.get(NODE_CLUSTER)
            if snap is None or snap is before:
                return None
            if snap.type_versions[ENDPOINT_TYPE] == before.type_versions[ENDPOINT_TYPE]:
                return None
            return snap

        snap = await poll(new_snapshot, args.timeout, f"the snapshot of change {i}")
        builds.append(cp.last_translation_s * 1000)
        want = snap.type_versions[ENDPOINT_TYPE]

        def acked(want: str = want) -> Any:
            st = type_status(cp, NODE_CLUSTER, ENDPOINT_TYPE)
            return st if st is not None and st.acked_version == want else None

        st = await poll(acked, args.timeout, f"Envoy's ACK of change {i}")
        await poll(lambda: converged(cp, NODE_CLUSTER), args.timeout, f"convergence {i}")
        # Anything else a change caused would be pushed after the EDS ACK: count it too.
        await asyncio.sleep(args.pause)
        latencies.append((st.acked_at - written) * 1000)
        pushed.append(counter.resources)
        types.update(counter.by_type)
        if args.verbose:
            print(
                f"change {i:3d}: {latencies[-1]:6.1f} ms  build {builds[-1]:5.1f} ms  "
                f"pushed {counter.by_type}"
            )
    p50, p99 = statistics.median(latencies), pct(latencies, 99)
    build_p50, build_p99 = statistics.median(builds), pct(builds, 99)
    print(f"build over {len(builds)} changes: p50 {build_p50:.2f} ms, p99 {build_p99:.2f} ms")
    print(f"write -> ACK over {len(latencies)} changes: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"pushed per change: {statistics.mean(pushed):.1f} resources, types {sorted(types)}")
    return {
        "routes": args.routes,
        "changes": len(latencies),
        "build_p50_ms": round(build_p50, 2),
        "build_p99_ms": round(build_p99, 2),
        "p50_ms": round(p50, 1),
        "p99_ms": round(p99, 1),
        "types_pushed": sorted(types),
        "resources_pushed_per_change": round(statistics.mean(pushed), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=10000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--services", type=int, default=5, help="Services whose slices change")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per wait")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between changes")
    parser.add_argument(
        "--debounce-ms", type=int, default=None, help="provider.file.debounceMs (default: config's)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every change")
    args = parser.parse_args(argv)
    if args.changes < 1 or not 1 <= args.services <= 1000:
        parser.error("--changes must be >= 1 and --services within 1..1000")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
