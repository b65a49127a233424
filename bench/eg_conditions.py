"""How often egobs's listener and route-parent conditions agree with Envoy Gateway's.

Envoy Gateway's translator goldens (``internal/gatewayapi/testdata/X.in.yaml`` with the
expected ``X.out.yaml``, in the envoyproxy/gateway repository) are not shipped here: fetch
them yourself into a directory, then

    python bench/eg_conditions.py DIR [--verbose] [--case NAME] [--exclude-features]

Each ``X.in.yaml`` holds top-level lists (``gateways:``, ``httpRoutes:``, ``services:``, ...)
rather than a stream of Kubernetes documents; every item becomes one document (apiVersion
and kind added where missing) and goes through egobs's loader, object by object: objects it
refuses are dropped and reported. A Gateway API apiVersion egobs does not serve (GRPCRoute
v1alpha2, ...) is replaced by one it does: EG decodes every version alike. The fixtures EG's test harness adds to every case
(Services ``service-1``..``service-4``, ``mirror-service`` and ``monitoring/otel-collector``
with their EndpointSlices, Namespaces ``default`` and ``envoy-gateway``) and the
GatewayClass ``envoy-gateway-class`` of EG's controller are added when the input lacks
them. The objects are translated by :func:`egobs.gatewayapi.translate` under EG's
controller name.

What is compared, per case: for each Gateway listener (by Gateway namespace/name and
listener name) and each route ``status.parents[]`` entry (by parentRef), each condition
type EG reports, on ``status`` and ``reason`` (never message or times). One comparison is
one (object, listener or parent, condition type). A case is "not comparable" when the
loader refuses an object whose status is compared, or the GatewayClass.

``--exclude-features`` leaves out the comparisons about features egobs does not implement
(see ``EG_ONLY_FEATURES``): every comparison of a case whose input uses EG-only kinds
(policies, extensions), MCS ServiceImport backends or merged Gateways, for the ratio
"where both implement the feature". Without it such cases are compared like the others.

Only local files are read. The last line printed is JSON: ``cases``, ``comparable_cases``,
``comparisons``, ``matched``, ``match_ratio``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from egobs import gatewayapi
from egobs.resources import Resource, Resources, load_documents
from egobs.resources.loader import KINDS, check_unique

EG_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
EG_CLASS = "envoy-gateway-class"
NOW = "2024-01-01T00:00:00Z"
GW_GROUP = "gateway.networking.k8s.io"

# The top-level lists of an EG input: the apiVersion and kind of their items.
LIST_KINDS: dict[str, tuple[str, str]] = {
    "gatewayClass": (f"{GW_GROUP}/v1", "GatewayClass"),
    "gatewayClasses": (f"{GW_GROUP}/v1", "GatewayClass"),
    "gateways": (f"{GW_GROUP}/v1", "Gateway"),
    "httpRoutes": (f"{GW_GROUP}/v1", "HTTPRoute"),
    "grpcRoutes": (f"{GW_GROUP}/v1", "GRPCRoute"),
    "tlsRoutes": (f"{GW_GROUP}/v1alpha2", "TLSRoute"),
    "tcpRoutes": (f"{GW_GROUP}/v1alpha2", "TCPRoute"),
    "udpRoutes": (f"{GW_GROUP}/v1alpha2", "UDPRoute"),
    "referenceGrants": (f"{GW_GROUP}/v1beta1", "ReferenceGrant"),
    "backendTLSPolicies": (f"{GW_GROUP}/v1alpha3", "BackendTLSPolicy"),
    "namespaces": ("v1", "Namespace"),
    "services": ("v1", "Service"),
    "endpointSlices": ("discovery.k8s.io/v1", "EndpointSlice"),
    "secrets": ("v1", "Secret"),
    "configMaps": ("v1", "ConfigMap"),
    "backends": ("gateway.envoyproxy.io/v1alpha1", "Backend"),
    "envoyProxyForGatewayClass": ("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy"),
    "envoyProxiesForGateways": ("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy"),
}
# The keys of EG's output with statuses to compare, and the kind of their objects.
ROUTE_LISTS: dict[str, str] = {
    "httpRoutes": "HTTPRoute",
    "grpcRoutes": "GRPCRoute",
    "tlsRoutes": "TLSRoute",
    "tcpRoutes": "TCPRoute",
    "udpRoutes": "UDPRoute",
}
COMPARED_KINDS = frozenset({"GatewayClass", "Gateway", *ROUTE_LISTS.values()})


# Features of EG that egobs does not implement, found in an input: (name, test). A case
# using one is outside "where both implement the feature"; --exclude-features leaves its
# comparisons out.
MCS_GROUP = "multicluster.x-k8s.io"


def _backend_refs(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every backendRef of every route rule (and of its RequestMirror filters)."""
    for key in ROUTE_LISTS:
        for route in data.get(key) or []:
            for rule in (route.get("spec") or {}).get("rules") or []:
                yield from rule.get("backendRefs") or []
                for flt in rule.get("filters") or []:
                    mirror = flt.get("requestMirror") or {}
                    if mirror.get("backendRef"):
                        yield mirror["backendRef"]


def _eg_only_kinds(data: dict[str, Any]) -> bool:
    """Objects of kinds egobs does not know: EG policies, extension resources, ..."""
    for key, value in data.items():
        kind = LIST_KINDS.get(key, ("", ""))[1]
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict) and (item.get("kind") or kind) not in KINDS:
                return True
    return False


def _mcs_backends(data: dict[str, Any]) -> bool:
    return any(ref.get("group") == MCS_GROUP for ref in _backend_refs(data))


def _merged_gateways(data: dict[str, Any]) -> bool:
    return "mergeGateways: true" in yaml.safe_dump(data.get("envoyProxyForGatewayClass") or {})


EG_ONLY_FEATURES: tuple[tuple[str, Callable[[dict[str, Any]], bool]], ...] = (
    ("EG-only kinds (policies, extensions)", _eg_only_kinds),
    ("MCS ServiceImport backends", _mcs_backends),
    ("merged Gateways (EnvoyProxy mergeGateways)", _merged_gateways),
)


def eg_only_features(data: dict[str, Any]) -> list[str]:
    return [name for name, test in EG_ONLY_FEATURES if test(data)]


# --- input ---------------------------------------------------------------------------


def _documents(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every object of an EG input as a Kubernetes document (apiVersion and kind set)."""
    for key, value in data.items():
        items = value if isinstance(value, list) else [value]
        api_version, kind = LIST_KINDS.get(key, ("", ""))
        for item in items:
            if not isinstance(item, dict):
                continue
            doc = dict(item)
            doc.setdefault("kind", kind or key)
            doc.setdefault("apiVersion", api_version)
            doc.pop("status", None)
            yield _served_version(doc)


def _served_version(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with a Gateway API apiVersion egobs does not serve replaced by one it does
    (EG decodes every version into the same Go type, e.g. GRPCRoute v1alpha2 as v1)."""
    cls = KINDS.get(str(doc.get("kind")))
    group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
    if cls is None or group != GW_GROUP or cls.GROUP != GW_GROUP or version in cls.VERSIONS:
        return doc
    return {**doc, "apiVersion": f"{GW_GROUP}/{cls.VERSIONS[0]}"}


def _service(ns: str, name: str, ports: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": ns, "name": name},
        "spec": {
            "clusterIP": "1.1.1.1",
            "ports": [
                {"name": n, "port": p, "targetPort": p, "protocol": proto} for n, p, proto in ports
            ],
        },
    }
    eps = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": ns,
            "name": f"{name}-endpointslice",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
        "endpoints": [{"addresses": ["7.7.7.7"], "conditions": {"ready": True}}],
    }
    return [svc, eps]


def _fixtures() -> list[dict[str, Any]]:
    """What EG's translator_test.go adds to every case, and EG's GatewayClass."""
    ports = [("http", 8080, "TCP"), ("https", 8443, "TCP"), ("tcp", 8163, "TCP")]
    ports.append(("udp", 8162, "UDP"))
    docs: list[dict[str, Any]] = []
    for i in range(1, 5):
        docs += _service("default", f"service-{i}", ports)
    docs += _service("default", "mirror-service", [("http", 8080, "TCP")])
    docs += _service("monitoring", "otel-collector", [("grpc", 4317, "TCP")])
    for ns in ("default", "envoy-gateway"):
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    docs.append(
        {
            "apiVersion": f"{GW_GROUP}/v1",
            "kind": "GatewayClass",
            "metadata": {"name": EG_CLASS},
            "spec": {"controllerName": EG_CONTROLLER},
        }
    )
    return docs


def _key(doc: dict[str, Any]) -> tuple[str, str, str]:
    meta = doc.get("metadata") or {}
    ns = meta.get("namespace") or ""
    if doc.get("kind") in ("Namespace", "GatewayClass"):
        ns = ""
    elif not ns:
        ns = "default"
    return (str(doc.get("kind")), str(ns), str(meta.get("name")))


@dataclass
class Loaded:
    resources: Resources
    dropped: list[str] = field(default_factory=list)  # "Kind/ns/name: error"
    refused_compared: list[str] = field(default_factory=list)


def load_case(data: dict[str, Any], file: str) -> Loaded:
    """The objects of one EG input with the harness's fixtures, as egobs loads them."""
    docs = list(_documents(data))
    have = {_key(d) for d in docs}
    docs += [d for d in _fixtures() if _key(d) not in have]
    objects: list[Resource] = []
    loaded = Loaded(Resources())
    for i, doc in enumerate(docs, 1):
        result = load_documents(yaml.safe_dump(doc), file=f"{file}#{i}")
        objects += result.objects
        for err in result.errors:
            ref = "/".join(x for x in _key(doc) if x)
            loaded.dropped.append(f"{ref}: {err.field_path or ''} {err.message}".strip())
            if doc.get("kind") in COMPARED_KINDS:
                loaded.refused_compared.append(ref)
    for err in check_unique(objects):
        loaded.dropped.append(f"{err.object_ref}: {err.message}")
    seen: set[tuple[str, str, str]] = set()
    for obj in objects:
        if obj.key not in seen:
            seen.add(obj.key)
            loaded.resources.add(obj)
    return loaded


# --- comparison ----------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    comparisons: int = 0
    matched: int = 0
    excluded: int = 0  # comparisons left out: the case uses a feature egobs lacks
    features: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    error: str = ""  # set: not comparable


def _ref_key(ref: dict[str, Any], route_ns: str) -> tuple[Any, ...]:
    return (
        ref.get("group") or GW_GROUP,
        ref.get("kind") or "Gateway",
        ref.get("namespace") or route_ns,
        ref.get("name"),
        ref.get("sectionName") or "",
        ref.get("port"),
    )


def _by_type(conditions: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions or []}


def _show(cond: dict[str, Any] | None) -> str:
    return "absent" if cond is None else f"{cond.get('status')}/{cond.get('reason')}"


class Comparer:
    """Compares EG's expected statuses with egobs's, adding up into ``out``."""

    def __init__(self, case: str, statuses: dict[Any, dict[str, Any]]) -> None:
        self.out = Outcome(case)
        self.statuses = statuses

    def conditions(
        self, where: str, want: list[dict[str, Any]] | None, got: list[dict[str, Any]] | None
    ) -> None:
        mine = _by_type(got)
        for ctype, cond in _by_type(want).items():
            other = mine.get(ctype)
            self.out.comparisons += 1
            same = other is not None and (other.get("status"), other.get("reason")) == (
                str(cond.get("status")),
                cond.get("reason"),
            )
            if same:
                self.out.matched += 1
            else:
                self.out.mismatches.append(
                    f"{where} {ctype}: EG {_show(cond)} | egobs {_show(other)}"
                )

    def gateway(self, gw: dict[str, Any]) -> None:
        meta = gw.get("metadata") or {}
        ns, name = meta.get("namespace") or "default", meta.get("name")
        got = self.statuses.get(("Gateway", ns, name)) or {}
        listeners = {lst.get("name"): lst for lst in got.get("listeners") or []}
        for lst in (gw.get("status") or {}).get("listeners") or []:
            mine = listeners.get(lst.get("name")) or {}
            where = f"Gateway {ns}/{name} listener {lst.get('name')}"
            self.conditions(where, lst.get("conditions"), mine.get("conditions"))

    def route(self, kind: str, route: dict[str, Any]) -> None:
        meta = route.get("metadata") or {}
        ns, name = meta.get("namespace") or "default", meta.get("name")
        got = self.statuses.get((kind, ns, name)) or {}
        parents = {_ref_key(p.get("parentRef") or {}, ns): p for p in got.get("parents") or []}
        for parent in (route.get("status") or {}).get("parents") or []:
            ref = parent.get("parentRef") or {}
            mine = parents.get(_ref_key(ref, ns)) or {}
            section = f"#{ref['sectionName']}" if ref.get("sectionName") else ""
            port = f":{ref['port']}" if ref.get("port") else ""
            where = f"{kind} {ns}/{name} parent {ref.get('name')}{section}{port}"
            self.conditions(where, parent.get("conditions"), mine.get("conditions"))


def run_case(name: str, directory: Path, exclude: bool) -> Outcome:
    data = yaml.safe_load((directory / f"{name}.in.yaml").read_text()) or {}
    loaded = load_case(data, f"{name}.in.yaml")
    if loaded.refused_compared:
        out = Outcome(name, dropped=loaded.dropped)
        out.error = "refused: " + "; ".join(
            d for d in loaded.dropped if d.split(":")[0] in loaded.refused_compared
        )
        return out
    result = gatewayapi.translate(loaded.resources, controller_name=EG_CONTROLLER, now=NOW)
    want = yaml.safe_load((directory / f"{name}.out.yaml").read_text()) or {}
    comparer = Comparer(name, result.statuses)
    comparer.out.dropped = loaded.dropped
    for gw in want.get("gateways") or []:
        comparer.gateway(gw)
    for key, kind in ROUTE_LISTS.items():
        for route in want.get(key) or []:
            comparer.route(kind, route)
    out = comparer.out
    out.features = eg_only_features(data)
    if exclude and out.features:
        out.excluded, out.comparisons, out.matched, out.mismatches = out.comparisons, 0, 0, []
    return out


# --- report --------------------------------------------------------------------------


def case_names(directory: Path, only: str | None) -> list[str]:
    names = sorted(p.name.removesuffix(".in.yaml") for p in directory.glob("*.in.yaml"))
    names = [n for n in names if (directory / f"{n}.out.yaml").exists()]
    if only is not None:
        names = [n for n in names if n == only]
    return names


def print_case(out: Outcome, verbose: bool) -> None:
    if out.error:
        print(f"{out.name}: not comparable ({out.error})")
        return
    extra = f", {out.excluded} excluded ({'; '.join(out.features)})" if out.excluded else ""
    print(f"{out.name}: {out.matched}/{out.comparisons}{extra}")
    if verbose:
        for drop in out.dropped:
            print(f"  dropped {drop}")
    for line in out.mismatches if verbose else out.mismatches[:3]:
        print(f"  {line}")
    if not verbose and len(out.mismatches) > 3:
        print(f"  ... {len(out.mismatches) - 3} more (--verbose)")


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    comparable = [o for o in outcomes if not o.error]
    comparisons = sum(o.comparisons for o in comparable)
    matched = sum(o.matched for o in comparable)
    return {
        "cases": len(outcomes),
        "comparable_cases": len(comparable),
        "comparisons": comparisons,
        "matched": matched,
        "match_ratio": round(matched / comparisons, 4) if comparisons else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="directory of EG's X.in.yaml / X.out.yaml")
    parser.add_argument("--verbose", action="store_true", help="every mismatch and drop")
    parser.add_argument("--case", help="only the case NAME (file name without .in.yaml)")
    parser.add_argument(
        "--exclude-features",
        action="store_true",
        help="leave out comparisons about features egobs does not implement",
    )
    args = parser.parse_args(argv)
    names = case_names(args.dir, args.case)
    if not names:
        print(f"no X.in.yaml with X.out.yaml in {args.dir}", file=sys.stderr)
        return 2
    outcomes = [run_case(n, args.dir, args.exclude_features) for n in names]
    for out in outcomes:
        print_case(out, args.verbose)
    excluded = sum(o.excluded for o in outcomes)
    if args.exclude_features:
        print(f"excluded comparisons (features egobs does not implement): {excluded}")
    print(json.dumps(summary(outcomes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
