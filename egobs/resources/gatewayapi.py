"""Gateway API kinds (gateway.networking.k8s.io), with the validation their v1.6.1 CRDs
enforce: each field's schema (types, patterns, lengths, enums, list sizes), the list-map and
set lists (no repeated key), and every ``x-kubernetes-validations`` CEL rule, each reported
at the field the CRD names (a rule on a list names the item that breaks it).

What the CRDs accept loads, even when egobs does not act on it (the translator says so in
the object's status); what they refuse is refused here, with the object and field named.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, Field, field_validator, model_validator

from egobs.resources._base import (
    Duration,
    Hostname,
    KubeModel,
    Loc,
    PortNumber,
    Resource,
    duplicates,
    duration_seconds,
    matching,
    qualified_name_problem,
    refuse,
)

GROUP = "gateway.networking.k8s.io"

# --------------------------------------------------------------------------- field types

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_CONTROLLER_NAME = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$"
)
# Patterns are the CRDs' own, searched with RE2's semantics (see ``matching``).
Group = Annotated[
    str,
    Field(max_length=253),
    AfterValidator(
        matching(r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    ),
]
Kind = Annotated[
    str,
    Field(min_length=1, max_length=63),
    AfterValidator(matching(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")),
]
ObjectName = Annotated[str, Field(min_length=1, max_length=253)]
NamespaceName = Annotated[
    str,
    Field(min_length=1, max_length=63),
    AfterValidator(matching(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")),
]
_subdomain = matching(_DNS_SUBDOMAIN)
SectionName = Annotated[str, Field(min_length=1, max_length=253), AfterValidator(_subdomain)]
PreciseHostname = Annotated[str, Field(min_length=1, max_length=253), AfterValidator(_subdomain)]
HeaderName = Annotated[
    str,
    Field(min_length=1, max_length=256),
    AfterValidator(matching(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")),
]
HeaderValue = Annotated[
    str,
    Field(min_length=1, max_length=4096),
    AfterValidator(matching(r"^[!-~]+([\t ]?[!-~]+)*$")),
]
RouteRuleName = SectionName
AbsolutePath = Annotated[
    str,
    Field(max_length=1024),
    AfterValidator(matching(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")),
]
UseDefaultGateways = Literal["All", "None"]

M = TypeVar("M")


def _unique(items: Iterable[M], key: Callable[[M], Any], what: str) -> list[tuple[Loc, str]]:
    """A problem at each item whose ``key`` repeats an earlier one's: what a ``map`` or
    ``set`` list of the CRD (``x-kubernetes-list-type``) refuses."""
    return [
        ((i,), f"Duplicate value: {what} {k!r} is already in the list")
        for i, k in duplicates(key(item) for item in items)
    ]


def _unique_names(items: list[Any]) -> list[Any]:
    """A list-map keyed by ``name``: refuse a repeated name at the item that repeats it."""
    refuse(_unique(items, lambda i: i.name, "name"))
    return items


def _a_set(items: list[Any]) -> list[Any]:
    """A list of type ``set``: refuse a repeated item at the item."""
    refuse(_unique(items, lambda i: i, "value"))
    return items


def _wildcard_alone(items: list[str], what: str) -> list[str]:
    if "*" in items and len(items) > 1:
        refuse([((), f"{what} cannot contain '*' alongside other values")])
    return _a_set(items)


# --------------------------------------------------------------------------- references


class ParentReference(KubeModel):
    group: Group = GROUP
    kind: Kind = "Gateway"
    namespace: NamespaceName | None = None
    name: ObjectName
    section_name: SectionName | None = None
    port: PortNumber | None = None


class BackendObjectReference(KubeModel):
    group: Group = ""
    kind: Kind = "Service"
    name: ObjectName
    namespace: NamespaceName | None = None
    port: PortNumber | None = None

    @model_validator(mode="after")
    def _service_needs_port(self) -> BackendObjectReference:
        # CEL: (size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true
        if self.port is None and self.group == "" and self.kind == "Service":
            refuse([((), "port must be specified for a Service reference")])
        return self


class BackendRef(BackendObjectReference):
    weight: Annotated[int, Field(ge=0, le=1_000_000)] = 1


class SecretObjectReference(KubeModel):
    group: Group = ""
    kind: Kind = "Secret"
    name: ObjectName
    namespace: NamespaceName | None = None


class ObjectReference(KubeModel):
    group: Group
    kind: Kind
    name: ObjectName
    namespace: NamespaceName | None = None


class LocalObjectReference(KubeModel):
    group: Group
    kind: Kind
    name: ObjectName


class ParametersReference(KubeModel):
    group: Group
    kind: Kind
    name: ObjectName
    namespace: NamespaceName | None = None


# --------------------------------------------------------------------------- GatewayClass


class GatewayClassSpec(KubeModel):
    controller_name: Annotated[
        str, Field(min_length=1, max_length=253), AfterValidator(matching(_CONTROLLER_NAME))
    ]
    parameters_ref: ParametersReference | None = None
    description: Annotated[str, Field(max_length=64)] | None = None


class GatewayClass(Resource):
    KIND = "GatewayClass"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")
    NAMESPACED = False
    spec: GatewayClassSpec


# --------------------------------------------------------------------------- Gateway


class LabelSelectorRequirement(KubeModel):
    key: str
    # Any string for the CRD; an operator other than these four selects nothing.
    operator: str
    values: list[str] = Field(default_factory=list)


class LabelSelector(KubeModel):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        for k, v in self.match_labels.items():
            if labels.get(k) != v:
                return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In":
                if not present or labels[req.key] not in req.values:
                    return False
            elif req.operator == "NotIn":
                if present and labels[req.key] in req.values:
                    return False
            elif req.operator == "Exists":
                if not present:
                    return False
            elif req.operator == "DoesNotExist":
                if present:
                    return False
            else:
                return False
        return True

    def problem(self) -> str | None:
        """Why Kubernetes could not turn this into a selector (the CRD lets it through,
        the label-selector conversion refuses it), or None."""
        for i, req in enumerate(self.match_expressions):
            where = f"matchExpressions[{i}] ({req.key} {req.operator})"
            if req.operator in ("In", "NotIn") and not req.values:
                return f"{where} needs values"
            if req.operator in ("Exists", "DoesNotExist") and req.values:
                return f"{where} must have no values"
            if req.operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
                return f"{where}: the operator must be In, NotIn, Exists or DoesNotExist"
        return None


class RouteNamespaces(KubeModel):
    # ``from: Selector`` without a selector is accepted by the CRD; it selects no namespace.
    from_: Literal["All", "Same", "Selector"] = Field(default="Same", alias="from")
    selector: LabelSelector | None = None


class RouteGroupKind(KubeModel):
    group: Group = GROUP
    kind: Kind


class AllowedRoutes(KubeModel):
    namespaces: RouteNamespaces = Field(default_factory=RouteNamespaces)
    kinds: list[RouteGroupKind] | None = Field(default=None, max_length=8)


class ListenerTLSConfig(KubeModel):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: list[SecretObjectReference] = Field(default_factory=list, max_length=64)
    options: Annotated[dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=16)] = (
        Field(default_factory=dict)
    )

    @model_validator(mode="after")
    def _terminate_has_certificates(self) -> ListenerTLSConfig:
        # CEL: self.mode == 'Terminate' ? size(self.certificateRefs) > 0 ||
        #      size(self.options) > 0 : true
        if self.mode == "Terminate" and not self.certificate_refs and not self.options:
            refuse([((), "certificateRefs or options must be specified when mode is Terminate")])
        return self


_protocol = matching(
    r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?"
    r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$"
)


class Listener(KubeModel):
    name: SectionName
    hostname: Hostname | None = None
    port: PortNumber
    protocol: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_protocol)]
    tls: ListenerTLSConfig | None = None
    allowed_routes: AllowedRoutes = Field(default_factory=AllowedRoutes)

    @model_validator(mode="after")
    def _tls_by_protocol(self) -> Listener:
        # The CRD's rules on spec.listeners, checked on each listener (names it exactly).
        problems: list[tuple[Loc, str]] = []
        if self.protocol in ("HTTP", "TCP", "UDP") and self.tls is not None:
            problems.append((("tls",), f"tls must not be specified for protocol {self.protocol}"))
        if self.protocol == "HTTPS" and self.tls is not None and self.tls.mode != "Terminate":
            problems.append((("tls", "mode"), "tls mode must be Terminate for protocol HTTPS"))
        if self.protocol == "TLS" and self.tls is None:
            problems.append((("tls",), "tls mode must be set for protocol TLS"))
        if self.protocol in ("TCP", "UDP") and self.hostname is not None:
            problems.append(
                (("hostname",), f"hostname must not be specified for protocol {self.protocol}")
            )
        refuse(problems)
        return self


_ADDRESS_TYPE = (
    r"^Hostname|IPAddress|NamedAddress|[a-z0-9]([-a-z0-9]*[a-z0-9])?"
    r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$"
)
_ADDRESS_HOSTNAME = re.compile(
    r"(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)


def _is_ip(text: str) -> bool:
    """An IPv4 or IPv6 address (no zone), as the ipv4/ipv6 formats and CEL's isIP take it."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text


class GatewayAddress(KubeModel):
    type: Annotated[
        str, Field(min_length=1, max_length=253), AfterValidator(matching(_ADDRESS_TYPE))
    ] = "IPAddress"
    # Optional: an implementation may assign the address itself.
    value: Annotated[str, Field(max_length=253)] | None = None

    @model_validator(mode="after")
    def _value_by_type(self) -> GatewayAddress:
        if self.value is None:
            return self
        if self.type == "IPAddress" and not _is_ip(self.value):
            refuse([(("value",), f"{self.value!r} is not an IPv4 or IPv6 address")])
        if self.type == "Hostname" and not _ADDRESS_HOSTNAME.fullmatch(self.value):
            refuse(
                [
                    (
                        ("value",),
                        f"Hostname value {self.value!r} must be empty or contain only valid "
                        r"characters (matching ^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?"
                        r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$)",
                    )
                ]
            )
        return self


def _check_infra_keys(values: dict[str, str]) -> dict[str, str]:
    # CEL: key.matches(<qualified name>) && key.split("/")[0].size() < 253
    refuse(
        ((key,), problem)
        for key in values
        if (problem := qualified_name_problem(key, max_prefix=252)) is not None
    )
    return values


_INFRA_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"


class GatewayInfrastructure(KubeModel):
    labels: Annotated[
        dict[
            str,
            Annotated[str, Field(max_length=63), AfterValidator(matching(_INFRA_LABEL_VALUE))],
        ],
        Field(max_length=8),
    ] = Field(default_factory=dict)
    annotations: Annotated[
        dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=16)
    ] = Field(default_factory=dict)
    parameters_ref: LocalObjectReference | None = None

    _labels = field_validator("labels")(_check_infra_keys)
    _annotations = field_validator("annotations")(_check_infra_keys)


class FrontendTLSValidation(KubeModel):
    """How a Gateway checks client certificates (mutual TLS) on its HTTPS/TLS ports."""

    ca_certificate_refs: list[ObjectReference] = Field(min_length=1, max_length=16)
    mode: Literal["AllowValidOnly", "AllowInsecureFallback"] = "AllowValidOnly"


class TLSConfig(KubeModel):
    validation: FrontendTLSValidation | None = None


class TLSPortConfig(KubeModel):
    port: PortNumber
    tls: TLSConfig


class FrontendTLSConfig(KubeModel):
    default: TLSConfig
    per_port: list[TLSPortConfig] = Field(default_factory=list, max_length=64)

    @field_validator("per_port")
    @classmethod
    def _ports_unique(cls, value: list[TLSPortConfig]) -> list[TLSPortConfig]:
        # A list-map keyed by port; CEL: Port for TLS configuration must be unique.
        refuse(_unique(value, lambda p: p.port, "port"))
        return value


class GatewayBackendTLS(KubeModel):
    client_certificate_ref: SecretObjectReference | None = None


class GatewayTLSConfig(KubeModel):
    """``spec.tls`` (v1.6): client certificate validation per port (``frontend``, applied)
    and the certificate the Gateway presents to backends (``backend``, loaded and checked,
    not applied yet)."""

    frontend: FrontendTLSConfig | None = None
    backend: GatewayBackendTLS | None = None


class ListenerNamespaces(KubeModel):
    from_: Literal["All", "Selector", "Same", "None"] = Field(default="None", alias="from")
    selector: LabelSelector | None = None


class AllowedListeners(KubeModel):
    namespaces: ListenerNamespaces = Field(default_factory=ListenerNamespaces)


def _listener_key(listener: Listener) -> tuple[int, str, str | None]:
    return (listener.port, listener.protocol, listener.hostname)


def _listener_problems(listeners: list[Listener], owner: str) -> list[tuple[Loc, str]]:
    """The CRDs' distinctness rules on a Gateway's or ListenerSet's listeners."""
    problems: list[tuple[Loc, str]] = [
        ((i, "name"), f"listener name {name!r} must be unique within the {owner}")
        for i, name in duplicates(lis.name for lis in listeners)
    ]
    problems += [
        (
            (i,),
            "Combination of port, protocol and hostname must be unique for each listener "
            f"(port {key[0]}, protocol {key[1]}, hostname {key[2] or 'none'} repeat)",
        )
        for i, key in duplicates(_listener_key(lis) for lis in listeners)
    ]
    return problems


class GatewaySpec(KubeModel):
    gateway_class_name: ObjectName
    listeners: list[Listener] = Field(min_length=1, max_length=64)
    addresses: list[GatewayAddress] = Field(default_factory=list, max_length=16)
    infrastructure: GatewayInfrastructure | None = None
    tls: GatewayTLSConfig | None = None
    allowed_listeners: AllowedListeners | None = None
    default_scope: Literal["All", "None"] | None = None

    @field_validator("listeners")
    @classmethod
    def _listeners_distinct(cls, value: list[Listener]) -> list[Listener]:
        refuse(_listener_problems(value, "Gateway"))
        return value

    @field_validator("addresses")
    @classmethod
    def _addresses_distinct(cls, value: list[GatewayAddress]) -> list[GatewayAddress]:
        # CEL: IPAddress values must be unique; Hostname values must be unique.
        keyed = [
            (i, a.type, a.value)
            for i, a in enumerate(value)
            if a.value is not None and a.type in ("IPAddress", "Hostname")
        ]
        refuse(
            ((keyed[j][0],), f"{kind} values must be unique: {address!r} repeats")
            for j, (kind, address) in duplicates((k, v) for _, k, v in keyed)
        )
        return value


class Gateway(Resource):
    KIND = "Gateway"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")
    spec: GatewaySpec


# --------------------------------------------------------------------------- ListenerSet


class ParentGatewayReference(KubeModel):
    group: Group = GROUP
    kind: Kind = "Gateway"
    name: ObjectName
    namespace: NamespaceName | None = None  # the ListenerSet's own when unset


class ListenerSetSpec(KubeModel):
    parent_ref: ParentGatewayReference
    # A ListenerEntry is the Gateway's Listener; names are unique within the set only.
    listeners: list[Listener] = Field(min_length=1, max_length=64)

    @field_validator("listeners")
    @classmethod
    def _listeners_distinct(cls, value: list[Listener]) -> list[Listener]:
        refuse(_listener_problems(value, "ListenerSet"))
        return value


class ListenerSet(Resource):
    """Listeners attached to a Gateway that allows them (``spec.allowedListeners``), with
    a status of their own (Gateway API v1.5+ standard)."""

    KIND = "ListenerSet"
    GROUP = GROUP
    VERSIONS = ("v1",)
    spec: ListenerSetSpec


# --------------------------------------------------------------------------- HTTPRoute


def _path_problem(value: str) -> str | None:
    """The CRD's rules on an Exact or PathPrefix path, or None."""
    if not value.startswith("/"):
        return "value must be an absolute path and start with '/'"
    for part in ("//", "/./", "/../", "%2f", "%2F", "#"):
        if part in value:
            return f"value must not contain {part!r}"
    for end in ("/..", "/."):
        if value.endswith(end):
            return f"value must not end with {end!r}"
    if not _PATH_CHARACTERS.fullmatch(value):
        return (
            f"value {value!r} must only contain valid characters (matching "
            f"{_PATH_CHARACTERS.pattern})"
        )
    return None


_PATH_CHARACTERS = re.compile(r"(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+")


class HTTPPathMatch(KubeModel):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: Annotated[str, Field(max_length=1024)] = "/"

    @model_validator(mode="after")
    def _absolute(self) -> HTTPPathMatch:
        if self.type != "RegularExpression":
            problem = _path_problem(self.value)
            if problem is not None:
                refuse([((), problem)])
        return self


class HTTPHeaderMatch(KubeModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: HeaderValue


class HTTPQueryParamMatch(KubeModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: Annotated[str, Field(min_length=1, max_length=1024)]


HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


class HTTPRouteMatch(KubeModel):
    # Absent means the CRD's default, PathPrefix "/" (the translator applies it).
    path: HTTPPathMatch | None = None
    headers: list[HTTPHeaderMatch] = Field(default_factory=list, max_length=16)
    query_params: list[HTTPQueryParamMatch] = Field(default_factory=list, max_length=16)
    method: HTTPMethod | None = None

    _headers = field_validator("headers", "query_params")(_unique_names)


class HTTPHeader(KubeModel):
    name: HeaderName
    value: HeaderValue


class HTTPHeaderFilter(KubeModel):
    set: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    add: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    remove: list[str] = Field(default_factory=list, max_length=16)

    _named = field_validator("set", "add")(_unique_names)
    _remove = field_validator("remove")(_a_set)


_ORIGIN = (
    r"(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)"
)
CORSOrigin = Annotated[str, Field(min_length=1, max_length=253), AfterValidator(matching(_ORIGIN))]
CORSMethod = Literal[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*"
]


class HTTPCORSFilter(KubeModel):
    """The CORS filter (HTTPRoute v1.6.1): what cross-origin requests the route allows."""

    allow_origins: list[CORSOrigin] = Field(default_factory=list, max_length=64)
    allow_credentials: bool | None = None
    allow_methods: list[CORSMethod] = Field(default_factory=list, max_length=9)
    allow_headers: list[HeaderName] = Field(default_factory=list, max_length=64)
    expose_headers: list[HeaderName] = Field(default_factory=list, max_length=64)
    max_age: Annotated[int, Field(ge=1)] = 5

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return _wildcard_alone(value, "allowOrigins")

    @field_validator("allow_methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        return _wildcard_alone(value, "allowMethods")

    @field_validator("allow_headers")
    @classmethod
    def _headers(cls, value: list[str]) -> list[str]:
        return _wildcard_alone(value, "allowHeaders")

    _expose = field_validator("expose_headers")(_a_set)


class HTTPPathModifier(KubeModel):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: Annotated[str, Field(max_length=1024)] | None = None
    replace_prefix_match: Annotated[str, Field(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _field_by_type(self) -> HTTPPathModifier:
        if self.type == "ReplaceFullPath" and (
            self.replace_full_path is None or self.replace_prefix_match is not None
        ):
            refuse([((), "replaceFullPath (and only it) must be set when type is ReplaceFullPath")])
        if self.type == "ReplacePrefixMatch" and (
            self.replace_prefix_match is None or self.replace_full_path is not None
        ):
            refuse(
                [
                    (
                        (),
                        "replacePrefixMatch (and only it) must be set when type is "
                        "ReplacePrefixMatch",
                    )
                ]
            )
        return self


class HTTPRequestRedirectFilter(KubeModel):
    scheme: Literal["http", "https"] | None = None
    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None
    port: PortNumber | None = None
    status_code: Literal[301, 302, 303, 307, 308] = 302


class HTTPURLRewriteFilter(KubeModel):
    hostname: PreciseHostname | None = None
    path: HTTPPathModifier | None = None


class Fraction(KubeModel):
    numerator: Annotated[int, Field(ge=0)]
    denominator: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _proper(self) -> Fraction:
        if self.numerator > self.denominator:
            refuse([((), "numerator must be less than or equal to denominator")])
        return self


class HTTPRequestMirrorFilter(KubeModel):
    backend_ref: BackendObjectReference
    percent: Annotated[int, Field(ge=0, le=100)] | None = None
    fraction: Fraction | None = None

    @model_validator(mode="after")
    def _one_of(self) -> HTTPRequestMirrorFilter:
        if self.percent is not None and self.fraction is not None:
            refuse([((), "only one of percent or fraction may be specified")])
        return self


class HTTPExternalAuthHTTP(KubeModel):
    path: AbsolutePath | None = None
    allowed_headers: list[str] = Field(default_factory=list, max_length=64)
    allowed_response_headers: list[str] = Field(default_factory=list, max_length=64)

    _sets = field_validator("allowed_headers", "allowed_response_headers")(_a_set)


class HTTPExternalAuthGRPC(KubeModel):
    allowed_headers: list[str] = Field(default_factory=list, max_length=64)

    _sets = field_validator("allowed_headers")(_a_set)


class HTTPExternalAuthForwardBody(KubeModel):
    max_size: int | None = None


class HTTPExternalAuthFilter(KubeModel):
    """ExternalAuth (experimental in v1.6): loaded so the route can say it is unsupported."""

    protocol: Literal["HTTP", "GRPC"]
    backend_ref: BackendObjectReference
    http: HTTPExternalAuthHTTP | None = None
    grpc: HTTPExternalAuthGRPC | None = None
    forward_body: HTTPExternalAuthForwardBody | None = None

    @model_validator(mode="after")
    def _protocol_settings(self) -> HTTPExternalAuthFilter:
        if (self.protocol == "GRPC") != (self.grpc is not None):
            refuse([((), "grpc must be set exactly when protocol is GRPC")])
        if (self.protocol == "HTTP") != (self.http is not None):
            refuse([((), "http must be set exactly when protocol is HTTP")])
        return self


_FILTER_FIELDS = {
    "RequestHeaderModifier": "request_header_modifier",
    "ResponseHeaderModifier": "response_header_modifier",
    "RequestMirror": "request_mirror",
    "RequestRedirect": "request_redirect",
    "URLRewrite": "url_rewrite",
    "ExtensionRef": "extension_ref",
    "CORS": "cors",
    "ExternalAuth": "external_auth",
}


def _check_filter_fields(obj: KubeModel, filter_type: str, allowed: dict[str, str]) -> None:
    """CEL: the field named after the filter's type is set, and no other's."""
    wanted = allowed.get(filter_type)
    for ftype, attr in allowed.items():
        present = getattr(obj, attr, None) is not None
        if ftype == filter_type and not present:
            refuse([((), f"filter of type {filter_type} needs the field for it set")])
        if ftype != filter_type and present:
            refuse([((), f"field for {ftype} must not be set on a filter of type {filter_type}")])
    if wanted is None:
        refuse([((), f"unsupported filter type {filter_type!r}")])


class HTTPRouteFilter(KubeModel):
    type: Literal[
        "RequestHeaderModifier",
        "ResponseHeaderModifier",
        "RequestMirror",
        "RequestRedirect",
        "URLRewrite",
        "ExtensionRef",
        "CORS",
        "ExternalAuth",
    ]
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    request_redirect: HTTPRequestRedirectFilter | None = None
    url_rewrite: HTTPURLRewriteFilter | None = Field(default=None, alias="urlRewrite")
    extension_ref: LocalObjectReference | None = None
    cors: HTTPCORSFilter | None = None
    external_auth: HTTPExternalAuthFilter | None = None

    @model_validator(mode="after")
    def _field_matches_type(self) -> HTTPRouteFilter:
        _check_filter_fields(self, self.type, _FILTER_FIELDS)
        return self


_AT_MOST_ONCE = (
    "CORS",
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestRedirect",
    "URLRewrite",
)
_GRPC_AT_MOST_ONCE = ("RequestHeaderModifier", "ResponseHeaderModifier")


def _check_filter_list(filters: list[Any], once: tuple[str, ...] = _AT_MOST_ONCE) -> None:
    """The CRD's rules on one list of filters (a rule's, or a backendRef's)."""
    types: list[str] = [f.type for f in filters]
    if "RequestRedirect" in types and "URLRewrite" in types:
        refuse([((), "RequestRedirect and URLRewrite filters cannot be used together")])
    for name in once:
        if types.count(name) > 1:
            refuse([((), f"{name} filter may appear at most once in a list of filters")])


def _http_filters(filters: list[HTTPRouteFilter]) -> list[HTTPRouteFilter]:
    _check_filter_list(filters)
    return filters


def _prefix_rewrites(filters: list[HTTPRouteFilter]) -> tuple[int, int]:
    """How many RequestRedirect and how many URLRewrite filters replace the prefix match."""
    redirect = rewrite = 0
    for f in filters:
        if f.request_redirect and f.request_redirect.path:
            redirect += f.request_redirect.path.type == "ReplacePrefixMatch"
        if f.url_rewrite and f.url_rewrite.path:
            rewrite += f.url_rewrite.path.type == "ReplacePrefixMatch"
    return redirect, rewrite


class HTTPBackendRef(BackendRef):
    filters: list[HTTPRouteFilter] = Field(default_factory=list, max_length=16)

    _filters = field_validator("filters")(_http_filters)


class HTTPRouteTimeouts(KubeModel):
    request: Duration | None = None
    backend_request: Duration | None = None

    @model_validator(mode="after")
    def _backend_within_request(self) -> HTTPRouteTimeouts:
        # CEL: !(has(request) && has(backendRequest) && duration(request) != duration('0s')
        #        && duration(backendRequest) > duration(request))
        if self.request is not None and self.backend_request is not None:
            request = duration_seconds(self.request)
            if request != 0 and duration_seconds(self.backend_request) > request:
                refuse(
                    [
                        (
                            ("backendRequest",),
                            "backendRequest timeout cannot be longer than request timeout",
                        )
                    ]
                )
        return self


class HTTPRouteRetry(KubeModel):
    """Retries of a failed backend request (GEP-1731): ``codes`` are the response statuses
    that count as failed, ``attempts`` the most retries, ``backoff`` the least wait."""

    codes: list[Annotated[int, Field(ge=400, le=599)]] = Field(default_factory=list)
    attempts: Annotated[int, Field(ge=1)] | None = None
    backoff: Duration | None = None

    _codes = field_validator("codes")(_a_set)


class CookieConfig(KubeModel):
    lifetime_type: Literal["Permanent", "Session"] = "Session"


class SessionPersistence(KubeModel):
    """Session persistence (GEP-1619): requests carrying the same session cookie or header
    go to the same backend endpoint."""

    session_name: Annotated[str, Field(max_length=128)] | None = None
    absolute_timeout: Duration | None = None
    type: Literal["Cookie", "Header"] = "Cookie"
    cookie_config: CookieConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SessionPersistence:
        if self.cookie_config is not None and self.type != "Cookie":
            refuse([((), "cookieConfig can only be set with type Cookie")])
        permanent = (
            self.cookie_config is not None and self.cookie_config.lifetime_type == "Permanent"
        )
        if permanent and self.absolute_timeout is None:
            refuse(
                [((), "absoluteTimeout must be specified when cookie lifetimeType is Permanent")]
            )
        return self


def _default_matches() -> list[HTTPRouteMatch]:
    return [HTTPRouteMatch(path=HTTPPathMatch())]


def _one_prefix_match(matches: list[HTTPRouteMatch]) -> bool:
    return len(matches) == 1 and (matches[0].path is None or matches[0].path.type == "PathPrefix")


class HTTPRouteRule(KubeModel):
    name: RouteRuleName | None = None
    matches: list[HTTPRouteMatch] = Field(default_factory=_default_matches, max_length=64)
    filters: list[HTTPRouteFilter] = Field(default_factory=list, max_length=16)
    backend_refs: list[HTTPBackendRef] = Field(default_factory=list, max_length=16)
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    session_persistence: SessionPersistence | None = None

    _filters = field_validator("filters")(_http_filters)

    @model_validator(mode="after")
    def _filter_combinations(self) -> HTTPRouteRule:
        if self.backend_refs and any(f.request_redirect is not None for f in self.filters):
            refuse([((), "RequestRedirect filter must not be used together with backendRefs")])
        # CEL, four rules written with exists_one: a RequestRedirect (or a URLRewrite) with
        # ReplacePrefixMatch among the rule's filters, or in the filters of exactly one
        # backendRef, needs exactly one match, of type PathPrefix.
        if not _one_prefix_match(self.matches) and self._replaces_prefix():
            refuse(
                [((), "ReplacePrefixMatch needs exactly one match whose path type is PathPrefix")]
            )
        return self

    def _replaces_prefix(self) -> bool:
        redirect, rewrite = _prefix_rewrites(self.filters)
        if redirect == 1 or rewrite == 1:
            return True
        in_backends = [_prefix_rewrites(b.filters) for b in self.backend_refs]
        return (
            sum(1 for r, _ in in_backends if r == 1) == 1
            or sum(1 for _, w in in_backends if w == 1) == 1
        )


def _parent_problems(refs: list[ParentReference]) -> Iterator[tuple[Loc, str]]:
    """The CRD's two rules on spec.parentRefs, at the reference that breaks them."""
    first: dict[tuple[str, str, str, str], tuple[bool, bool]] = {}
    seen: set[tuple[str, str, str, str, str, int]] = set()
    for i, ref in enumerate(refs):
        parent = (ref.group, ref.kind, ref.name, ref.namespace or "")
        section, port = ref.section_name or "", ref.port or 0
        shape = (section != "", port != 0)
        if first.setdefault(parent, shape) != shape:
            yield (
                (i,),
                "sectionName or port must be specified when parentRefs includes 2 or more "
                "references to the same parent (all of them, or none)",
            )
        if (*parent, section, port) in seen:
            yield (
                (i,),
                "sectionName or port must be unique when parentRefs includes 2 or more "
                "references to the same parent",
            )
        seen.add((*parent, section, port))


class CommonRouteSpec(KubeModel):
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=32)
    # Experimental in v1.6 (GEP-3793): All binds the route to every Gateway whose
    # defaultScope is All, besides its parentRefs (the binding shows in status only).
    use_default_gateways: UseDefaultGateways | None = None

    @field_validator("parent_refs")
    @classmethod
    def _parents_distinct(cls, value: list[ParentReference]) -> list[ParentReference]:
        if len(value) > 1:
            refuse(_parent_problems(value))
        return value


_MAX_MATCHES = 128  # across all rules of a route


def _rule_problems(rules: list[Any], matches: Callable[[Any], int]) -> list[tuple[Loc, str]]:
    """The CRD's rules on spec.rules: unique rule names, at most 128 matches in all."""
    named = [(i, r.name) for i, r in enumerate(rules) if r.name is not None]
    problems: list[tuple[Loc, str]] = [
        ((named[j][0], "name"), f"rule name {name!r} must be unique within the route")
        for j, name in duplicates(name for _, name in named)
    ]
    total = sum(matches(r) for r in rules)
    if total > _MAX_MATCHES:
        problems.append(
            (
                (),
                f"the total number of matches across all rules in a route must be at most "
                f"{_MAX_MATCHES} (got {total})",
            )
        )
    return problems


class HTTPRouteSpec(CommonRouteSpec):
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    rules: list[HTTPRouteRule] = Field(
        default_factory=lambda: [HTTPRouteRule()], min_length=1, max_length=16
    )

    @field_validator("rules")
    @classmethod
    def _rules_distinct(cls, value: list[HTTPRouteRule]) -> list[HTTPRouteRule]:
        if len(value) > 1:
            refuse(_rule_problems(value, lambda r: len(r.matches)))
        return value


class HTTPRoute(Resource):
    KIND = "HTTPRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")
    spec: HTTPRouteSpec


# --------------------------------------------------------------------------- GRPCRoute

_GRPC_SERVICE = re.compile(r"\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*", re.IGNORECASE)
_GRPC_METHOD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


class GRPCMethodMatch(KubeModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: Annotated[str, Field(max_length=1024)] | None = None
    method: Annotated[str, Field(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _one_needed(self) -> GRPCMethodMatch:
        if self.service is None and self.method is None:
            refuse([((), "one or both of service or method must be specified")])
        if self.type == "Exact":
            if self.service is not None and not _GRPC_SERVICE.fullmatch(self.service):
                refuse(
                    [
                        (
                            ("service",),
                            f"service {self.service!r} must only contain valid characters "
                            r"(matching ^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$)",
                        )
                    ]
                )
            if self.method is not None and not _GRPC_METHOD.fullmatch(self.method):
                refuse(
                    [
                        (
                            ("method",),
                            f"method {self.method!r} must only contain valid characters "
                            "(matching ^[A-Za-z_][A-Za-z_0-9]*$)",
                        )
                    ]
                )
        return self


class GRPCHeaderMatch(KubeModel):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: Annotated[str, Field(min_length=1, max_length=4096)]


class GRPCRouteMatch(KubeModel):
    method: GRPCMethodMatch | None = None
    headers: list[GRPCHeaderMatch] = Field(default_factory=list, max_length=16)

    _headers = field_validator("headers")(_unique_names)


_GRPC_FILTER_FIELDS = {
    "RequestHeaderModifier": "request_header_modifier",
    "ResponseHeaderModifier": "response_header_modifier",
    "RequestMirror": "request_mirror",
    "ExtensionRef": "extension_ref",
}


class GRPCRouteFilter(KubeModel):
    type: Literal[
        "RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "ExtensionRef"
    ]
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_mirror: HTTPRequestMirrorFilter | None = None
    extension_ref: LocalObjectReference | None = None

    @model_validator(mode="after")
    def _field_matches_type(self) -> GRPCRouteFilter:
        _check_filter_fields(self, self.type, _GRPC_FILTER_FIELDS)
        return self


def _grpc_filters(filters: list[GRPCRouteFilter]) -> list[GRPCRouteFilter]:
    _check_filter_list(filters, _GRPC_AT_MOST_ONCE)
    return filters


class GRPCBackendRef(BackendRef):
    filters: list[GRPCRouteFilter] = Field(default_factory=list, max_length=16)

    _filters = field_validator("filters")(_grpc_filters)


class GRPCRouteRule(KubeModel):
    name: RouteRuleName | None = None
    matches: list[GRPCRouteMatch] = Field(default_factory=list, max_length=64)
    filters: list[GRPCRouteFilter] = Field(default_factory=list, max_length=16)
    backend_refs: list[GRPCBackendRef] = Field(default_factory=list, max_length=16)
    session_persistence: SessionPersistence | None = None

    _filters = field_validator("filters")(_grpc_filters)


class GRPCRouteSpec(CommonRouteSpec):
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    rules: list[GRPCRouteRule] = Field(default_factory=list, max_length=16)

    @field_validator("rules")
    @classmethod
    def _rules_distinct(cls, value: list[GRPCRouteRule]) -> list[GRPCRouteRule]:
        if len(value) > 1:
            refuse(_rule_problems(value, lambda r: len(r.matches)))
        return value


class GRPCRoute(Resource):
    KIND = "GRPCRoute"
    GROUP = GROUP
    VERSIONS = ("v1",)  # v1.6.1 serves v1 only
    spec: GRPCRouteSpec


# --------------------------------------------------------------------------- L4 routes


class L4RouteRule(KubeModel):
    name: RouteRuleName | None = None
    backend_refs: list[BackendRef] = Field(min_length=1, max_length=16)


class TCPRouteSpec(CommonRouteSpec):
    rules: list[L4RouteRule] = Field(min_length=1, max_length=16)


def _l4_rule_problems(api_version: str, rules: list[L4RouteRule]) -> list[tuple[str, str]]:
    """The per-version rules of TCPRoute and UDPRoute (v1.6.1 CRDs): v1 allows one rule;
    v1alpha2 up to 16, whose names (when given) are unique."""
    if api_version.endswith("/v1"):
        if len(rules) > 1:
            return [("spec.rules", f"at most 1 rule in {api_version} (got {len(rules)})")]
        return []
    return [
        (f"spec.rules[{i}].name", f"rule name {name!r} must be unique")
        for i, name in duplicates(rule.name for rule in rules)
        if name is not None
    ]


class TCPRoute(Resource):
    KIND = "TCPRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha2")
    spec: TCPRouteSpec

    def version_problems(self) -> list[tuple[str, str]]:
        return _l4_rule_problems(self.api_version, self.spec.rules)


class UDPRoute(Resource):
    KIND = "UDPRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha2")
    spec: TCPRouteSpec

    def version_problems(self) -> list[tuple[str, str]]:
        return _l4_rule_problems(self.api_version, self.spec.rules)


class TLSRouteSpec(CommonRouteSpec):
    hostnames: list[Hostname] = Field(default_factory=list, max_length=1024)
    rules: list[L4RouteRule] = Field(min_length=1, max_length=16)


class TLSRoute(Resource):
    KIND = "TLSRoute"
    GROUP = GROUP
    VERSIONS = ("v1alpha2", "v1alpha3", "v1")
    spec: TLSRouteSpec

    def version_problems(self) -> list[tuple[str, str]]:
        # v1 and v1alpha3 as v1 TCPRoute, and hostnames are required there, and not IPs.
        version = self.api_version.rpartition("/")[2]
        as_v1 = "gateway.networking.k8s.io/v1" if version == "v1alpha3" else self.api_version
        out = _l4_rule_problems(as_v1, self.spec.rules)
        if version in ("v1", "v1alpha3"):
            if not self.spec.hostnames:
                out.append(
                    ("spec.hostnames", f"at least 1 hostname is required in {self.api_version}")
                )
            out.extend(
                (f"spec.hostnames[{i}]", f"Hostnames cannot contain an IP ({h!r} is one)")
                for i, h in enumerate(self.spec.hostnames)
                if _is_ip(h)
            )
        return out


# --------------------------------------------------------------------------- ReferenceGrant


class ReferenceGrantFrom(KubeModel):
    group: Group
    kind: Kind
    namespace: NamespaceName


class ReferenceGrantTo(KubeModel):
    group: Group
    kind: Kind
    name: ObjectName | None = None


class ReferenceGrantSpec(KubeModel):
    from_: list[ReferenceGrantFrom] = Field(alias="from", min_length=1, max_length=16)
    to: list[ReferenceGrantTo] = Field(min_length=1, max_length=16)


class ReferenceGrant(Resource):
    KIND = "ReferenceGrant"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")  # v1.6.1 no longer serves v1alpha2
    spec: ReferenceGrantSpec


# --------------------------------------------------------------------------- BackendTLSPolicy


class LocalPolicyTargetReferenceWithSectionName(KubeModel):
    group: Group
    kind: Kind
    name: ObjectName
    section_name: SectionName | None = None


_SAN_URI = r"^(([^:/?#]+):)(//([^/?#]*))([^?#]*)(\?([^#]*))?(#(.*))?"  # RFC 3986 appendix B


class SubjectAltName(KubeModel):
    type: Literal["Hostname", "URI"]
    hostname: Hostname | None = None
    uri: (
        Annotated[str, Field(min_length=1, max_length=253), AfterValidator(matching(_SAN_URI))]
        | None
    ) = None

    @model_validator(mode="after")
    def _field_by_type(self) -> SubjectAltName:
        if self.type == "Hostname" and self.hostname is None:
            refuse(
                [((), "SubjectAltName element must contain Hostname, if Type is set to Hostname")]
            )
        if self.type != "Hostname" and self.hostname is not None:
            refuse(
                [
                    (
                        (),
                        "SubjectAltName element must not contain Hostname, if Type is not set to Hostname",
                    )
                ]
            )
        if self.type == "URI" and self.uri is None:
            refuse([((), "SubjectAltName element must contain URI, if Type is set to URI")])
        if self.type != "URI" and self.uri is not None:
            refuse([((), "SubjectAltName element must not contain URI, if Type is not set to URI")])
        return self


_WELL_KNOWN_CAS = (
    r"^(System|([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/"
    r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]))$"
)


class BackendTLSPolicyValidation(KubeModel):
    ca_certificate_refs: list[LocalObjectReference] = Field(default_factory=list, max_length=8)
    well_known_ca_certificates: (
        Annotated[
            str, Field(min_length=1, max_length=253), AfterValidator(matching(_WELL_KNOWN_CAS))
        ]
        | None
    ) = Field(default=None, alias="wellKnownCACertificates")
    hostname: PreciseHostname
    subject_alt_names: list[SubjectAltName] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _one_ca_source(self) -> BackendTLSPolicyValidation:
        refs, known = bool(self.ca_certificate_refs), self.well_known_ca_certificates is not None
        if refs and known:
            refuse([((), "must not contain both CACertificateRefs and WellKnownCACertificates")])
        if not refs and not known:
            refuse([((), "must specify either CACertificateRefs or WellKnownCACertificates")])
        return self


def _target_problems(
    refs: list[LocalPolicyTargetReferenceWithSectionName],
) -> Iterator[tuple[Loc, str]]:
    """The CRD's two rules on spec.targetRefs, at the reference that breaks them."""
    first: dict[tuple[str, str, str], bool] = {}
    seen: set[tuple[str, str, str, str]] = set()
    for i, ref in enumerate(refs):
        target = (ref.group, ref.kind, ref.name)
        section = ref.section_name or ""
        if first.setdefault(target, section != "") != (section != ""):
            yield (
                (i,),
                "sectionName must be specified when targetRefs includes 2 or more references "
                "to the same target (all of them, or none)",
            )
        if (*target, section) in seen:
            yield (
                (i,),
                "sectionName must be unique when targetRefs includes 2 or more references to "
                "the same target",
            )
        seen.add((*target, section))


class BackendTLSPolicySpec(KubeModel):
    target_refs: list[LocalPolicyTargetReferenceWithSectionName] = Field(
        min_length=1, max_length=16
    )
    validation: BackendTLSPolicyValidation
    options: Annotated[dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=16)] = (
        Field(default_factory=dict)
    )

    @field_validator("target_refs")
    @classmethod
    def _targets_distinct(
        cls, value: list[LocalPolicyTargetReferenceWithSectionName]
    ) -> list[LocalPolicyTargetReferenceWithSectionName]:
        if len(value) > 1:
            refuse(_target_problems(value))
        return value


class BackendTLSPolicy(Resource):
    """How the Gateway connects with TLS to a backend (Gateway API v1.4+ standard). Loaded
    and checked as the CRD does; egobs does not originate TLS to backends, so the
    translator does not apply it."""

    KIND = "BackendTLSPolicy"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha3")
    spec: BackendTLSPolicySpec


Route = HTTPRoute | GRPCRoute | TCPRoute | UDPRoute | TLSRoute
