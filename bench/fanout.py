"""Proxy fan-out: one control plane, N xDS clients, time until every one ACKs a route edit.

N lightweight delta-xDS clients (gRPC streams that subscribe to every type and ACK every
response, as Envoy does, each on a connection of its own) run in a child process, beside
the real Envoy the control plane starts for the Gateway (host infra, delta xDS, 127.0.0.1
only). The input is bench/converge.py's shape with ``--routes`` HTTPRoutes. Once every
proxy has ACKed the whole configuration, one route file is rewritten ``--changes`` times;
for each change, each proxy's latency is from just before the write to the moment the xDS
server processed that proxy's ACK of the new RDS version (recorded by the server on the
stream). ``p50_s``/``p99_s`` are over every proxy of every change; ``all_acked_s`` is, per
change, the time until the last proxy ACKed (its worst case is printed too).

    python bench/fanout.py --proxies 500 --routes 1000

The last line is JSON: ``proxies``, ``routes``, ``p50_s``, ``p99_s``, ``cp_rss_mib`` (the
control plane process's peak RSS) and ``cp_cpu_s`` (its CPU time over the changes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _input import base_docs, route_doc  # bench/ is on sys.path when run as a script
from _proc import cpu_seconds, free_port
from _xds import host_config, pct, poll, write_atomically, write_route_files

from egobs.controlplane import ControlPlane
from egobs.xds.resources import ROUTE_TYPE, TYPE_URLS

NODE_CLUSTER = "bench/eg"
ROUTES_PER_FILE = 100
CHANGED_ROUTE = 0


# --------------------------------------------------------------------------- clients


def _run_clients(target: str, count: int, ready: Any, stop: Any) -> None:
    """The child process: ``count`` delta-xDS clients until ``stop`` is set."""
    asyncio.run(_clients(target, count, ready, stop))


async def _clients(target: str, count: int, ready: Any, stop: Any) -> None:
    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

    async def client(i: int) -> None:
        # A connection each, as every Envoy has its own: gRPC Python otherwise shares one
        # connection among a process's channels to one target (streams of one HTTP/2
        # connection), which is not what a control plane sees from a fleet.
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.use_local_subchannel_pool", 1),
        ]
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            acks: asyncio.Queue[discovery_pb2.DeltaDiscoveryRequest | None] = asyncio.Queue()
            node = base_pb2.Node(id=f"fanout-{i}", cluster=NODE_CLUSTER)

            async def requests() -> Any:
                for k, type_url in enumerate(TYPE_URLS):
                    first = discovery_pb2.DeltaDiscoveryRequest(
                        type_url=type_url, resource_names_subscribe=["*"]
                    )
                    if k == 0:
                        first.node.CopyFrom(node)
                    yield first
                while (ack := await acks.get()) is not None:
                    yield ack

            call = stub.DeltaAggregatedResources(requests())
            try:
                async for response in call:
                    acks.put_nowait(
                        discovery_pb2.DeltaDiscoveryRequest(
                            type_url=response.type_url, response_nonce=response.nonce
                        )
                    )
            except grpc.aio.AioRpcError:
                pass  # the control plane stopped

    tasks = [asyncio.create_task(client(i)) for i in range(count)]
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --------------------------------------------------------------------------- control plane


def write_input(root: Path, routes: int) -> Path:
    (root / "base.yaml").write_text("\n---\n".join(base_docs()) + "\n")
    write_route_files(root, routes, edited=CHANGED_ROUTE, per_file=ROUTES_PER_FILE)
    changed = root / "route-changed.yaml"
    changed.write_text(route_doc(CHANGED_ROUTE) + "\n")
    return changed


def _all_converged(cp: ControlPlane, want: int) -> bool:
    snap = cp.cache.get(NODE_CLUSTER)
    assert cp.xds is not None
    proxies = cp.xds.registry.for_cluster(NODE_CLUSTER)
    if snap is None or len(proxies) < want:
        return False
    for proxy in proxies:
        for type_url in TYPE_URLS:
            if not snap.resources[type_url]:
                continue
            st = proxy.types.get(type_url)
            if st is None or st.acked_version != snap.type_versions[type_url]:
                return False
    return True


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="egobs-fanout-") as tmp:
        root = Path(tmp) / "config"
        root.mkdir()
        changed = write_input(root, args.routes)
        config = host_config(root, Path(tmp) / "run", free_port(), None)
        cp = ControlPlane(config)
        ctx = multiprocessing.get_context("spawn")
        ready, stop = ctx.Event(), ctx.Event()
        child = None
        try:
            await cp.start()
            assert cp.xds is not None
            target = f"127.0.0.1:{cp.xds.port}"
            t0 = time.perf_counter()
            child = ctx.Process(
                target=_run_clients, args=(target, args.proxies, ready, stop), daemon=True
            )
            child.start()
            want = args.proxies + 1  # the clients and the real Envoy
            await poll(
                lambda: _all_converged(cp, want), args.timeout, f"{want} proxies to converge"
            )
            print(
                f"initial: {want} proxies ({args.proxies} clients + 1 Envoy) connected and "
                f"ACKed {args.routes} routes in {time.perf_counter() - t0:.1f} s"
            )
            await asyncio.sleep(args.pause)
            return await _changes(cp, changed, want, args)
        finally:
            stop.set()
            if child is not None:
                child.join(30)
                if child.is_alive():
                    child.kill()
                    child.join(5)
            await cp.stop()


async def _changes(
    cp: ControlPlane, changed: Path, want: int, args: argparse.Namespace
) -> dict[str, Any]:
    assert cp.xds is not None
    latencies: list[float] = []
    all_acked: list[float] = []
    cpu0 = cpu_seconds(os.getpid())
    for i in range(1, args.changes + 1):
        before = cp.cache.get(NODE_CLUSTER)
        assert before is not None
        written = time.time()
        write_atomically(changed, route_doc(CHANGED_ROUTE, version=i) + "\n")

        def new_snapshot(before: Any = before) -> Any:
            snap = cp.cache.get(NODE_CLUSTER)
            if snap is None or snap.type_versions[ROUTE_TYPE] == before.type_versions[ROUTE_TYPE]:
                return None
            return snap

        snap = await poll(new_snapshot, args.timeout, f"the snapshot of change {i}")
        version = snap.type_versions[ROUTE_TYPE]

        def every_ack(version: str = version) -> list[float] | None:
            assert cp.xds is not None
            times = []
            for proxy in cp.xds.registry.for_cluster(NODE_CLUSTER):
                st = proxy.types.get(ROUTE_TYPE)
                if st is None or st.acked_version != version or st.acked_at is None:
                    return None
                times.append(st.acked_at)
            return times if len(times) >= want else None

        acked = await poll(every_ack, args.timeout, f"every proxy's ACK of change {i}")
        per_proxy = [t - written for t in acked]
        latencies.extend(per_proxy)
        all_acked.append(max(per_proxy))
        if args.verbose:
            print(
                f"change {i}: p50 {statistics.median(per_proxy):.3f} s, all {max(per_proxy):.3f} s"
            )
        await asyncio.sleep(args.pause)
    cpu = cpu_seconds(os.getpid()) - cpu0
    p50, p99 = statistics.median(latencies), pct(latencies, 99)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"write -> ACK over {len(all_acked)} changes x {want} proxies: p50 {p50:.3f} s, "
        f"p99 {p99:.3f} s; all ACKed: median {statistics.median(all_acked):.3f} s, "
        f"worst {max(all_acked):.3f} s"
    )
    print(f"control plane: peak RSS {rss:.0f} MiB, {cpu:.2f} s CPU over the changes")
    return {
        "proxies": want,
        "routes": args.routes,
        "p50_s": round(p50, 3),
        "p99_s": round(p99, 3),
        "all_acked_s": round(max(all_acked), 3),
        "cp_rss_mib": round(rss, 1),
        "cp_cpu_s": round(cpu, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", type=int, default=500, help="lightweight xDS clients")
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per wait")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between changes")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every change")
    args = parser.parse_args(argv)
    if not 1 <= args.proxies <= 5000 or args.changes < 1:
        parser.error("--proxies must be within 1..5000 and --changes >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
