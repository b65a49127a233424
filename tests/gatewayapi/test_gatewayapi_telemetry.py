"""EnvoyProxy telemetry in the Gateway API translator: what an untranslatable edit does.

A pure translation rejects the users of an EnvoyProxy it cannot translate (the golden case
telemetry_invalid). A Translator that served the EnvoyProxy before keeps serving its last
good telemetry instead, and only reports the problem: a typo must not take a serving
Gateway down.
"""

from __future__ import annotations

from typing import Any

from egobs import ir
from egobs.gatewayapi import Translator, translate
from egobs.resources import Resources, load_text

NOW = "2026-01-01T00:00:00Z"

BASE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: egobs}
spec:
  controllerName: gateway.egobs.dev/gatewayclass-controller
  parametersRef: {group: gateway.envoyproxy.io, kind: EnvoyProxy, name: cls, namespace: default}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: own, namespace: default}
spec:
  gatewayClassName: egobs
  infrastructure:
    parametersRef: {group: gateway.envoyproxy.io, kind: EnvoyProxy, name: own}
  listeners: [{name: http, protocol: HTTP, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: by-class, namespace: default}
spec:
  gatewayClassName: egobs
  listeners: [{name: http, protocol: HTTP, port: 8080}]
"""

ENVOY_PROXY = """\
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyProxy
metadata: {{name: {name}, namespace: default}}
spec:
  telemetry:
    accessLog:
      settings:
        - matches: ["{cel}"]
          sinks: [{{type: File, file: {{path: /dev/stdout}}}}]
"""


def _resources(own: str, cls: str) -> Resources:
    text = BASE + ENVOY_PROXY.format(name="own", cel=own) + ENVOY_PROXY.format(name="cls", cel=cls)
    return Resources.of(load_text(text, file="t.yaml"))


def _accepted(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Accepted")


def _matches(gw: ir.Gateway) -> tuple[str, ...]:
    return gw.access_logs[0].matches


def test_a_broken_edit_keeps_the_last_good_telemetry_and_says_so() -> None:
    translator = Translator()
    good = translator.translate(_resources("response.code >= 400", "response.code >= 500"), now=NOW)
    assert _matches(good.gateways["default/own"]) == ("response.code >= 400",)
    assert _matches(good.gateways["default/by-class"]) == ("response.code >= 500",)

    broken = translator.translate(_resources("response.code >=", "response.code >= 500"), now=NOW)
    # Still served, with the telemetry of the last good version.
    assert _matches(broken.gateways["default/own"]) == ("response.code >= 400",)
    accepted = _accepted(broken.statuses[("Gateway", "default", "own")])
    assert accepted["status"] == "False" and accepted["reason"] == "InvalidParameters"
    assert "spec.telemetry.accessLog.settings[0].matches[0]" in accepted["message"]
    assert "keep the last telemetry" in accepted["message"]
    programmed = next(
        c
        for c in broken.statuses[("Gateway", "default", "own")]["conditions"]
        if c["type"] == "Programmed"
    )
    assert programmed["status"] == "True"
    # The other Gateway is not affected.
    assert _accepted(broken.statuses[("Gateway", "default", "by-class")])["status"] == "True"

    # The class's EnvoyProxy broken too: its Gateways keep being served.
    both = translator.translate(_resources("response.code >=", "response.code >= ("), now=NOW)
    assert _matches(both.gateways["default/by-class"]) == ("response.code >= 500",)
    cls = _accepted(both.statuses[("GatewayClass", "", "egobs")])
    assert cls["status"] == "False" and "EnvoyProxy default/cls" in cls["message"]

    fixed = translator.translate(
        _resources("response.code >= 300", "response.code >= 500"), now=NOW
    )
    assert _matches(fixed.gateways["default/own"]) == ("response.code >= 300",)
    assert _accepted(fixed.statuses[("Gateway", "default", "own")])["status"] == "True"
    assert _accepted(fixed.statuses[("GatewayClass", "", "egobs")])["status"] == "True"


def test_without_a_last_good_telemetry_the_gateway_is_rejected() -> None:
    broken = _resources("response.code >=", "response.code >= 500")
    for result in (Translator().translate(broken, now=NOW), translate(broken, now=NOW)):
        assert "default/own" not in result.gateways
        assert "default/by-class" in result.gateways
        accepted = _accepted(result.statuses[("Gateway", "default", "own")])
        assert accepted["status"] == "False" and accepted["reason"] == "InvalidParameters"
        assert "keep the last" not in accepted["message"]
