"""Input read as the Kubernetes API server reads it (issue 11, item 2): null is absent,
types are JSON's, creationTimestamp is a time, cluster-scoped objects lose their namespace,
unserved versions are refused. test_crd_corpus.py checks verdicts against the CRDs; this
file checks what the loaded objects hold and what the errors say."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from egobs import gatewayapi
from egobs.resources import (
    BackendTLSPolicy,
    Gateway,
    HTTPRoute,
    LoadError,
    Resources,
    Source,
    load_text,
    parse_object,
)
from egobs.resources.gatewayapi import LabelSelector

SRC = Source("test", 1, 1)


def _load(text: str) -> list[Any]:
    return load_text(textwrap.dedent(text), file="in.yaml")


def _errors(text: str) -> list[str]:
    with pytest.raises(LoadError) as info:
        _load(text)
    return [str(e) for e in info.value.errors]


def _route(spec: str = "parentRefs: [{name: gw}]", meta: str = "name: r") -> str:
    return (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        f"metadata: {{{meta}}}\nspec: {{{spec}}}\n"
    )


# --------------------------------------------------------------------------- null


def test_null_is_absent_and_defaults_apply() -> None:
    (gw,) = _load(
        """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw, labels: null, annotations: null, creationTimestamp: null}
        spec:
          gatewayClassName: eg
          addresses: null
          tls: null
          listeners:
            - {name: http, port: 80, protocol: HTTP, hostname: null, allowedRoutes: null}
            - name: https
              port: 443
              protocol: HTTPS
              tls: {mode: null, certificateRefs: [{name: c, kind: null, namespace: null}]}
              allowedRoutes: {namespaces: null, kinds: null}
        """
    )
    assert isinstance(gw, Gateway)
    assert gw.metadata.labels == {} and gw.metadata.creation_timestamp is None
    assert gw.spec.addresses == [] and gw.spec.tls is None
    http, https = gw.spec.listeners
    assert http.hostname is None and http.allowed_routes.namespaces.from_ == "Same"
    assert https.tls is not None and https.tls.mode == "Terminate"
    assert https.tls.certificate_refs[0].kind == "Secret"
    assert https.allowed_routes.namespaces.from_ == "Same" and https.allowed_routes.kinds is None


def test_null_for_a_required_field_is_a_missing_field() -> None:
    (err,) = _errors(_route("parentRefs: [{name: null}]"))
    assert err.endswith("HTTPRoute/default/r: spec.parentRefs[0].name: required field missing")


def test_null_rules_get_the_default_rule() -> None:
    (route,) = _load(_route("parentRefs: [{name: gw}], hostnames: null, rules: null"))
    assert isinstance(route, HTTPRoute)
    (rule,) = route.spec.rules
    assert rule.matches[0].path is not None and rule.matches[0].path.value == "/"


# --------------------------------------------------------------------------- types


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ('parentRefs: [{name: gw, port: "80"}]', "spec.parentRefs[0].port"),
        ("parentRefs: [{name: gw, port: true}]", "spec.parentRefs[0].port"),
        ("parentRefs: [{name: gw, port: 80.5}]", "spec.parentRefs[0].port"),
        ("parentRefs: [{name: 42}]", "spec.parentRefs[0].name"),
        (
            'parentRefs: [{name: gw}], rules: [{filters: [{type: CORS, cors: {allowCredentials: "true"}}]}]',
            "spec.rules[0].filters[0].cors.allowCredentials",
        ),
        ("parentRefs: [{name: gw}], hostnames: example.com", "spec.hostnames"),
    ],
)
def test_types_are_strict_as_json(spec: str, field: str) -> None:
    errs = _errors(_route(spec))
    assert any(f"HTTPRoute/default/r: {field}: " in e for e in errs), errs


def test_an_integral_float_is_an_integer() -> None:
    # go-openapi, which the API server validates with, takes 80.0 where the schema says
    # integer; the object keeps 80.
    (route,) = _load(_route("parentRefs: [{name: gw, port: 80.0}]"))
    assert route.spec.parent_refs[0].port == 80
    assert type(route.spec.parent_refs[0].port) is int


def test_patterns_end_at_the_end_of_the_text() -> None:
    # RE2's $ is the end of the text; Python's would also match before a final newline.
    errs = _errors(_route('parentRefs: [{name: gw, sectionName: "http\\n"}]'))
    assert any("spec.parentRefs[0].sectionName: " in e for e in errs), errs
    errs = _errors(_route('parentRefs: [{name: gw}], hostnames: ["a.example.com\\n"]'))
    assert any("spec.hostnames[0]: invalid hostname" in e for e in errs), errs


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ('"2024-05-01T10:00:00Z"', "2024-05-01T10:00:00Z"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),  # a YAML timestamp
        ('"2024-05-01T12:00:00+02:00"', "2024-05-01T10:00:00Z"),
        ('"2024-05-01T10:00:00.75Z"', "2024-05-01T10:00:00Z"),  # whole seconds, as Kubernetes
    ],
)
def test_creation_timestamp_is_stored_as_utc_seconds(written: str, stored: str) -> None:
    (route,) = _load(_route(meta=f"name: r, creationTimestamp: {written}"))
    assert route.metadata.creation_timestamp == stored


@pytest.mark.parametrize(
    "created",
    [
        datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 5, 1, 10, 0),  # YAML: a timestamp without zone is UTC
    ],
)
def test_creation_timestamp_from_a_plain_yaml_loader_is_a_datetime(created: datetime) -> None:
    data = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "creationTimestamp": created},
        "spec": {},
    }
    assert parse_object(data, SRC).metadata.creation_timestamp == "2024-05-01T10:00:00Z"


@pytest.mark.parametrize("written", ["yesterday", '"2024-05-01"', '"2024-13-01T00:00:00Z"', "1"])
def test_creation_timestamp_must_be_rfc3339(written: str) -> None:
    errs = _errors(_route(meta=f"name: r, creationTimestamp: {written}"))
    assert any("HTTPRoute/default/r: metadata.creationTimestamp: " in e for e in errs), errs


def test_routes_are_ordered_by_creation_time_not_by_its_text() -> None:
    # "…T01:00:00+02:00" is 23:00 the day before: older than "…T00:00:00Z", though its text
    # sorts after it. Oldest first, then namespace/name (the spec's tie-break).
    def route(name: str, created: str | datetime) -> dict[str, Any]:
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}],
            },
        }

    objs = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "c"},
            "spec": {"controllerName": gatewayapi.DEFAULT_CONTROLLER_NAME},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "default"},
            "spec": {
                "gatewayClassName": "c",
                "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
            },
        },
        route("a-newest", "2025-01-01T00:00:00.999Z"),
        route("b-utc", "2025-01-01T00:00:00Z"),
        route("c-offset", "2025-01-01T01:00:00+02:00"),
        route("d-yaml", datetime(2024, 12, 31, 23, 30, tzinfo=UTC)),
    ]
    result = gatewayapi.translate(
        Resources.of(parse_object(o, SRC) for o in objs), now="2026-01-01T00:00:00Z"
    )
    (listener,) = result.gateways["default/gw"].http
    order = [r.name.split("/")[2] for r in listener.routes]
    # a-newest and b-utc are the same second: the name decides.
    assert order == ["c-offset", "d-yaml", "a-newest", "b-utc"]


def test_label_and_annotation_keys_and_values_are_checked() -> None:
    errs = _errors(_route(meta='name: r, labels: {"bad key": x, ok: "-bad-value-"}'))
    assert any("""metadata.labels["bad key"]: invalid key 'bad key'""" in e for e in errs), errs
    assert any("metadata.labels.ok: invalid label value '-bad-value-'" in e for e in errs), errs
    errs = _errors(_route(meta='name: r, annotations: {"a/b/c": x}'))
    assert any("metadata.annotations.a/b/c: invalid key" in e for e in errs), errs
    errs = _errors(_route(meta=f"name: r, annotations: {{a: {'x' * (256 * 1024)}}}"))
    assert any("metadata.annotations: annotations take" in e for e in errs), errs


def test_unquoted_dates_in_annotations_are_strings() -> None:
    (route,) = _load(_route(meta="name: r, annotations: {example.com/since: 2024-05-01}"))
    assert route.metadata.annotations == {"example.com/since": "2024-05-01"}


def test_equal_strings_of_one_text_are_one_object() -> None:
    first, second = _load(
        _route(meta="name: a, namespace: team") + "---\n" + _route(meta="name: b, namespace: team")
    )
    assert first.metadata.namespace is second.metadata.namespace


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("kind", "version"),
    [("GRPCRoute", "v1alpha2"), ("ReferenceGrant", "v1alpha2"), ("GatewayClass", "v1alpha2")],
)
def test_unserved_versions_are_refused(kind: str, version: str) -> None:
    text = f"apiVersion: gateway.networking.k8s.io/{version}\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{}}\n"
    (err,) = _errors(text)
    assert ": apiVersion: unsupported apiVersion" in err
    assert f"apiVersion not served for {kind}" in err


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (
            "parentRefs: [{name: gw}], rules: [{matches: [{headers: [{name: x, value: a}, {name: x, value: b}]}]}]",
            "spec.rules[0].matches[0].headers[1]: Duplicate value: name 'x'",
        ),
        (
            "parentRefs: [{name: gw}], rules: [{filters: [{type: CORS, cors: {allowOrigins: ['*', 'https://a.b']}}]}]",
            "spec.rules[0].filters[0].cors.allowOrigins: allowOrigins cannot contain '*'",
        ),
        (
            "parentRefs: [{name: gw}], rules: [{filters: [{type: URLRewrite, urlRewrite: {}}, {type: URLRewrite, urlRewrite: {}}]}]",
            "spec.rules[0].filters: URLRewrite filter may appear at most once",
        ),
        (
            "parentRefs: [{name: gw}, {name: gw}]",
            "spec.parentRefs[1]: sectionName or port must be unique",
        ),
        (
            "parentRefs: [{name: gw}], rules: [{backendRefs: [{name: svc}]}]",
            "spec.rules[0].backendRefs[0]: port must be specified for a Service reference",
        ),
        (
            "parentRefs: [{name: gw}], rules: [{name: a}, {name: b}, {name: a}]",
            "spec.rules[2].name: rule name 'a' must be unique within the route",
        ),
        (
            "parentRefs: [{name: gw}], rules: [{timeouts: {request: 1s, backendRequest: 2s}}]",
            "spec.rules[0].timeouts.backendRequest: backendRequest timeout cannot be longer",
        ),
    ],
)
def test_crd_rules_name_the_field_that_breaks_them(spec: str, error: str) -> None:
    errs = _errors(_route(spec))
    assert any(f"HTTPRoute/default/r: {error}" in e for e in errs), errs


def test_gateway_listener_rules_name_the_listener() -> None:
    gateway = textwrap.dedent(
        """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          gatewayClassName: eg
          listeners:
            - {name: a, port: 80, protocol: HTTP}
        """
    )
    errs = _errors(
        gateway
        + "    - {name: b, port: 80, protocol: HTTP}\n"
        + "    - {name: a, port: 81, protocol: HTTP}\n"
    )
    assert any("spec.listeners[1]: Combination of port, protocol and hostname" in e for e in errs)
    assert any("spec.listeners[2].name: listener name 'a' must be unique" in e for e in errs)
    # A listener's own rules are checked first; the list's once every listener is valid.
    errs = _errors(gateway + "    - {name: t, port: 443, protocol: TLS}\n")
    assert any("spec.listeners[1].tls: tls mode must be set for protocol TLS" in e for e in errs)


# --------------------------------------------------------------------------- new fields


def test_gateway_tls_and_backend_tls_policy_load_typed() -> None:
    gw, policy = _load(
        """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          gatewayClassName: eg
          tls:
            frontend:
              default: {validation: {caCertificateRefs: [{group: "", kind: ConfigMap, name: ca}]}}
              perPort:
                - port: 8443
                  tls:
                    validation:
                      mode: AllowInsecureFallback
                      caCertificateRefs: [{group: "", kind: ConfigMap, name: ca2}]
            backend: {clientCertificateRef: {name: client}}
          listeners: [{name: http, port: 80, protocol: HTTP}]
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: BackendTLSPolicy
        metadata: {name: p}
        spec:
          targetRefs: [{group: "", kind: Service, name: api}]
          validation: {wellKnownCACertificates: System, hostname: api.example.com}
        """
    )
    assert isinstance(gw, Gateway) and gw.spec.tls is not None
    frontend = gw.spec.tls.frontend
    assert frontend is not None and frontend.default.validation is not None
    assert frontend.default.validation.mode == "AllowValidOnly"
    assert frontend.per_port[0].tls.validation is not None
    assert frontend.per_port[0].tls.validation.ca_certificate_refs[0].name == "ca2"
    assert gw.spec.tls.backend is not None
    assert gw.spec.tls.backend.client_certificate_ref is not None
    assert gw.spec.tls.backend.client_certificate_ref.kind == "Secret"
    assert isinstance(policy, BackendTLSPolicy)
    assert Resources.of([gw, policy]).backend_tls_policies == [policy]
    # Loaded, not acted on: the translation is the same without the policy.
    assert policy.spec.validation.well_known_ca_certificates == "System"


def test_use_default_gateways_loads_on_every_route_kind() -> None:
    (route,) = _load(_route("useDefaultGateways: All"))
    assert route.spec.use_default_gateways == "All" and route.spec.parent_refs == []


def test_a_selector_operator_the_crd_allows_but_kubernetes_lacks_selects_nothing() -> None:
    selector = LabelSelector.model_validate(
        {"matchExpressions": [{"key": "team", "operator": "Matches", "values": ["a"]}]}
    )
    assert not selector.matches({"team": "a"})
