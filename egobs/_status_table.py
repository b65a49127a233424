"""Text tables for ``egobs status``, in the manner of ``egctl x status``.

The status document (``/debug/status``) and the sync document (``/debug/syncz``) come from
the control plane's admin server; :func:`select` and :func:`select_syncz` narrow them to a
kind, name and namespace, :func:`render` and :func:`render_syncz` print them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Every spelling `egobs status KIND` accepts, as kubectl/egctl do: singular, plural, short.
KIND_ALIASES: dict[str, str] = {
    "gatewayclass": "GatewayClass",
    "gatewayclasses": "GatewayClass",
    "gc": "GatewayClass",
    "gateway": "Gateway",
    "gateways": "Gateway",
    "gtw": "Gateway",
    "httproute": "HTTPRoute",
    "httproutes": "HTTPRoute",
    "grpcroute": "GRPCRoute",
    "grpcroutes": "GRPCRoute",
    "tcproute": "TCPRoute",
    "tcproutes": "TCPRoute",
    "tlsroute": "TLSRoute",
    "tlsroutes": "TLSRoute",
    "udproute": "UDPRoute",
    "udproutes": "UDPRoute",
    "listenerset": "ListenerSet",
    "listenersets": "ListenerSet",
    "lset": "ListenerSet",
    "backendtlspolicy": "BackendTLSPolicy",
    "backendtlspolicies": "BackendTLSPolicy",
    "btlspolicy": "BackendTLSPolicy",
}
KIND_HELP = (
    "all, gatewayclass (gc), gateway (gtw), listenerset (lset), httproute, grpcroute, "
    "tcproute, tlsroute, udproute, backendtlspolicy (btlspolicy)"
)
CLUSTER_SCOPED = frozenset({"GatewayClass"})

# The conditions shown without -v: the ones that say whether an object works...
KEY_CONDITIONS = frozenset({"Accepted", "Programmed", "ResolvedRefs"})
# ...and any other that reports a problem. These types are problems when True; every other
# type (Accepted, Programmed, ResolvedRefs, ...) is a problem when not True.
NEGATIVE_CONDITIONS = frozenset(
    {"Conflicted", "PartiallyInvalid", "OverlappingTLSConfig", "egobs.dev/XdsRejected"}
)


def resolve_kind(text: str) -> str | None:
    """The Kind for a user's spelling (case-insensitive); None for ``all``; KeyError if
    unknown."""
    low = text.lower()
    if low == "all":
        return None
    return KIND_ALIASES[low]


@dataclass(frozen=True, slots=True)
class Selector:
    """Which objects to show: ``None`` fields match everything. The namespace does not apply
    to cluster-scoped kinds (GatewayClass)."""

    kind: str | None = None
    name: str | None = None
    namespace: str | None = None

    def matches(self, obj: dict[str, Any]) -> bool:
        if self.kind is not None and obj.get("kind") != self.kind:
            return False
        if self.name is not None and obj.get("name") != self.name:
            return False
        if self.namespace is not None and obj.get("kind") not in CLUSTER_SCOPED:
            return obj.get("namespace") == self.namespace
        return True

    def matches_gateway(self, gateway: str) -> bool:
        """Whether the proxy of Gateway ``<ns>/<name>`` belongs to the selection."""
        if self.kind not in (None, "Gateway"):
            return False
        ns, _, name = gateway.partition("/")
        if self.namespace is not None and ns != self.namespace:
            return False
        return self.name is None or name == self.name


def select(doc: dict[str, Any], sel: Selector) -> dict[str, Any]:
    """``doc`` (a ``/debug/status`` document) with only what ``sel`` selects. Proxies and
    xDS rejections go with their Gateway; provider errors are kept (they are about files)."""
    return {
        **doc,
        "resources": [o for o in doc.get("resources", []) if sel.matches(o)],
        "proxies": [p for p in doc.get("proxies", []) if sel.matches_gateway(p["name"])],
        "xdsRejections": [
            r for r in doc.get("xdsRejections", []) if sel.matches_gateway(r["gateway"])
        ],
        "providerErrors": doc.get("providerErrors", []),
    }


def select_syncz(doc: dict[str, Any], sel: Selector) -> dict[str, Any]:
    """``doc`` (a ``/debug/syncz`` document) with only the proxies of selected Gateways."""
    return {
        **doc,
        "proxies": [p for p in doc.get("proxies", []) if sel.matches_gateway(p["gateway"])],
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return "\n".join(lines)


def _short(msg: str, limit: int | None = 80) -> str:
    msg = " ".join(msg.split())
    if limit is None or len(msg) <= limit:
        return msg
    return msg[: limit - 1] + "…"


def is_problem(cond: dict[str, Any]) -> bool:
    status = str(cond.get("status", ""))
    if cond.get("type") in NEGATIVE_CONDITIONS:
        return status == "True"
    return status != "True"


def _conditions(status: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(scope, condition) pairs: the object's own, each listener's, each route parent's,
    each policy ancestor's."""
    out: list[tuple[str, dict[str, Any]]] = []
    for cond in status.get("conditions", []):
        out.append(("", cond))
    for lis in status.get("listeners", []):
        for cond in lis.get("conditions", []):
            out.append((f"listener/{lis.get('name', '?')}", cond))
    for parent in status.get("parents", []):
        ref = parent.get("parentRef", {})
        kind = ref.get("kind", "Gateway")
        shown_kind = "" if kind == "Gateway" else f"{kind} "
        scope = f"parent {shown_kind}{ref.get('namespace', '')}/{ref.get('name', '?')}"
        if ref.get("sectionName"):
            scope += f"/{ref['sectionName']}"
        for cond in parent.get("conditions", []):
            out.append((scope, cond))
    for ancestor in status.get("ancestors", []):  # policies (BackendTLSPolicy)
        ref = ancestor.get("ancestorRef", {})
        scope = f"ancestor {ref.get('namespace', '')}/{ref.get('name', '?')}"
        for cond in ancestor.get("conditions", []):
            out.append((scope, cond))
    return out


_KIND_ORDER = (
    "GatewayClass",
    "Gateway",
    "ListenerSet",
    "HTTPRoute",
    "GRPCRoute",
    "TLSRoute",
    "TCPRoute",
    "UDPRoute",
    "BackendTLSPolicy",
)


def _object_order(obj: dict[str, Any]) -> tuple[int, str, str, str]:
    """Classes, then Gateways, then routes (as egctl lists them); by namespace and name."""
    kind = str(obj.get("kind", ""))
    rank = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    return (rank, kind, str(obj.get("namespace") or ""), str(obj.get("name", "")))


def _shown(scope: str, cond: dict[str, Any]) -> bool:
    """Without -v: an object's or route parent's Accepted/Programmed/ResolvedRefs, and every
    condition (a listener's too) that reports a problem."""
    if is_problem(cond):
        return True
    return not scope.startswith("listener/") and cond.get("type") in KEY_CONDITIONS


def render(doc: dict[str, Any], *, verbose: bool = False) -> str:
    """The conditions table, then the proxies egobs runs, xDS rejections and provider
    errors (each only when there is something to show)."""
    rows = []
    for obj in sorted(doc.get("resources", []), key=_object_order):
        for scope, cond in _conditions(obj.get("status") or {}):
            if not verbose and not _shown(scope, cond):
                continue
            rows.append(
                [
                    obj["kind"],
                    obj.get("namespace") or "-",
                    obj["name"],
                    scope or "-",
                    str(cond.get("type", "")),
                    str(cond.get("status", "")),
                    str(cond.get("reason", "")),
                    _short(str(cond.get("message", "")), None if verbose else 80),
                ]
            )
    if rows:
        headers = ["KIND", "NAMESPACE", "NAME", "SCOPE", "TYPE", "STATUS", "REASON", "MESSAGE"]
        parts = [_table(headers, rows)]
    else:
        parts = ["No resources found"]
    prows = []
    for proxy in doc.get("proxies", []):
        infra = proxy.get("infra") or {}
        state = [
            str(infra.get("state", "-")),
            str(infra.get("pid") or "-"),
            str(infra.get("restarts", "-")),
        ]
        for lis in proxy.get("listeners", []):
            bound = [lis["name"], lis["protocol"], str(lis["port"]), lis["address"]]
            prows.append([proxy["name"], *bound, *state])
        if proxy.get("stats"):
            prows.append([proxy["name"], "(stats)", "HTTP", "-", proxy["stats"], *state])
    if prows:
        headers = ["PROXY", "LISTENER", "PROTOCOL", "PORT", "BOUND", "STATE", "PID", "RESTARTS"]
        parts.append(_table(headers, prows))
    rejections = doc.get("xdsRejections", [])
    if rejections:
        rrows = [
            [
                r["gateway"],
                r["node"],
                str(r["typeUrl"]).rsplit(".", 1)[-1],
                str(r["version"]),
                _short(str(r["message"]), None if verbose else 80),
            ]
            for r in rejections
        ]
        parts.append(
            "XDS REJECTED (proxies keep their last accepted config):\n"
            + _table(["GATEWAY", "NODE", "TYPE", "VERSION", "MESSAGE"], rrows)
        )
    errors = doc.get("providerErrors", [])
    if errors:
        lines = ["PROVIDER ERRORS (last good objects kept):"]
        for entry in errors:
            lines.extend(f"  {e}" for e in entry["errors"])
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


_SYNC_TYPES = ("CDS", "EDS", "LDS", "SRDS", "RDS", "SDS")


def _type_order(short: str) -> tuple[int, str]:
    return (_SYNC_TYPES.index(short) if short in _SYNC_TYPES else len(_SYNC_TYPES), short)


def age(seconds: float) -> str:
    """A duration as kubectl prints ages: ``3s``, ``2m``, ``5h``, ``4d``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _since(stamp: Any, now: datetime) -> str:
    """The age of an RFC 3339 time, ``-`` when there is none."""
    if not stamp:
        return "-"
    try:
        then = datetime.fromisoformat(str(stamp))
    except ValueError:
        return str(stamp)
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return age((now - then).total_seconds())


def short_version(version: Any, *, verbose: bool = False) -> str:
    """Versions are content hashes: their first 8 characters tell them apart."""
    if version is None or version == "":
        return "-"
    text = str(version)
    return text if verbose else text[:8]


def render_syncz(doc: dict[str, Any], *, verbose: bool = False, now: datetime | None = None) -> str:
    """Per connected proxy, one row with the state of every xDS type (like ``istioctl
    proxy-status``), its Envoy's admin address when egobs runs it, and how long it has been
    connected; then per proxy and type the versions sent and ACKed, the time since the
    last ACK and the last NACK. Without ``verbose``, versions and NACKs are shortened."""
    now = now or datetime.now(UTC)
    rows = []
    details = []
    for proxy in doc.get("proxies", []):
        types = proxy.get("types", {})
        row = [proxy["node"], proxy["gateway"], proxy.get("mode", "")]
        for short in _SYNC_TYPES:
            entry = types.get(short)
            row.append(entry["state"] if entry else "-")
        row.append(short_version(proxy.get("latestSnapshot"), verbose=verbose))
        row.append(str(proxy.get("envoyAdmin") or "-"))
        row.append(_since(proxy.get("connectedSince"), now))
        rows.append(row)
        for short in sorted(types, key=_type_order):
            entry = types[short]
            nack = entry.get("lastNack")
            nack_text = "-"
            if nack:
                msg = _short(str(nack.get("message", "")), None if verbose else 60)
                nack_text = f"{short_version(nack.get('version'), verbose=verbose)}: {msg}"
            details.append(
                [
                    proxy["node"],
                    short,
                    str(entry.get("state", "-")),
                    short_version(entry.get("sentVersion"), verbose=verbose),
                    short_version(entry.get("ackedVersion"), verbose=verbose),
                    _since(entry.get("ackedAt"), now),
                    nack_text,
                ]
            )
    if not rows:
        return "no proxies connected"
    headers = [
        "NODE",
        "GATEWAY",
        "MODE",
        *_SYNC_TYPES,
        "SNAPSHOT",
        "ENVOY ADMIN",
        "CONNECTED",
    ]
    parts = [_table(headers, rows)]
    if details:
        dheaders = ["NODE", "TYPE", "STATE", "SENT", "ACKED", "LAST ACK", "LAST NACK"]
        parts.append(_table(dheaders, details))
    return "\n\n".join(parts)
