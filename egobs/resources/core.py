"""Core Kubernetes kinds egobs reads: Namespace, Service, EndpointSlice, Secret.

Without a cluster, Services and EndpointSlices are how a user states where backends live.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from egobs.resources._base import KubeModel, Loc, PortNumber, Resource, refuse


class Namespace(Resource):
    KIND = "Namespace"
    VERSIONS = ("v1",)
    NAMESPACED = False
    NAME_RULE = "dns1123-label"
    spec: dict[str, Any] | None = None


class ServicePort(KubeModel):
    name: str | None = None
    port: PortNumber
    target_port: int | str | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None
    node_port: int | None = None


class ServiceSpec(KubeModel):
    ports: list[ServicePort] = Field(default_factory=list)
    type: str = "ClusterIP"
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    selector: dict[str, str] | None = None
    external_name: str | None = None
    ip_families: list[str] | None = None
    ip_family_policy: str | None = None
    session_affinity: str | None = None
    internal_traffic_policy: str | None = None
    external_traffic_policy: str | None = None


class Service(Resource):
    KIND = "Service"
    VERSIONS = ("v1",)
    NAME_RULE = "dns1035-label"
    spec: ServiceSpec = Field(default_factory=ServiceSpec)


class EndpointConditions(KubeModel):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class EndpointSliceEndpoint(KubeModel):
    addresses: list[str] = Field(min_length=1, max_length=100)
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None
    target_ref: dict[str, Any] | None = None
    hints: dict[str, Any] | None = None


class EndpointPort(KubeModel):
    name: str | None = None
    port: PortNumber | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    app_protocol: str | None = None


SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class EndpointSlice(Resource):
    KIND = "EndpointSlice"
    GROUP = "discovery.k8s.io"
    VERSIONS = ("v1",)
    address_type: Literal["IPv4", "IPv6", "FQDN"]
    endpoints: list[EndpointSliceEndpoint] = Field(default_factory=list, max_length=1000)
    ports: list[EndpointPort] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _owned_by_service(self) -> EndpointSlice:
        if SERVICE_NAME_LABEL not in self.metadata.labels:
            # Named at the labels when there are some, else at metadata (where they go).
            where: Loc = ("metadata", "labels") if self.metadata.labels else ("metadata",)
            refuse([(where, f"must carry the label {SERVICE_NAME_LABEL} naming the Service")])
        return self

    @property
    def service_name(self) -> str:
        return self.metadata.labels[SERVICE_NAME_LABEL]


class Secret(Resource):
    KIND = "Secret"
    VERSIONS = ("v1",)
    type: str = "Opaque"
    data: dict[str, str] = Field(default_factory=dict)
    string_data: dict[str, str] = Field(default_factory=dict)
    immutable: bool | None = None

    @model_validator(mode="after")
    def _data_is_base64(self) -> Secret:
        _check_base64(self.data, "data")
        return self

    def value(self, key: str) -> str | None:
        """The decoded value of ``key`` (stringData wins, as the API server merges it)."""
        if key in self.string_data:
            return self.string_data[key]
        raw = self.data.get(key)
        if raw is None:
            return None
        return base64.b64decode(raw).decode("utf-8", errors="replace")


class ConfigMap(Resource):
    """Configuration data; egobs reads the ``ca.crt`` key of the ConfigMaps a
    BackendTLSPolicy names as its CA certificates."""

    KIND = "ConfigMap"
    VERSIONS = ("v1",)
    data: dict[str, str] = Field(default_factory=dict)
    binary_data: dict[str, str] = Field(default_factory=dict)
    immutable: bool | None = None

    @model_validator(mode="after")
    def _binary_data_is_base64(self) -> ConfigMap:
        _check_base64(self.binary_data, "binaryData")
        return self


def _check_base64(values: dict[str, str], field: str) -> None:
    problems: list[tuple[Loc, str]] = []
    for key, value in values.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            problems.append(((field, key), "is not valid base64"))
    refuse(problems)


Labels = Annotated[dict[str, str], Field(default_factory=dict)]
