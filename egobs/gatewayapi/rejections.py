"""Proxies' rejections as Gateway API status: a pure function of statuses and NACKs.

A Gateway some proxy of which rejected its config gets ``Programmed: False`` (reason
``Invalid``, the Envoy error as message) — what ``kubectl wait`` and dashboards watch. A
route the rejected config names also gets an ``egobs.dev/XdsRejected: True`` condition on
that Gateway's parent entry. Both go away once no rejection is in force.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["XDS_REJECTED", "RejectionLike", "merge_rejections"]

XDS_REJECTED = "egobs.dev/XdsRejected"
"""Condition type set on a route's parent status when a proxy rejected config naming it."""

# Route names in xDS start with "<kind>/<namespace>/<name>/" (see the translator).
_ROUTE_NAME = re.compile(
    r"\b(httproute|grpcroute|tcproute|tlsroute|udproute)/([^/\s\"']+)/([^/\s\"']+)/"
)
_ROUTE_KINDS = {
    "httproute": "HTTPRoute",
    "grpcroute": "GRPCRoute",
    "tcproute": "TCPRoute",
    "tlsroute": "TLSRoute",
    "udproute": "UDPRoute",
}
_STATUS_MESSAGE_LIMIT = 512

StatusKey = tuple[str, str, str]


class RejectionLike(Protocol):
    """What a rejection in force says (egobs.xds.rejections.Rejection has it)."""

    @property
    def gateway(self) -> str: ...  # "<namespace>/<name>"
    @property
    def node_id(self) -> str: ...
    @property
    def type_url(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def at(self) -> float: ...  # wall-clock time of the NACK


def merge_rejections(
    statuses: Mapping[StatusKey, dict[str, Any]], rejections: Iterable[RejectionLike]
) -> Mapping[StatusKey, dict[str, Any]]:
    """``statuses`` with the rejections merged in; ``statuses`` itself when there are none.

    The input is never mutated: a status that gets a condition is a deep copy.
    """
    ordered = sorted(rejections, key=lambda r: r.at)
    if not ordered:
        return statuses
    out = dict(statuses)
    for rej in ordered:
        ns, _, gw_name = rej.gateway.partition("/")
        short = rej.type_url.rsplit(".", 1)[-1]
        message = _shorten(
            f"proxy {rej.node_id} rejected {short} version {rej.version}: {rej.message}"
        )
        when = datetime.fromtimestamp(rej.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        key = ("Gateway", ns, gw_name)
        if key in out:
            status = out[key] = copy.deepcopy(out[key])
            _set_condition(
                status.setdefault("conditions", []),
                {"type": "Programmed", "status": "False", "reason": "Invalid",
                 "message": message, "lastTransitionTime": when},
            )  # fmt: skip
        for kind_l, rns, rname in set(_ROUTE_NAME.findall(rej.message)):
            rkey = (_ROUTE_KINDS[kind_l], rns, rname)
            if rkey not in out:
                continue
            status = out[rkey] = copy.deepcopy(out[rkey])
            for parent in status.get("parents", []):
                ref = parent.get("parentRef", {})
                if ref.get("name") == gw_name and ref.get("namespace", rns) == ns:
                    _set_condition(
                        parent.setdefault("conditions", []),
                        {"type": XDS_REJECTED, "status": "True", "reason": "Rejected",
                         "message": message, "lastTransitionTime": when},
                    )  # fmt: skip
    return out


def _set_condition(conditions: list[dict[str, Any]], cond: dict[str, Any]) -> None:
    for i, old in enumerate(conditions):
        if old.get("type") == cond["type"]:
            if "observedGeneration" in old:
                cond = {**cond, "observedGeneration": old["observedGeneration"]}
            conditions[i] = cond
            return
    conditions.append(cond)


def _shorten(message: str) -> str:
    message = " ".join(message.split())
    if len(message) <= _STATUS_MESSAGE_LIMIT:
        return message
    return message[: _STATUS_MESSAGE_LIMIT - 1] + "…"
