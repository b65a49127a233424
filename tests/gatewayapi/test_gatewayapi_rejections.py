"""merge_rejections: proxies' NACKs in force as Gateway API conditions, a pure function."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from egobs.gatewayapi import XDS_REJECTED, merge_rejections

RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


@dataclass(frozen=True)
class Nack:
    gateway: str
    node_id: str
    type_url: str
    version: str
    message: str
    at: float


def _statuses() -> dict[tuple[str, str, str], dict[str, object]]:
    return {
        ("Gateway", "ns", "eg"): {
            "conditions": [
                {
                    "type": "Programmed",
                    "status": "True",
                    "reason": "Programmed",
                    "observedGeneration": 3,
                }
            ]
        },
        ("HTTPRoute", "ns", "web"): {
            "parents": [
                {"parentRef": {"name": "eg", "namespace": "ns"}, "conditions": []},
                {"parentRef": {"name": "other", "namespace": "ns"}, "conditions": []},
            ]
        },
        ("HTTPRoute", "ns", "api"): {"parents": []},
    }


def test_no_rejection_returns_the_statuses_themselves() -> None:
    statuses = _statuses()
    assert merge_rejections(statuses, []) is statuses


def test_a_nack_marks_the_gateway_and_the_routes_it_names_and_mutates_nothing() -> None:
    statuses = _statuses()
    before = copy.deepcopy(statuses)
    nack = Nack("ns/eg", "ns/eg/1", RDS, "v2", "httproute/ns/web/rule/0/match/0: bad\n regex", 0)
    out = merge_rejections(statuses, [nack])
    assert statuses == before
    (programmed,) = out[("Gateway", "ns", "eg")]["conditions"]  # type: ignore[misc]
    assert programmed == {
        "type": "Programmed",
        "status": "False",
        "reason": "Invalid",
        "message": "proxy ns/eg/1 rejected RouteConfiguration version v2: "
        "httproute/ns/web/rule/0/match/0: bad regex",
        "lastTransitionTime": "1970-01-01T00:00:00Z",
        "observedGeneration": 3,
    }
    eg, other = out[("HTTPRoute", "ns", "web")]["parents"]  # type: ignore[misc]
    assert [c["type"] for c in eg["conditions"]] == [XDS_REJECTED]
    assert other["conditions"] == []  # another Gateway's parent entry
    assert out[("HTTPRoute", "ns", "api")] is statuses[("HTTPRoute", "ns", "api")]


def test_the_latest_nack_of_a_gateway_wins_and_long_messages_are_cut() -> None:
    old = Nack("ns/eg", "ns/eg/1", RDS, "v1", "old", 1)
    new = Nack("ns/eg", "ns/eg/2", RDS, "v2", "x" * 2000, 2)
    out = merge_rejections(_statuses(), [new, old])
    (programmed,) = out[("Gateway", "ns", "eg")]["conditions"]  # type: ignore[misc]
    assert programmed["message"].startswith("proxy ns/eg/2")
    assert len(programmed["message"]) == 512 and programmed["message"].endswith("…")
