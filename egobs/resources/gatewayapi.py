"""Gateway API kinds (gateway.networking.k8s.io), with the validation their CRDs enforce."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from egobs.resources._base import Duration, Hostname, Model, PortNumber, Resource

GROUP = "gateway.networking.k8s.io"

SectionName = Annotated[str, Field(min_length=1, max_length=253)]
HeaderName = Annotated[
    str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
]


# --------------------------------------------------------------------------- references


class ParentReference(Model):
    group: str = GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    name: Annotated[str, Field(min_length=1)]
    section_name: SectionName | None = None
    port: PortNumber | None = None


class BackendRef(Model):
    group: str = ""
    kind: str = "Service"
    name: Annotated[str, Field(min_length=1)]
    namespace: str | None = None
    port: PortNumber | None = None
    weight: Annotated[int, Field(ge=0, le=1_000_000)] = 1


class BackendObjectReference(Model):
    group: str = ""
    kind: str = "Service"
    name: Annotated[str, Field(min_length=1)]
    namespace: str | None = None
    port: PortNumber | None = None


class SecretObjectReference(Model):
    group: str = ""
    kind: str = "Secret"
    name: Annotated[str, Field(min_length=1)]
    namespace: str | None = None


class LocalObjectReference(Model):
    group: str
    kind: str
    name: str


class ParametersReference(Model):
    group: str
    kind: str
    name: str
    namespace: str | None = None


# --------------------------------------------------------------------------- GatewayClass


class GatewayClassSpec(Model):
    controller_name: Annotated[str, Field(min_length=1, max_length=253)]
    parameters_ref: ParametersReference | None = None
    description: str | None = None


class GatewayClass(Resource):
    KIND = "GatewayClass"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")
    NAMESPACED = False
    spec: GatewayClassSpec


# --------------------------------------------------------------------------- Gateway


class LabelSelectorRequirement(Model):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(Model):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        for k, v in self.match_labels.items():
            if labels.get(k) != v:
                return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In" and (not present or labels[req.key] not in req.values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


class RouteNamespaces(Model):
    from_: Literal["All", "Same", "Selector"] = Field(default="Same", alias="from")
    selector: LabelSelector | None = None

    @model_validator(mode="after")
    def _selector_with_from_selector(self) -> RouteNamespaces:
        if self.from_ == "Selector" and self.selector is None:
            raise ValueError("selector must be specified when from is Selector")
        return self


class RouteGroupKind(Model):
    group: str = GROUP
    kind: Annotated[str, Field(min_length=1)]


class AllowedRoutes(Model):
    namespaces: RouteNamespaces = Field(default_factory=RouteNamespaces)
    kinds: list[RouteGroupKind] | None = Field(default=None, max_length=8)


class GatewayTLSConfig(Model):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: list[SecretObjectReference] = Field(default_factory=list, max_length=64)
    options: dict[str, str] = Field(default_factory=dict)
    frontend_validation: dict[str, Any] | None = None


class Listener(Model):
    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        ),
    ]
    hostname: Hostname | None = None
    port: PortNumber
    protocol: Annotated[str, Field(min_length=1, max_length=255)]
    tls: GatewayTLSConfig | None = None
    allowed_routes: AllowedRoutes = Field(default_factory=AllowedRoutes)

    @model_validator(mode="after")
    def _tls_by_protocol(self) -> Listener:
        if self.protocol in ("HTTP", "TCP", "UDP") and self.tls is not None:
            raise ValueError(f"tls must not be specified for protocol {self.protocol}")
        if self.protocol == "HTTPS" and (self.tls is None or self.tls.mode != "Terminate"):
            raise ValueError("tls mode must be Terminate for protocol HTTPS")
        if self.protocol in ("TCP", "UDP") and self.hostname is not None:
            raise ValueError(f"hostname must not be specified for protocol {self.protocol}")
        if self.protocol == "HTTPS" and self.tls is not None and not self.tls.certificate_refs:
            raise ValueError("tls.certificateRefs must be specified for protocol HTTPS")
        return self


class GatewayAddress(Model):
    type: str = "IPAddress"
    value: Annotated[str, Field(min_length=1)]


class GatewayInfrastructure(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    parameters_ref: LocalObjectReference | None = None


class GatewaySpec(Model):
    gateway_class_name: Annotated[str, Field(min_length=1)]
    listeners: list[Listener] = Field(min_length=1, max_length=64)
    addresses: list[GatewayAddress] = Field(default_factory=list, max_length=16)
    infrastructure: GatewayInfrastructure | None = None
    backend_tls: dict[str, Any] | None = Field(default=None, alias="backendTLS")
    allowed_listeners: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _unique_listener_names(self) -> GatewaySpec:
        seen: set[str] = set()
        for listener in self.listeners:
            if listener.name in seen:
                raise ValueError(
                    f"listener name {listener.name!r} must be unique within the Gateway"
                )
            seen.add(listener.name)
        return self


class Gateway(Resource):
    KIND = "Gateway"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")
    spec: GatewaySpec


# --------------------------------------------------------------------------- HTTPRoute


class HTTPPathMatch(Model):
    type: Literal["Exact", "PathPrefix", "RegularExpression"] = "PathPrefix"
    value: Annotated[str, Field(max_length=1024)] = "/"

    @model_validator(mode="after")
    def _absolute(self) -> HTTPPathMatch:
        if self.type != "RegularExpression":
            if not self.value.startswith("/"):
                raise ValueError("value must be an absolute path (start with '/')")
            if (
                "//" in self.value
                or "/./" in self.value
                or "/../" in self.value
                or "#" in self.value
            ):
                raise ValueError("value must not contain '//', '/./', '/../' or '#'")
        return self


class HTTPHeaderMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: Annotated[str, Field(max_length=4096)]


class HTTPQueryParamMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: Annotated[str, Field(min_length=1, max_length=256)]
    value: Annotated[str, Field(min_length=1, max_length=1024)]


HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


class HTTPRouteMatch(Model):
    path: HTTPPathMatch | None = None
    headers: list[HTTPHeaderMatch] = Field(default_factory=list, max_length=16)
    query_params: list[HTTPQueryParamMatch] = Field(default_factory=list, max_length=16)
    method: HTTPMethod | None = None


class HTTPHeader(Model):
    name: HeaderName
    value: Annotated[str, Field(max_length=4096)]


class HTTPHeaderFilter(Model):
    set: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    add: list[HTTPHeader] = Field(default_factory=list, max_length=16)
    remove: list[HeaderName] = Field(default_factory=list, max_length=16)


_ORIGIN = (
    r"(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)"
)
CORSOrigin = Annotated[str, Field(min_length=1, max_length=253, pattern=_ORIGIN)]
CORSMethod = Literal[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*"
]


class HTTPCORSFilter(Model):
    """The CORS filter (HTTPRoute v1.6.1): what cross-origin requests the route allows."""

    allow_origins: list[CORSOrigin] = Field(default_factory=list, max_length=64)
    allow_credentials: bool | None = None
    allow_methods: list[CORSMethod] = Field(default_factory=list, max_length=9)
    allow_headers: list[HeaderName] = Field(default_factory=list, max_length=64)
    expose_headers: list[HeaderName] = Field(default_factory=list, max_length=64)
    max_age: Annotated[int, Field(ge=1, le=2**31 - 1)] = 5

    @model_validator(mode="after")
    def _wildcard_alone(self) -> HTTPCORSFilter:
        for name, values in (
            ("allowOrigins", self.allow_origins),
            ("allowMethods", self.allow_methods),
            ("allowHeaders", self.allow_headers),
        ):
            if "*" in values and len(values) > 1:
                raise ValueError(f"{name} cannot contain '*' alongside other values")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} is a set: remove the duplicate values")
        return self


class HTTPPathModifier(Model):
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    replace_full_path: Annotated[str, Field(max_length=1024)] | None = None
    replace_prefix_match: Annotated[str, Field(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _field_by_type(self) -> HTTPPathModifier:
        if self.type == "ReplaceFullPath" and (
            self.replace_full_path is None or self.replace_prefix_match is not None
        ):
            raise ValueError(
                "replaceFullPath (and only it) must be set when type is ReplaceFullPath"
            )
        if self.type == "ReplacePrefixMatch" and (
            self.replace_prefix_match is None or self.replace_full_path is not None
        ):
            raise ValueError(
                "replacePrefixMatch (and only it) must be set when type is ReplacePrefixMatch"
            )
        return self


class HTTPRequestRedirectFilter(Model):
    scheme: Literal["http", "https"] | None = None
    hostname: Hostname | None = None
    path: HTTPPathModifier | None = None
    port: PortNumber | None = None
    status_code: Literal[301, 302, 303, 307, 308] = 302


class HTTPURLRewriteFilter(Model):
    hostname: Hostname | None = None
    path: HTTPPathModifier | None = None


class Fraction(Model):
    numerator: Annotated[int, Field(ge=0)]
    denominator: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _proper(self) -> Fraction:
        if self.numerator > self.denominator:
            raise ValueError("numerator must be less than or equal to denominator")
        return self


class HTTPRequestMirrorFilter(Model):
    backend_ref: BackendObjectReference
    percent: Annotated[int, Field(ge=0, le=100)] | None = None
    fraction: Fraction | None = None

    @model_validator(mode="after")
    def _one_of(self) -> HTTPRequestMirrorFilter:
        if self.percent is not None and self.fraction is not None:
            raise ValueError("only one of percent or fraction may be specified")
        return self


class HTTPExternalAuthHTTP(Model):
    path: Annotated[str, Field(max_length=1024)] | None = None
    allowed_headers: list[str] = Field(default_factory=list, max_length=64)
    allowed_response_headers: list[str] = Field(default_factory=list, max_length=64)


class HTTPExternalAuthGRPC(Model):
    allowed_headers: list[str] = Field(default_factory=list, max_length=64)


class HTTPExternalAuthForwardBody(Model):
    max_size: int | None = None


class HTTPExternalAuthFilter(Model):
    """ExternalAuth (experimental in v1.6): loaded so the route can say it is unsupported."""

    protocol: Literal["HTTP", "GRPC"]
    backend_ref: BackendObjectReference
    http: HTTPExternalAuthHTTP | None = None
    grpc: HTTPExternalAuthGRPC | None = None
    forward_body: HTTPExternalAuthForwardBody | None = None

    @model_validator(mode="after")
    def _protocol_settings(self) -> HTTPExternalAuthFilter:
        if (self.protocol == "GRPC") != (self.grpc is not None):
            raise ValueError("grpc must be set exactly when protocol is GRPC")
        if (self.protocol == "HTTP") != (self.http is not None):
            raise ValueError("http must be set exactly when protocol is HTTP")
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


def _check_filter_fields(obj: Model, filter_type: str, allowed: dict[str, str]) -> None:
    wanted = allowed.get(filter_type)
    for ftype, attr in allowed.items():
        present = getattr(obj, attr, None) is not None
        if ftype == filter_type and not present:
            raise ValueError(f"filter of type {filter_type} needs the field for it set")
        if ftype != filter_type and present:
            raise ValueError(f"field for {ftype} must not be set on a filter of type {filter_type}")
    if wanted is None:
        raise ValueError(f"unsupported filter type {filter_type!r}")


class HTTPRouteFilter(Model):
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


def _check_filter_list(filters: list[HTTPRouteFilter]) -> None:
    """The CRD's rules on one list of filters (a rule's, or a backendRef's)."""
    types: list[str] = [f.type for f in filters]
    if "RequestRedirect" in types and "URLRewrite" in types:
        raise ValueError("RequestRedirect and URLRewrite filters cannot be used together")
    for once in _AT_MOST_ONCE:
        if types.count(once) > 1:
            raise ValueError(f"{once} filter may appear at most once in a list of filters")


def _prefix_rewrite(filters: list[HTTPRouteFilter]) -> bool:
    return any(
        (
            f.request_redirect
            and f.request_redirect.path
            and f.request_redirect.path.type == "ReplacePrefixMatch"
        )
        or (
            f.url_rewrite and f.url_rewrite.path and f.url_rewrite.path.type == "ReplacePrefixMatch"
        )
        for f in filters
    )


class HTTPBackendRef(BackendRef):
    filters: list[HTTPRouteFilter] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _filter_combinations(self) -> HTTPBackendRef:
        _check_filter_list(self.filters)
        return self


class HTTPRouteTimeouts(Model):
    request: Duration | None = None
    backend_request: Duration | None = None


class HTTPRouteRetry(Model):
    """Retries of a failed backend request (GEP-1731): ``codes`` are the response statuses
    that count as failed, ``attempts`` the most retries, ``backoff`` the least wait."""

    codes: list[Annotated[int, Field(ge=400, le=599)]] = Field(default_factory=list)
    attempts: Annotated[int, Field(ge=1)] | None = None
    backoff: Duration | None = None

    @model_validator(mode="after")
    def _codes_are_a_set(self) -> HTTPRouteRetry:
        if len(set(self.codes)) != len(self.codes):
            raise ValueError("codes must not repeat a status code (the list is a set)")
        return self


class CookieConfig(Model):
    lifetime_type: Literal["Permanent", "Session"] = "Session"


class SessionPersistence(Model):
    """Session persistence (GEP-1619): requests carrying the same session cookie or header
    go to the same backend endpoint."""

    session_name: Annotated[str, Field(max_length=128)] | None = None
    absolute_timeout: Duration | None = None
    type: Literal["Cookie", "Header"] = "Cookie"
    cookie_config: CookieConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SessionPersistence:
        if self.cookie_config is not None and self.type != "Cookie":
            raise ValueError("cookieConfig can only be set with type Cookie")
        permanent = (
            self.cookie_config is not None and self.cookie_config.lifetime_type == "Permanent"
        )
        if permanent and self.absolute_timeout is None:
            raise ValueError(
                "absoluteTimeout must be specified when cookie lifetimeType is Permanent"
            )
        return self


def _default_matches() -> list[HTTPRouteMatch]:
    return [HTTPRouteMatch(path=HTTPPathMatch())]


class HTTPRouteRule(Model):
    name: str | None = None
    matches: list[HTTPRouteMatch] = Field(default_factory=_default_matches, max_length=64)
    filters: list[HTTPRouteFilter] = Field(default_factory=list, max_length=16)
    backend_refs: list[HTTPBackendRef] = Field(default_factory=list, max_length=16)
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    session_persistence: SessionPersistence | None = None

    @model_validator(mode="after")
    def _filter_combinations(self) -> HTTPRouteRule:
        _check_filter_list(self.filters)
        if self.backend_refs and any(f.type == "RequestRedirect" for f in self.filters):
            raise ValueError("RequestRedirect filter must not be used together with backendRefs")
        one_prefix_match = (
            len(self.matches) == 1
            and self.matches[0].path is not None
            and self.matches[0].path.type == "PathPrefix"
        )
        if not one_prefix_match and (
            _prefix_rewrite(self.filters)
            or any(_prefix_rewrite(b.filters) for b in self.backend_refs)
        ):
            raise ValueError(
                "ReplacePrefixMatch needs exactly one match whose path type is PathPrefix"
            )
        return self


class CommonRouteSpec(Model):
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=32)


class HTTPRouteSpec(CommonRouteSpec):
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    rules: list[HTTPRouteRule] = Field(default_factory=lambda: [HTTPRouteRule()], max_length=16)


class HTTPRoute(Resource):
    KIND = "HTTPRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1beta1")
    spec: HTTPRouteSpec


# --------------------------------------------------------------------------- GRPCRoute


class GRPCMethodMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    service: Annotated[str, Field(max_length=1024)] | None = None
    method: Annotated[str, Field(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _one_needed(self) -> GRPCMethodMatch:
        if self.service is None and self.method is None:
            raise ValueError("one or both of service or method must be specified")
        return self


class GRPCHeaderMatch(Model):
    type: Literal["Exact", "RegularExpression"] = "Exact"
    name: HeaderName
    value: Annotated[str, Field(min_length=1, max_length=4096)]


class GRPCRouteMatch(Model):
    method: GRPCMethodMatch | None = None
    headers: list[GRPCHeaderMatch] = Field(default_factory=list, max_length=16)


_GRPC_FILTER_FIELDS = {
    "RequestHeaderModifier": "request_header_modifier",
    "ResponseHeaderModifier": "response_header_modifier",
    "RequestMirror": "request_mirror",
    "ExtensionRef": "extension_ref",
}


class GRPCRouteFilter(Model):
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


class GRPCBackendRef(BackendRef):
    filters: list[GRPCRouteFilter] = Field(default_factory=list, max_length=16)


class GRPCRouteRule(Model):
    name: str | None = None
    matches: list[GRPCRouteMatch] = Field(default_factory=list, max_length=64)
    filters: list[GRPCRouteFilter] = Field(default_factory=list, max_length=16)
    backend_refs: list[GRPCBackendRef] = Field(default_factory=list, max_length=16)
    session_persistence: SessionPersistence | None = None


class GRPCRouteSpec(CommonRouteSpec):
    hostnames: list[Hostname] = Field(default_factory=list, max_length=16)
    rules: list[GRPCRouteRule] = Field(default_factory=list, max_length=16)


class GRPCRoute(Resource):
    KIND = "GRPCRoute"
    GROUP = GROUP
    VERSIONS = ("v1", "v1alpha2")
    spec: GRPCRouteSpec


# --------------------------------------------------------------------------- L4 routes


class L4RouteRule(Model):
    name: str | None = None
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
    out = []
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.name is not None:
            if rule.name in seen:
                out.append((f"spec.rules[{i}].name", f"rule name {rule.name!r} must be unique"))
            seen.add(rule.name)
    return out


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
        # v1 and v1alpha3 as v1 TCPRoute, and hostnames are required there.
        version = self.api_version.rpartition("/")[2]
        as_v1 = "gateway.networking.k8s.io/v1" if version == "v1alpha3" else self.api_version
        out = _l4_rule_problems(as_v1, self.spec.rules)
        if version in ("v1", "v1alpha3") and not self.spec.hostnames:
            out.append(("spec.hostnames", f"at least 1 hostname is required in {self.api_version}"))
        return out


# --------------------------------------------------------------------------- ReferenceGrant


class ReferenceGrantFrom(Model):
    group: str
    kind: Annotated[str, Field(min_length=1)]
    namespace: Annotated[str, Field(min_length=1)]


class ReferenceGrantTo(Model):
    group: str
    kind: Annotated[str, Field(min_length=1)]
    name: str | None = None


class ReferenceGrantSpec(Model):
    from_: list[ReferenceGrantFrom] = Field(alias="from", min_length=1, max_length=16)
    to: list[ReferenceGrantTo] = Field(min_length=1, max_length=16)


class ReferenceGrant(Resource):
    KIND = "ReferenceGrant"
    GROUP = GROUP
    VERSIONS = ("v1beta1", "v1alpha2", "v1")
    spec: ReferenceGrantSpec


Route = HTTPRoute | GRPCRoute | TCPRoute | UDPRoute | TLSRoute
