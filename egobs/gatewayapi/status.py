"""Kubernetes-style status conditions and the Gateway API reason vocabulary.

Statuses are plain dicts and lists with camelCase keys, ready to be written back to the API
server or printed, so nothing downstream needs to know about our internal types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from egobs.resources import Resource

# Condition types.
ACCEPTED = "Accepted"
PROGRAMMED = "Programmed"
RESOLVED_REFS = "ResolvedRefs"
CONFLICTED = "Conflicted"
PARTIALLY_INVALID = "PartiallyInvalid"
# Negative polarity: present (True) only on listeners whose TLS settings overlap.
OVERLAPPING_TLS_CONFIG = "OverlappingTLSConfig"

# Reasons shared by several kinds.
R_ACCEPTED = "Accepted"
R_PROGRAMMED = "Programmed"
R_RESOLVED_REFS = "ResolvedRefs"
R_INVALID = "Invalid"
R_INVALID_PARAMETERS = "InvalidParameters"
R_UNSUPPORTED_VALUE = "UnsupportedValue"
R_REF_NOT_PERMITTED = "RefNotPermitted"

# Gateway.
R_LISTENERS_NOT_VALID = "ListenersNotValid"
R_UNSUPPORTED_ADDRESS = "UnsupportedAddress"
R_ADDRESS_NOT_USABLE = "AddressNotUsable"

# Listener.
R_UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"
R_HOSTNAME_CONFLICT = "HostnameConflict"
R_PROTOCOL_CONFLICT = "ProtocolConflict"
R_NO_CONFLICTS = "NoConflicts"
R_INVALID_CERTIFICATE_REF = "InvalidCertificateRef"
R_INVALID_ROUTE_KINDS = "InvalidRouteKinds"
R_OVERLAPPING_HOSTNAMES = "OverlappingHostnames"
# Not in the spec's list (it allows other reasons); Envoy Gateway's, for ResolvedRefs=False
# on a listener that still serves the certificateRefs that are usable.
R_PARTIALLY_INVALID_CERTIFICATE_REF = "PartiallyInvalidCertificateRef"
# Client certificate validation (Gateway spec.tls.frontend), per listener.
R_NO_VALID_CA_CERTIFICATE = "NoValidCACertificate"
R_INVALID_CA_CERTIFICATE_REF = "InvalidCACertificateRef"
R_INVALID_CA_CERTIFICATE_KIND = "InvalidCACertificateKind"
# The Gateway's client certificate towards backends (spec.tls.backend).
R_INVALID_CLIENT_CERTIFICATE_REF = "InvalidClientCertificateRef"

# Route.
R_NOT_ALLOWED_BY_LISTENERS = "NotAllowedByListeners"
R_NO_MATCHING_LISTENER_HOSTNAME = "NoMatchingListenerHostname"
R_NO_MATCHING_PARENT = "NoMatchingParent"
R_BACKEND_NOT_FOUND = "BackendNotFound"
R_INVALID_KIND = "InvalidKind"
R_UNSUPPORTED_PROTOCOL_ROUTE = "UnsupportedProtocol"
# Not in the spec's list; Envoy Gateway uses it and it says exactly what is wrong.
R_PORT_NOT_SPECIFIED = "PortNotSpecified"


def oldest_first(obj: Resource) -> tuple[str, str, str]:
    """The order in which objects of one kind win a conflict (GEP-713, and the route
    precedence of the spec): oldest creationTimestamp first, then namespace/name."""
    return (obj.metadata.creation_timestamp or "", obj.namespace, obj.name)


def rfc3339_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem to report: the condition reason plus a human message."""

    reason: str
    message: str


class Conditions:
    """Builds condition dicts sharing one transition time."""

    __slots__ = ("now",)

    def __init__(self, now: str) -> None:
        self.now = now

    def make(
        self, type_: str, ok: bool, reason: str, message: str, generation: int
    ) -> dict[str, Any]:
        return {
            "type": type_,
            "status": "True" if ok else "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": self.now,
            "observedGeneration": generation,
        }

    def from_issues(
        self,
        type_: str,
        issues: list[Issue],
        ok_reason: str,
        ok_message: str,
        generation: int,
    ) -> dict[str, Any]:
        """True with ``ok_reason`` when there are no issues, else False with the first
        issue's reason and every message, so one look at the status shows all problems."""
        if not issues:
            return self.make(type_, True, ok_reason, ok_message, generation)
        return self.make(type_, False, issues[0].reason, join_messages(issues), generation)


def join_messages(issues: list[Issue]) -> str:
    seen: list[str] = []
    for issue in issues:
        if issue.message not in seen:
            seen.append(issue.message)
    return "; ".join(seen)
