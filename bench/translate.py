"""Translation at scale: N HTTPRoutes over 50 hostnames and 1,000 Services → IR → xDS.

Prints the time of each stage and the process's peak RSS; the last line is JSON with
``routes``, ``translate_s`` (Gateway API → xDS, loading excluded) and ``peak_rss_mib``.

    python bench/translate.py --routes 10000

``--instrumented both`` also times the control plane's own build path (``ControlPlane.build``:
translation and snapshot) with tracing and metrics off and on, alternating, best of
``--repeat`` each, and adds ``overhead_ratio`` ((on - off) / off) to the JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from collections.abc import Sequence

from _input import HOSTNAMES, SERVICES, base_docs, route_doc  # bench/ is on sys.path
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from egobs import gatewayapi
from egobs.config import Config
from egobs.controlplane import ControlPlane
from egobs.provider import ProviderEvent
from egobs.resources import load_text
from egobs.resources.loader import Resources
from egobs.telemetry.core import Telemetry
from egobs.telemetry.tracing import setup_tracing
from egobs.xds.translate import Translator


def make_input(routes: int) -> str:
    docs = base_docs() + [route_doc(r) for r in range(routes)]
    return "\n---\n".join(docs) + "\n"


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Discard(SpanExporter):
    """Drops spans after the SDK did all its work, so only the instrumentation is timed."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def build_once(resources: Resources, *, instrumented: bool) -> float:
    """One cold ``ControlPlane.build`` as a provider event triggers it; seconds taken."""
    if instrumented:
        telemetry = Telemetry(
            metrics=True,
            tracing=setup_tracing(enabled=True, sampling_ratio=1.0, exporter=_Discard()),
        )
    else:
        telemetry = Telemetry(metrics=False, tracing=None)
    cp = ControlPlane(Config(), telemetry=telemetry)
    gc.collect()
    t0 = time.perf_counter()
    now = time.time()
    root = telemetry.change_started(now, resources)
    telemetry.provider_event(ProviderEvent(event_time=now, modified=("<bench>",), changed=True))
    cp.build(resources, event_time=now, contexts=() if root is None else (root,))
    took = time.perf_counter() - t0
    telemetry.shutdown()
    return took


def overhead(resources: Resources, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` seconds with instrumentation off and on, runs interleaved so that
    drift of the machine affects both alike."""
    off: list[float] = []
    on: list[float] = []
    for _ in range(max(1, repeat)):
        off.append(build_once(resources, instrumented=False))
        on.append(build_once(resources, instrumented=True))
    return min(off), min(on)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3, help="translations to time; best is kept")
    parser.add_argument(
        "--instrumented",
        choices=("off", "both"),
        default="off",
        help="both: also time the build with tracing and metrics off vs on",
    )
    args = parser.parse_args(argv)

    text = make_input(args.routes)
    t0 = time.perf_counter()
    resources = Resources.of(load_text(text, file="<bench>"))
    load_s = time.perf_counter() - t0
    del text
    print(
        f"input: {args.routes} HTTPRoutes, {HOSTNAMES} hostnames, {SERVICES} Services; "
        f"loaded in {load_s:.3f} s"
    )

    best: tuple[float, float, float] | None = None
    counts: dict[str, int] = {}
    for _ in range(max(1, args.repeat)):
        gc.collect()
        # What is alive now (the loaded input) is frozen, as ControlPlane.build freezes what
        # it keeps after each change: otherwise whether a ~0.5 s full GC pass over the
        # input lands inside the timed window depends on allocation counts, not on the
        # translator (it made this figure jump between 0.54 s and 1.1 s for a small change).
        gc.freeze()
        t0 = time.perf_counter()
        result = gatewayapi.translate(resources, now="2026-01-01T00:00:00Z")
        t1 = time.perf_counter()
        translator = Translator()
        sets = [translator.translate(gw) for gw in result.gateways.values()]
        t2 = time.perf_counter()
        run = (t1 - t0, t2 - t1, t2 - t0)
        if best is None or run[2] < best[2]:
            best = run
        counts = {
            "ir_routes": sum(len(lis.routes) for gw in result.gateways.values() for lis in gw.http),
            "envoy_routes": sum(
                len(vh.routes)
                for rs in sets
                for rc in rs.routes.values()
                for vh in rc.virtual_hosts
            ),
            "clusters": sum(len(rs.clusters) for rs in sets),
            "statuses": len(result.statuses),
        }
    assert best is not None
    gatewayapi_s, xds_s, translate_s = best
    rss = peak_rss_mib()
    print(f"gateway-api -> IR: {gatewayapi_s:.3f} s")
    print(f"IR -> xDS:         {xds_s:.3f} s")
    print(f"total:             {translate_s:.3f} s (best of {args.repeat})")
    print(f"peak RSS:          {rss:.1f} MiB")
    print(f"counts:            {counts}")
    if counts.get("envoy_routes", 0) < args.routes:
        print("error: fewer Envoy routes than input routes", file=sys.stderr)
        return 1
    out: dict[str, float | int] = {
        "routes": args.routes,
        "translate_s": round(translate_s, 4),
        "peak_rss_mib": round(rss, 1),
        "load_s": round(load_s, 4),
        "gatewayapi_s": round(gatewayapi_s, 4),
        "xds_s": round(xds_s, 4),
    }
    if args.instrumented == "both":
        off_s, on_s = overhead(resources, args.repeat)
        ratio = (on_s - off_s) / off_s
        print(f"build, telemetry off: {off_s:.3f} s; on: {on_s:.3f} s; overhead {ratio:+.1%}")
        out |= {
            "build_off_s": round(off_s, 4),
            "build_on_s": round(on_s, 4),
            "overhead_ratio": round(ratio, 4),
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
