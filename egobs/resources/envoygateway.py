"""Envoy Gateway extension kinds (gateway.envoyproxy.io/v1alpha1): Backend, EnvoyProxy."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from egobs.resources._base import KubeModel, PortNumber, Resource
from egobs.resources.telemetry import ProxyTelemetry

GROUP = "gateway.envoyproxy.io"


class FQDNEndpoint(KubeModel):
    hostname: Annotated[str, Field(min_length=1, max_length=253)]
    port: PortNumber


class IPEndpoint(KubeModel):
    address: Annotated[str, Field(min_length=3, max_length=45)]
    port: PortNumber


class UnixSocket(KubeModel):
    path: Annotated[str, Field(min_length=1, max_length=108)]


class BackendEndpoint(KubeModel):
    fqdn: FQDNEndpoint | None = None
    ip: IPEndpoint | None = None
    unix: UnixSocket | None = None
    zone: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BackendEndpoint:
        if sum(x is not None for x in (self.fqdn, self.ip, self.unix)) != 1:
            raise ValueError("exactly one of fqdn, ip or unix must be specified")
        return self


AppProtocolType = Literal[
    "gateway.envoyproxy.io/h2c", "gateway.envoyproxy.io/ws", "gateway.envoyproxy.io/wss"
]


class BackendSpec(KubeModel):
    type: Literal["Endpoints", "DynamicResolver"] = "Endpoints"
    endpoints: list[BackendEndpoint] = Field(default_factory=list, max_length=64)
    app_protocols: list[AppProtocolType] = Field(default_factory=list)
    fallback: bool | None = None
    tls: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_address_kind(self) -> BackendSpec:
        kinds = {("fqdn" if e.fqdn else "ip" if e.ip else "unix") for e in self.endpoints}
        if "fqdn" in kinds and len(kinds) > 1:
            raise ValueError("fqdn endpoints cannot be mixed with ip or unix endpoints")
        if self.type == "Endpoints" and not self.endpoints:
            raise ValueError("endpoints must be specified when type is Endpoints")
        return self


class Backend(Resource):
    KIND = "Backend"
    GROUP = GROUP
    VERSIONS = ("v1alpha1",)
    spec: BackendSpec


# EnvoyProxy: ``telemetry`` is typed (egobs.resources.telemetry); the other sub-structures
# are not translated yet and kept loose, but every top-level spec field is named, so a typo
# is still an error.
class EnvoyProxySpec(KubeModel):
    provider: dict[str, Any] | None = None
    logging: dict[str, Any] | None = None
    telemetry: ProxyTelemetry | None = None
    bootstrap: dict[str, Any] | None = None
    concurrency: int | None = None
    routing_type: str | None = None
    extra_args: list[str] | None = None
    merge_gateways: bool | None = None
    shutdown: dict[str, Any] | None = None
    filter_order: list[dict[str, Any]] | None = None
    backend_tls: dict[str, Any] | None = Field(default=None, alias="backendTLS")
    ip_family: str | None = None
    preserve_route_order: bool | None = None
    disable_luajit: bool | None = None
    lua_validation: str | None = None


class EnvoyProxy(Resource):
    KIND = "EnvoyProxy"
    GROUP = GROUP
    VERSIONS = ("v1alpha1",)
    spec: EnvoyProxySpec = Field(default_factory=EnvoyProxySpec)
