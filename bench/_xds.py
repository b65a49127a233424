"""The harness bench/converge.py and bench/endpoints.py share: an in-process control plane
with a real Envoy (delta xDS, 127.0.0.1 only), counting what it pushes and waiting on what
Envoy ACKed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _proc import CLOCK_TICK_S, cpu_seconds  # bench/ is on sys.path

from egobs.config import Config
from egobs.controlplane import ControlPlane
from egobs.xds.resources import TYPE_URLS


def host_config(root: Path, runtime: Path, listen_port: int, debounce_ms: int | None) -> Config:
    """serve's config for the bench: files under ``root``, one host-mode Envoy."""
    provider: dict[str, Any] = {"paths": [str(root)]}
    if debounce_ms is not None:
        provider["debounceMs"] = debounce_ms
    return Config.model_validate(
        {
            "provider": {"file": provider},
            "xds": {"address": "127.0.0.1", "port": 0, "mode": "delta"},
            "admin": {"address": "127.0.0.1", "port": 0},
            "infra": {
                "type": "Host",
                "host": {
                    "runtimeDir": str(runtime),
                    "listenerAddress": "127.0.0.1",
                    "portMap": {80: listen_port},
                    "extraArgs": ["--concurrency", "1"],
                },
            },
        }
    )


def write_atomically(path: Path, text: str) -> None:
    # Rename-over, as editors and config-management tools save: the provider never sees a
    # half-written file, so every write is exactly one reload.
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


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

    def on_refused(self, peer: str, gateway: str, reason: str, /) -> None:
        print(f"refused {peer} ({gateway}): {reason}", file=sys.stderr)


def type_status(cp: ControlPlane, node_cluster: str, type_url: str) -> Any:
    """The stream state of ``type_url`` of the first proxy of ``node_cluster``, if any."""
    for proxy in cp.xds.registry.for_cluster(node_cluster):
        st = proxy.types.get(type_url)
        if st is not None:
            return st
    return None


def converged(cp: ControlPlane, node_cluster: str) -> bool:
    """Every type the snapshot has is ACKed at exactly the snapshot's content."""
    snap = cp.cache.get(node_cluster)
    if snap is None:
        return False
    proxies = cp.xds.registry.for_cluster(node_cluster)
    if not proxies:
        return False
    for type_url in TYPE_URLS:
        if not snap.resources[type_url]:
            continue
        st = proxies[0].types.get(type_url)
        if st is None or st.acked_version != snap.type_versions[type_url]:
            return False
    return True


async def poll(cond: Any, timeout: float, what: str) -> Any:
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


async def settle(*, timeout: float) -> float:
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


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    # Nearest rank: with 20 samples p99 is the slowest, which is what a p99 target means.
    k = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))
    return ordered[k]


def write_route_files(root: Path, routes: int, *, edited: int | None, per_file: int = 100) -> None:
    """HTTPRoutes ``0..routes-1`` in files of ``per_file`` (how teams tend to group them),
    all but ``edited``, which a bench writes to a file of its own."""
    from _input import route_doc

    others = [r for r in range(routes) if r != edited]
    for start in range(0, len(others), per_file):
        chunk = others[start : start + per_file]
        text = "\n---\n".join(route_doc(r) for r in chunk) + "\n"
        (root / f"routes-{start // per_file:04d}.yaml").write_text(text)


@contextlib.asynccontextmanager
async def converged_plane(
    config: Config, counter: PushCounter, node_cluster: str, *, timeout: float, started: float
) -> AsyncIterator[ControlPlane]:
    """A started control plane whose Envoy has ACKed the whole configuration and gone
    idle; stopped on exit."""
    cp = ControlPlane(config, xds_observers=[counter])
    try:
        await cp.start()
        await poll(lambda: converged(cp, node_cluster), timeout, "Envoy to ACK the config")
        print(
            f"initial: loaded, translated and ACKed by Envoy in "
            f"{time.perf_counter() - started:.1f} s ({counter.resources} resources pushed)"
        )
        quiet = await settle(timeout=10.0)
        print(f"settled: Envoy idle after {quiet:.1f} s")
        yield cp
    finally:
        await cp.stop()
