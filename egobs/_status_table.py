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
    if prows:
        headers = ["PROXY", "LISTENER", "PROTOCOL", "PORT", "BOUND", "STATE", "PID", "RESTARTS"]
        parts.append(_table(headers, prows))
    errors = doc.get("providerErrors", [])
    if errors:
        lines = ["PROVIDER ERRORS (last good objects kept):"]
        for entry in errors:
            lines.extend(f"  {e}" for e in entry["errors"])
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
