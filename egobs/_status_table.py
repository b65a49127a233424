"""Text tables for ``egobs status``, in the manner of ``egctl x status``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return "\n".join(lines)


def _short(msg: str, limit: int = 80) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


def _conditions(status: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(scope, condition) pairs: the object's own, each listener's, each route parent's."""
    out: list[tuple[str, dict[str, Any]]] = []
    for cond in status.get("conditions", []):
        out.append(("", cond))
    for lis in status.get("listeners", []):
        for cond in lis.get("conditions", []):
            out.append((f"listener/{lis.get('name', '?')}", cond))
    for parent in status.get("parents", []):
        ref = parent.get("parentRef", {})
        scope = f"parent {ref.get('namespace', '')}/{ref.get('name', '?')}"
        if ref.get("sectionName"):
            scope += f"/{ref['sectionName']}"
        for cond in parent.get("conditions", []):
            out.append((scope, cond))
    return out


def render(doc: dict[str, Any]) -> str:
    rows = []
    for obj in doc.get("resources", []):
        name = obj["name"] if not obj.get("namespace") else f"{obj['namespace']}/{obj['name']}"
        for scope, cond in _conditions(obj.get("status") or {}):
            rows.append(
                [
                    obj["kind"],
                    name,
                    scope or "-",
                    str(cond.get("type", "")),
                    str(cond.get("status", "")),
                    str(cond.get("reason", "")),
                    _short(str(cond.get("message", ""))),
                ]
            )
    parts = [_table(["KIND", "NAME", "SCOPE", "TYPE", "STATUS", "REASON", "MESSAGE"], rows)]
    prows = []
    for proxy in doc.get("proxies", []):
        infra = proxy.get("infra") or {}
        for lis in proxy.get("listeners", []):
            prows.append(
                [
                    proxy["name"],
                    lis["name"],
                    lis["protocol"],
                    str(lis["port"]),
                    lis["address"],
                    str(infra.get("state", "-")),
                    str(infra.get("pid", "-")),
                    str(infra.get("restarts", "-")),
                ]
            )
        if proxy.get("stats"):
            prows.append(
                [
                    proxy["name"],
                    "(stats)",
                    "HTTP",
                    "-",
                    proxy["stats"],
                    str(infra.get("state", "-")),
                    str(infra.get("pid", "-")),
                    str(infra.get("restarts", "-")),
                ]
            )
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
                _short(str(r["message"])),
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


_SYNC_TYPES = ("CDS", "EDS", "LDS", "RDS", "SDS")


def render_syncz(doc: dict[str, Any]) -> str:
    """One row per connected proxy, one column per xDS type, like ``istioctl proxy-status``;
    then the last NACK of every proxy that has one."""
    rows = []
    nacks = []
    for proxy in doc.get("proxies", []):
        types = proxy.get("types", {})
        row = [proxy["node"], proxy["gateway"], proxy.get("mode", "")]
        for short in _SYNC_TYPES:
            entry = types.get(short)
            row.append(entry["state"] if entry else "-")
        row.append(str(proxy.get("latestSnapshot") or "-"))
        row.append(str(proxy.get("connectedSince") or "-"))
        rows.append(row)
        for short, entry in types.items():
            nack = entry.get("lastNack")
            if nack:
                nacks.append(
                    [proxy["node"], short, str(nack["version"]), _short(str(nack["message"]))]
                )
    if not rows:
        return "no proxies connected"
    headers = ["NODE", "GATEWAY", "MODE", *_SYNC_TYPES, "SNAPSHOT", "CONNECTED SINCE"]
    parts = [_table(headers, rows)]
    if nacks:
        parts.append("LAST NACK:\n" + _table(["NODE", "TYPE", "VERSION", "MESSAGE"], nacks))
    return "\n\n".join(parts)
