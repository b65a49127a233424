"""Loading: typed objects from YAML, and precise errors for each class of bad input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from egobs.resources import (
    Backend,
    EndpointSlice,
    GatewayClass,
    HTTPRoute,
    LoadError,
    Secret,
    load_paths,
    load_text,
)

ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: foo
spec:
  parentRefs: [{name: gw}]
  rules:
    - matches:
        - path: {type: PathPrefix, value: /x}
      backendRefs: [{name: svc, port: 80}]
"""


def _errors(text: str, file: str = "in.yaml") -> list[str]:
    with pytest.raises(LoadError) as info:
        load_text(textwrap.dedent(text), file=file)
    return [str(e) for e in info.value.errors]


def test_loads_typed_objects_with_default_namespace() -> None:
    (route,) = load_text(ROUTE, file="r.yaml")
    assert isinstance(route, HTTPRoute)
    assert route.namespace == "default"
    assert route.spec.rules[0].backend_refs[0].port == 80
    assert route.spec.rules[0].backend_refs[0].weight == 1
    assert route.spec.rules[0].matches[0].path is not None
    assert route.spec.rules[0].matches[0].path.value == "/x"
    assert route.source is not None and (route.source.file, route.source.doc) == ("r.yaml", 1)


def test_rule_without_matches_gets_default_prefix_match() -> None:
    (route,) = load_text(
        ROUTE.replace(
            "    - matches:\n        - path: {type: PathPrefix, value: /x}\n      backendRefs",
            "    - backendRefs",
        )
    )
    assert isinstance(route, HTTPRoute)
    match = route.spec.rules[0].matches[0]
    assert match.path is not None and (match.path.type, match.path.value) == ("PathPrefix", "/")


def test_unknown_field_names_file_doc_object_and_field_path() -> None:
    text = "---\n# leading comment doc\n---\n" + ROUTE.replace("- path:", "- pth:")
    (err,) = _errors(text)
    # Line 12 is the unknown field's own line (the document starts on line 4).
    assert err.startswith("in.yaml:doc2 (line 12) HTTPRoute/default/foo: ")
    assert err.endswith("spec.rules[0].matches[0].pth: unknown field")


def test_wrong_type() -> None:
    (err,) = _errors(ROUTE.replace("port: 80", "port: eighty"))
    assert "HTTPRoute/default/foo: spec.rules[0].backendRefs[0].port:" in err
    assert "eighty" in err


def test_out_of_range_and_enum_values() -> None:
    errs = _errors(
        ROUTE.replace("port: 80", "port: 70000").replace("type: PathPrefix", "type: Glob")
    )
    assert any(
        "spec.rules[0].backendRefs[0].port: Input should be less than or equal to 65535" in e
        for e in errs
    )
    assert any("spec.rules[0].matches[0].path.type:" in e and "'Glob'" in e for e in errs)


def test_missing_required_field() -> None:
    (err,) = _errors(
        ROUTE.replace("backendRefs: [{name: svc, port: 80}]", "backendRefs: [{port: 80}]")
    )
    assert err.endswith("spec.rules[0].backendRefs[0].name: required field missing")


def test_unknown_kind() -> None:
    (err,) = _errors("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
    assert "Pod/x: kind: unknown kind 'Pod'" in err


def test_unsupported_api_version() -> None:
    (err,) = _errors(ROUTE.replace("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v9"))
    assert "HTTPRoute/default/foo: apiVersion: unsupported apiVersion" in err


def test_malformed_yaml_reports_line() -> None:
    (err,) = _errors("apiVersion: v1\nkind: [unclosed\nmetadata: {name: x}\n")
    assert err.startswith("in.yaml:doc1 (line ")  # documents count from 1
    assert "malformed YAML" in err


def test_document_not_a_mapping() -> None:
    (err,) = _errors("- just\n- a list\n")
    assert "document must be a mapping, got list" in err


def test_cross_field_validation_names_the_field() -> None:
    text = ROUTE.replace(
        "      backendRefs",
        "      filters:\n        - type: RequestRedirect\n          urlRewrite: {hostname: a.example}\n      backendRefs",
    )
    (err,) = _errors(text)
    assert (
        "spec.rules[0].filters[0]: filter of type RequestRedirect needs the field for it set" in err
    )


def test_bad_duration_and_hostname() -> None:
    text = ROUTE.replace("spec:\n", "spec:\n  hostnames: [Not_A_Host]\n").replace(
        "      backendRefs", "      timeouts: {request: 10x}\n      backendRefs"
    )
    errs = _errors(text)
    assert any("spec.hostnames[0]: invalid hostname 'Not_A_Host'" in e for e in errs)
    assert any("spec.rules[0].timeouts.request: invalid duration '10x'" in e for e in errs)


def test_cluster_scoped_kind_with_namespace_loads_without_it() -> None:
    # The API server clears metadata.namespace of a cluster-scoped object silently (even
    # one that is no valid namespace name), so the loader does too: what the API server
    # accepts is not refused (issue 11).
    text = """\
    apiVersion: gateway.networking.k8s.io/v1
    kind: GatewayClass
    metadata: {name: c, namespace: Oops_Not_A_Namespace}
    spec: {controllerName: x/y}
    """
    (cls,) = load_text(textwrap.dedent(text), file="in.yaml")
    assert isinstance(cls, GatewayClass)
    assert cls.metadata.namespace is None and cls.namespace == ""
    assert cls.ref() == "GatewayClass/c" and cls.key == ("GatewayClass", "", "c")


def test_duplicate_object_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(ROUTE)
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.yml").write_text(ROUTE)
    with pytest.raises(LoadError) as info:
        load_paths([tmp_path])
    (err,) = info.value.errors
    assert "HTTPRoute/default/foo: duplicate object: already defined at" in str(err)
    assert str(tmp_path / "a.yaml") in str(err)


def test_all_errors_from_all_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(ROUTE.replace("- path:", "- pth:"))
    (tmp_path / "b.yaml").write_text("kind: [\n")
    (tmp_path / "ok.yaml").write_text(ROUTE.replace("name: foo", "name: bar"))
    with pytest.raises(LoadError) as info:
        load_paths([tmp_path])
    files = sorted(e.source.file for e in info.value.errors)
    assert files == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]


def test_missing_path() -> None:
    with pytest.raises(LoadError, match="no such file or directory"):
        load_paths(["/nonexistent/egobs.yaml"])


def test_directory_loading_skips_hidden_and_non_yaml(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(ROUTE)
    (tmp_path / ".hidden.yaml").write_text("garbage: [")
    (tmp_path / "notes.txt").write_text("garbage: [")
    res = load_paths([tmp_path])
    assert [r.name for r in res.http_routes] == ["foo"]


def test_core_and_extension_kinds() -> None:
    text = """\
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: s1, labels: {kubernetes.io/service-name: svc}}
    addressType: IPv4
    ports: [{name: http, port: 8080}]
    endpoints: [{addresses: [127.0.0.1]}]
    ---
    apiVersion: v1
    kind: Secret
    metadata: {name: tls}
    type: kubernetes.io/tls
    data: {tls.crt: aGVsbG8=}
    stringData: {tls.key: key}
    ---
    apiVersion: gateway.envoyproxy.io/v1alpha1
    kind: Backend
    metadata: {name: b}
    spec:
      endpoints: [{unix: {path: /tmp/x.sock}}]
    """
    slice_, secret, backend = load_text(textwrap.dedent(text))
    assert isinstance(slice_, EndpointSlice) and slice_.service_name == "svc"
    assert isinstance(secret, Secret) and secret.value("tls.crt") == "hello"
    assert secret.value("tls.key") == "key"
    assert isinstance(backend, Backend) and backend.spec.endpoints[0].unix is not None


def test_backend_endpoint_needs_exactly_one_address() -> None:
    text = """\
    apiVersion: gateway.envoyproxy.io/v1alpha1
    kind: Backend
    metadata: {name: b}
    spec:
      endpoints: [{ip: {address: 127.0.0.1, port: 1}, unix: {path: /x}}]
    """
    (err,) = _errors(text)
    assert "Backend/default/b: spec.endpoints[0]: exactly one of fqdn, ip or unix" in err


def test_endpointslice_without_service_label() -> None:
    text = """\
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: {name: s1}
    addressType: IPv4
    """
    (err,) = _errors(text)
    assert "kubernetes.io/service-name" in err


def _l4(kind: str, version: str, rules: int, hostnames: int = 0, names: bool = False) -> str:
    rule_list = ", ".join(
        ("{name: r, " if names else "{") + "backendRefs: [{name: s, port: 80}]}"
        for _ in range(rules)
    )
    hosts = f"  hostnames: [{', '.join(f'h{i}.example.com' for i in range(hostnames))}]\n"
    return (
        f"apiVersion: gateway.networking.k8s.io/{version}\nkind: {kind}\n"
        f"metadata: {{name: r1}}\nspec:\n  parentRefs: [{{name: gw}}]\n"
        + (hosts if hostnames else "")
        + f"  rules: [{rule_list}]\n"
    )


# What the v1.6.1 CRDs say per version (see ../shared/reference/gateway-api-v1.6.1): v1 (and
# TLSRoute v1alpha3) allow one rule, TLSRoute there needs a hostname; v1alpha2 allows 16
# rules with unique names.
@pytest.mark.parametrize(
    ("text", "error"),
    [
        (_l4("TCPRoute", "v1", 1), None),
        (_l4("UDPRoute", "v1", 1), None),
        (_l4("TCPRoute", "v1alpha2", 3), None),
        (_l4("TCPRoute", "v1", 2), "TCPRoute/default/r1: spec.rules: at most 1 rule"),
        (_l4("UDPRoute", "v1", 2), "UDPRoute/default/r1: spec.rules: at most 1 rule"),
        (_l4("TCPRoute", "v1alpha2", 2, names=True), "spec.rules[1].name: rule name 'r'"),
        (_l4("TLSRoute", "v1", 1, hostnames=1), None),
        (_l4("TLSRoute", "v1alpha3", 1, hostnames=2), None),
        (_l4("TLSRoute", "v1alpha2", 2), None),
        (_l4("TLSRoute", "v1", 1), "TLSRoute/default/r1: spec.hostnames: at least 1 hostname"),
        (_l4("TLSRoute", "v1alpha3", 2, hostnames=1), "spec.rules: at most 1 rule"),
        (_l4("TLSRoute", "v1alpha2", 1, hostnames=20), None),
    ],
)
def test_l4_route_versions_follow_their_crds(text: str, error: str | None) -> None:
    if error is None:
        (obj,) = load_text(text)
        assert obj.KIND in ("TCPRoute", "UDPRoute", "TLSRoute")
        return
    (err,) = _errors(text)
    assert error in err


def test_errors_point_at_the_field_or_the_mapping_that_lacks_it() -> None:
    text = textwrap.dedent(
        """\
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: r}
        spec:
          parentRefs: [{name: gw}]
          rules:
            - matches: [{path: {value: /a}}]
              backendRefs:
                - name: s
                  port: 99999
            - backendRefs:
                - {port: 80}
        """
    )
    errs = _errors(text)
    assert any(e.startswith("in.yaml:doc1 (line 10) ") and ".port: " in e for e in errs), errs
    # A missing field: the line of the list item that lacks it.
    assert any(e.startswith("in.yaml:doc1 (line 12) ") and "[0].name: " in e for e in errs), errs
