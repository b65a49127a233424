"""Translation at scale: N HTTPRoutes over 50 hostnames and 1,000 Services → IR → xDS.

Prints the time of each stage and the process's peak RSS; the last line is JSON with
``routes``, ``translate_s`` (Gateway API → xDS, loading excluded) and ``peak_rss_mib``.

    python bench/translate.py --routes 10000

``--instrumented both`` also times the control plane's own build path (``ControlPlane.build``:
translation and snapshot) with tracing and metrics off and on, in alternating order on the
same warm process (GC state frozen alike before each): full builds (``--repeat``, at least
10, of each; ``overhead_ratio`` is the median of on / off - 1 over the pairs built back to
back) and the per-change path, one HTTPRoute edit and
one EndpointSlice edit (median of ``--changes`` each; ``route_change_overhead_ratio``,
``endpoint_change_overhead_ratio``), and the time of a ``/metrics`` scrape right after a
full build and of the next one (``scrape_first_ms``, ``scrape_ms``: the status gauges are
computed when scraped).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from _input import HOSTNAMES, SERVICES, base_docs, route_doc, slice_doc  # bench/ on sys.path
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client import generate_latest

from egobs import gatewayapi
from egobs.config import Config
from egobs.controlplane import ControlPlane
from egobs.provider import ProviderEvent
from egobs.resources import load_text
from egobs.resources.loader import Resources
from egobs.telemetry.core import Telemetry
from egobs.telemetry.metrics import REGISTRY, STATUSES
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


class _Instrumented:
    """Two control planes over the same input, one with telemetry off and one with it on
    (metrics, and tracing at 100 % sampling into a discarding exporter), each warmed up by a
    first build so that neither pays first-run costs the other does not."""

    def __init__(self, resources: Resources) -> None:
        self.telemetry = {
            False: Telemetry(metrics=False, tracing=None),
            True: Telemetry(
                metrics=True,
                tracing=setup_tracing(enabled=True, sampling_ratio=1.0, exporter=_Discard()),
            ),
        }
        self.planes = {on: ControlPlane(Config(), telemetry=t) for on, t in self.telemetry.items()}
        for on in (False, True):
            self.build(on, resources)

    def build(self, on: bool, resources: Resources, *, fresh: bool = False) -> float:
        """One ``ControlPlane.build`` as a provider event triggers it; seconds taken.
        ``fresh``: on a new control plane (same telemetry), so a full translation."""
        telemetry = self.telemetry[on]
        cp = ControlPlane(Config(), telemetry=telemetry) if fresh else self.planes[on]
        if fresh:
            # Garbage of earlier full builds (frozen by them) is collected first: kept, it
            # made every later build slower, whichever setting it had, by up to a third. A
            # change's build leaves little garbage, and a full pass costs ~0.5 s.
            # The status gauges still hold the statuses of the last control plane with
            # metrics on: let go of them here, or the on build alone would free them (10,000
            # statuses) in its timed window when it hands over its own.
            STATUSES.update({})
            gc.unfreeze()
            gc.collect()
            gc.freeze()  # alive objects frozen, as ControlPlane.build leaves them
        t0 = time.perf_counter()
        now = time.time()
        root = telemetry.change_started(now, resources)
        telemetry.provider_event(ProviderEvent(event_time=now, modified=("<bench>",), changed=True))
        cp.build(resources, event_time=now, contexts=() if root is None else (root,))
        return time.perf_counter() - t0

    def close(self) -> None:
        for telemetry in self.telemetry.values():
            telemetry.shutdown()


def _alternating(n: int) -> list[bool]:
    """off, on, on, off, off, on...: each setting goes first as often as the other."""
    out: list[bool] = []
    for k in range(n):
        out.extend([False, True] if k % 2 == 0 else [True, False])
    return out


def overhead(
    resources: Resources, objects: list[Any], repeat: int, changes: int
) -> dict[str, float]:
    """Telemetry off vs on for the same work on the same warm state, in alternating order:
    full translations (median of ``repeat`` each: this machine's ±15 % drift makes a best-of
    a draw of luck), then ``changes`` one-route edits and ``changes`` one-EndpointSlice edits
    (median each)."""
    bench = _Instrumented(resources)
    try:
        full: dict[bool, list[float]] = {False: [], True: []}
        for on in _alternating(repeat):
            full[on].append(bench.build(on, resources, fresh=True))
        # Each off build and the on build next to it ran back to back: the median of their
        # ratios is not moved by the machine's drift over the whole run.
        paired = [on / off - 1 for off, on in zip(full[False], full[True], strict=True)]
        print("pairs' on / off - 1:", " ".join(f"{r:+.1%}" for r in paired))
        out = {
            "build_off_s": statistics.median(full[False]),
            "build_on_s": statistics.median(full[True]),
            "overhead_ratio": statistics.median(paired),
        }
        # The route, listener and rejected-object gauges are read from the statuses when
        # scraped: the first scrape after a full build classifies every route status, the
        # next ones only those they have not seen.
        bench.build(True, resources, fresh=True)  # the last full build had metrics off
        for name in ("scrape_first_ms", "scrape_ms"):
            t0 = time.perf_counter()
            generate_latest(REGISTRY)
            out[name] = (time.perf_counter() - t0) * 1000
        route_i = next(i for i, o in enumerate(objects) if o.KIND == "HTTPRoute")
        slice_i = next(i for i, o in enumerate(objects) if o.KIND == "EndpointSlice")
        for name, index, make in (
            ("route", route_i, lambda k: route_doc(0, version=k)),
            ("endpoint", slice_i, lambda k: slice_doc(0, version=k)),
        ):
            took: dict[bool, list[float]] = {False: [], True: []}
            for k in range(1, changes + 1):
                edited = list(objects)
                (edited[index],) = load_text(make(k))
                res = Resources.of(edited)
                for on in (False, True) if k % 2 else (True, False):
                    took[on].append(bench.build(on, res))
            out[f"{name}_change_off_ms"] = statistics.median(took[False]) * 1000
            out[f"{name}_change_on_ms"] = statistics.median(took[True]) * 1000
        return out
    finally:
        bench.close()


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
    parser.add_argument(
        "--changes", type=int, default=20, help="one-route and one-slice edits timed per setting"
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
        gc.unfreeze()
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
        repeat = max(10, args.repeat)
        figures = overhead(resources, list(resources), repeat, args.changes)
        off_s, on_s = figures["build_off_s"], figures["build_on_s"]
        ratio = figures["overhead_ratio"]
        print(
            f"full build, telemetry off: {off_s:.3f} s; on: {on_s:.3f} s (medians of "
            f"{repeat} each); overhead {ratio:+.1%} (median of the pairs' ratios)"
        )
        out |= {"build_off_s": round(off_s, 4), "build_on_s": round(on_s, 4)}
        out["overhead_ratio"] = round(ratio, 4)
        for name in ("route", "endpoint"):
            off_ms, on_ms = figures[f"{name}_change_off_ms"], figures[f"{name}_change_on_ms"]
            change_ratio = (on_ms - off_ms) / off_ms
            print(
                f"one {name} change, telemetry off: {off_ms:.2f} ms; on: {on_ms:.2f} ms; "
                f"overhead {change_ratio:+.1%} (median of {args.changes})"
            )
            out[f"{name}_change_off_ms"] = round(off_ms, 3)
            out[f"{name}_change_on_ms"] = round(on_ms, 3)
            out[f"{name}_change_overhead_ratio"] = round(change_ratio, 4)
        print(
            f"/metrics scrape: first after a full build {figures['scrape_first_ms']:.1f} ms, "
            f"then {figures['scrape_ms']:.1f} ms"
        )
        out["scrape_first_ms"] = round(figures["scrape_first_ms"], 2)
        out["scrape_ms"] = round(figures["scrape_ms"], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
