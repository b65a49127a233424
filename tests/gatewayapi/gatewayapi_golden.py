"""Rendering a translation :class:`~egobs.gatewayapi.Result` as deterministic YAML for goldens."""

from __future__ import annotations

from typing import Any

from egobs import ir
from egobs.cli import dump_yaml
from egobs.gatewayapi import Result

NOW = "2026-01-01T00:00:00Z"


def as_data(result: Result) -> dict[str, Any]:
    """Statuses sorted by (kind, namespace, name), IR maps sorted by name.

    IR values go through :func:`ir.to_data` (dataclasses as mappings, enums as values,
    defaults left out, private keys redacted); tuple order is kept because it is meaningful
    (route order is Envoy's match order).
    """
    statuses = []
    for (kind, ns, name), status in sorted(result.statuses.items()):
        head: dict[str, Any] = {"kind": kind}
        if ns:
            head["namespace"] = ns
        head["name"] = name
        statuses.append({**head, "status": status})
    return {
        "statuses": statuses,
        "ir": {
            "gateways": {k: ir.to_data(v) for k, v in sorted(result.gateways.items())},
            "proxies": {k: ir.to_data(v) for k, v in sorted(result.proxies.items())},
        },
    }


def render(result: Result) -> str:
    return dump_yaml(as_data(result))
