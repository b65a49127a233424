"""Rendering a translation :class:`~egobs.gatewayapi.Result` as deterministic YAML for goldens."""

from __future__ import annotations

from typing import Any

import yaml

from egobs import ir
from egobs.gatewayapi import Result

NOW = "2026-01-01T00:00:00Z"


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings (PEM) as literal blocks so diffs stay readable."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str)


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
    return yaml.dump(
        as_data(result), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100
    )
