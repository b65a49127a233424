"""Lookups over one set of resources, built once per translation.

Everything a route or listener needs to resolve is a dict lookup here, so translation stays
linear in the number of objects.
"""

from __future__ import annotations

from collections import defaultdict

from egobs.resources import (
    Backend,
    ConfigMap,
    EnvoyProxy,
    Gateway,
    GatewayClass,
    Resources,
    Secret,
    Service,
)

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

GatewayKey = tuple[str, str]


class ReferenceGrants:
    """Cross-namespace permission checks (ReferenceGrant lives in the target namespace)."""

    def __init__(self, resources: Resources) -> None:
        # (to namespace, from group, from kind, from namespace) -> [(to group, to kind, to name)]
        self._grants: dict[tuple[str, str, str, str], list[tuple[str, str, str | None]]] = (
            defaultdict(list)
        )
        for grant in resources.reference_grants:
            tos = [(t.group, t.kind, t.name or None) for t in grant.spec.to]
            for frm in grant.spec.from_:
                self._grants[(grant.namespace, frm.group, frm.kind, frm.namespace)].extend(tos)
        self._cache: dict[tuple[str, str, str, str, str, str, str], bool] = {}

    def allowed(
        self,
        from_group: str,
        from_kind: str,
        from_namespace: str,
        to_group: str,
        to_kind: str,
        to_namespace: str,
        to_name: str,
    ) -> bool:
        if from_namespace == to_namespace:
            return True
        key = (from_group, from_kind, from_namespace, to_group, to_kind, to_namespace, to_name)
        hit = self._cache.get(key)
        if hit is None:
            hit = any(
                g == to_group and k == to_kind and (n is None or n == to_name)
                for g, k, n in self._grants.get(
                    (to_namespace, from_group, from_kind, from_namespace), ()
                )
            )
            self._cache[key] = hit
        return hit


class Index:
    """Resources by key, plus derived views (namespace labels, ReferenceGrants).

    EndpointSlices are not here: they feed the endpoint table
    (:class:`egobs.gatewayapi.endpoints.EndpointTable`), which follows them on its own.
    """

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.gateway_classes: dict[str, GatewayClass] = {
            c.name: c for c in resources.gateway_classes
        }
        self.gateways: dict[GatewayKey, Gateway] = {
            (g.namespace, g.name): g for g in resources.gateways
        }
        self.services: dict[tuple[str, str], Service] = {
            (s.namespace, s.name): s for s in resources.services
        }
        self.secrets: dict[tuple[str, str], Secret] = {
            (s.namespace, s.name): s for s in resources.secrets
        }
        self.config_maps: dict[tuple[str, str], ConfigMap] = {
            (c.namespace, c.name): c for c in resources.config_maps
        }
        self.backends: dict[tuple[str, str], Backend] = {
            (b.namespace, b.name): b for b in resources.backends
        }
        self.envoy_proxies: dict[tuple[str, str], EnvoyProxy] = {
            (p.namespace, p.name): p for p in resources.envoy_proxies
        }
        self._namespace_labels: dict[str, dict[str, str]] = {
            ns.name: {**ns.metadata.labels, NAMESPACE_NAME_LABEL: ns.name}
            for ns in resources.namespaces
        }
        self.grants = ReferenceGrants(resources)

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """Labels of a namespace; Kubernetes always sets ``kubernetes.io/metadata.name``, so a
        namespace without a Namespace object still has that one."""
        labels = self._namespace_labels.get(namespace)
        if labels is None:
            labels = {NAMESPACE_NAME_LABEL: namespace}
            self._namespace_labels[namespace] = labels
        return labels
