"""Typed models of the input kinds and YAML loading with precise errors."""

from egobs.resources._base import ObjectMeta, Resource, Source, duration_seconds
from egobs.resources.core import ConfigMap, EndpointSlice, Namespace, Secret, Service
from egobs.resources.envoygateway import Backend, EnvoyProxy
from egobs.resources.gatewayapi import (
    BackendTLSPolicy,
    Gateway,
    GatewayClass,
    GRPCRoute,
    HTTPRoute,
    ListenerSet,
    ReferenceGrant,
    Route,
    TCPRoute,
    TLSRoute,
    UDPRoute,
)
from egobs.resources.loader import (
    KINDS,
    LoadedText,
    LoadError,
    ResourceError,
    Resources,
    load_documents,
    load_paths,
    load_text,
    parse_object,
)

__all__ = [
    "KINDS",
    "Backend",
    "BackendTLSPolicy",
    "ConfigMap",
    "EndpointSlice",
    "EnvoyProxy",
    "GRPCRoute",
    "Gateway",
    "GatewayClass",
    "HTTPRoute",
    "ListenerSet",
    "LoadError",
    "LoadedText",
    "Namespace",
    "ObjectMeta",
    "ReferenceGrant",
    "Resource",
    "ResourceError",
    "Resources",
    "Route",
    "Secret",
    "Service",
    "Source",
    "TCPRoute",
    "TLSRoute",
    "UDPRoute",
    "duration_seconds",
    "load_documents",
    "load_paths",
    "load_text",
    "parse_object",
]
