"""The EnvoyProxy telemetry models against Envoy Gateway's own CRD (v1.9.0).

Every field egobs models under ``spec.telemetry`` must exist in the CRD with the same name,
and every enum value it accepts must be one the CRD accepts, except the egobs extensions
listed here. The CRD is read from ``../shared/reference/`` (unmodified upstream files).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from egobs.resources import load_text
from egobs.resources.envoygateway import EnvoyProxy
from egobs.resources.telemetry import ProxyTelemetry

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "envoy-gateway-v1.9.0"
CRD = REFERENCE / "gateway.envoyproxy.io_envoyproxies.yaml"

# egobs extensions (see egobs/resources/telemetry.py): fields and enum values Envoy Gateway
# does not have.
EXTENSION_FIELDS = {
    "metrics.prometheus.port",
    "metrics.enableRouteStats",
    "metrics.sinks[].metricsService",
    "tracing.provider.openTelemetry.protocol",
    "tracing.provider.openTelemetry.path",
}
EXTENSION_VALUES = {("metrics.sinks[].type", "MetricsService")}


def _schema() -> dict[str, Any]:
    if not CRD.exists():
        pytest.fail(
            f"Envoy Gateway's EnvoyProxy CRD is absent at {CRD}: this test checks the "
            "telemetry models against it (../shared/reference/ holds the upstream CRDs)"
        )
    doc = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in doc["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]["properties"]["telemetry"]


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool, tuple[str, ...]]:
    """(model class, is a list, literal values) of a field annotation."""
    is_list = False
    literals: tuple[str, ...] = ()
    pending = [annotation]
    model = None
    while pending:
        a = pending.pop()
        origin = get_origin(a)
        if origin in (typing.Union, types.UnionType):
            pending.extend(get_args(a))
        elif origin is typing.Annotated:
            pending.append(get_args(a)[0])
        elif origin is list:
            is_list = True
            pending.extend(get_args(a))
        elif origin is Literal:
            literals += tuple(str(v) for v in get_args(a))
        elif isinstance(a, type) and issubclass(a, BaseModel):
            model = a
    return model, is_list, literals


def _walk(model: type[BaseModel], schema: dict[str, Any], path: str, out: list[str]) -> None:
    props = schema.get("properties", {})
    for name, field in model.model_fields.items():
        wire = field.alias or name
        here = f"{path}.{wire}" if path else wire
        if here in EXTENSION_FIELDS:
            continue
        if wire not in props:
            out.append(f"{here}: not in Envoy Gateway's EnvoyProxy CRD")
            continue
        sub = props[wire]
        inner, is_list, literals = _model_of(field.annotation)
        if is_list:
            if sub.get("type") != "array":
                out.append(f"{here}: a list here, {sub.get('type')} in the CRD")
                continue
            sub = sub["items"]
            here += "[]"
        allowed = set(sub.get("enum", ()))
        for value in literals:
            if allowed and value not in allowed and (here, value) not in EXTENSION_VALUES:
                out.append(f"{here}: value {value!r} is not one of the CRD's {sorted(allowed)}")
        if inner is not None:
            if "additionalProperties" in sub and "properties" not in sub:
                sub = sub["additionalProperties"]  # a map of models (customTags)
            _walk(inner, sub, here, out)


def test_every_modelled_field_is_envoy_gateways() -> None:
    problems: list[str] = []
    _walk(ProxyTelemetry, _schema(), "", problems)
    assert not problems, "\n".join(problems)


def test_the_extensions_are_not_in_the_crd() -> None:
    """Keeps EXTENSION_FIELDS honest: once upstream adds one, it is no extension."""
    schema = _schema()
    for path in EXTENSION_FIELDS:
        node: dict[str, Any] | None = schema
        for part in path.split("."):
            assert node is not None
            name = part.removesuffix("[]")
            node = node.get("properties", {}).get(name)
            if node is not None and part.endswith("[]"):
                node = node.get("items")
        assert node is None, f"{path} is in the CRD now"


# An EnvoyProxy as Envoy Gateway's docs write one: it loads unchanged.
EG_STYLE = """\
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyProxy
metadata: {name: otel, namespace: envoy-gateway-system}
spec:
  telemetry:
    accessLog:
      settings:
        - format:
            type: Text
            text: |
              [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
          matches: ["'x-envoy-logged' in request.headers"]
          sinks:
            - type: File
              file: {path: /dev/stdout}
            - type: OpenTelemetry
              openTelemetry:
                backendRefs: [{name: otel-collector, namespace: monitoring, port: 4317}]
                resources: {k8s.cluster.name: cluster-1}
            - type: ALS
              als:
                backendRefs: [{name: otel-collector, namespace: monitoring, port: 9000}]
                type: HTTP
                http: {requestHeaders: [x-client-ip-address]}
    metrics:
      enableVirtualHostStats: true
      prometheus: {compression: {type: Gzip}}
      sinks:
        - type: OpenTelemetry
          openTelemetry:
            backendRefs: [{name: otel-collector, namespace: monitoring, port: 4317}]
    tracing:
      samplingRate: 100
      provider:
        type: OpenTelemetry
        backendRefs: [{name: otel-collector, namespace: monitoring, port: 4317}]
      customTags:
        "k8s.pod.name": {type: Environment, environment: {name: ENVOY_POD_NAME, defaultValue: "-"}}
        "provider": {type: Literal, literal: {value: otel}}
"""


def test_an_envoy_gateway_envoyproxy_loads() -> None:
    (obj,) = load_text(EG_STYLE, file="eg.yaml")
    assert isinstance(obj, EnvoyProxy)
    telemetry = obj.spec.telemetry
    assert telemetry is not None and telemetry.tracing is not None
    assert telemetry.tracing.provider.backend_refs[0].port == 4317
    assert telemetry.access_log is not None and telemetry.access_log.settings is not None
    assert [s.type for s in telemetry.access_log.settings[0].sinks] == [
        "File",
        "OpenTelemetry",
        "ALS",
    ]
