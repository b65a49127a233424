"""Shared pieces of the resource models: strict base model, metadata, provenance."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    """Strict model: unknown fields are errors, spec names are camelCase on the wire."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_default=False,
    )


class ObjectMeta(Model):
    # Fields a `kubectl get -o yaml` dump carries are accepted so such dumps load as-is.
    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int = 1
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    finalizers: list[str] | None = None
    owner_references: list[dict[str, Any]] | None = None
    managed_fields: list[dict[str, Any]] | None = None
    generate_name: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """Where an object came from: file path, 1-based document number and line."""

    file: str
    doc: int
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line} (doc {self.doc})"


class Resource(Model):
    """A top-level Kubernetes object."""

    KIND: ClassVar[str] = ""
    GROUP: ClassVar[str] = ""
    VERSIONS: ClassVar[tuple[str, ...]] = ()
    NAMESPACED: ClassVar[bool] = True
    # How Kubernetes validates this kind's names (see name_problems).
    NAME_RULE: ClassVar[NameRule] = "dns1123-subdomain"

    api_version: str
    kind: str
    metadata: ObjectMeta
    # Status present in the input (e.g. a cluster dump) is ignored, never trusted.
    status: dict[str, Any] | None = Field(default=None, exclude=True)

    _source: Source | None = PrivateAttr(default=None)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.KIND, self.namespace, self.name)

    @property
    def source(self) -> Source | None:
        return self._source

    def version_problems(self) -> list[tuple[str, str]]:
        """(field path, message) for what this object's apiVersion forbids beyond the
        fields all its served versions share (a kind models the union of its versions)."""
        return []

    def ref(self) -> str:
        """``Kind/ns/name`` (``Kind/name`` for cluster-scoped kinds)."""
        if self.NAMESPACED:
            return f"{self.KIND}/{self.namespace}/{self.name}"
        return f"{self.KIND}/{self.name}"


# --------------------------------------------------------------------------- names

NameRule = Literal["dns1123-subdomain", "dns1123-label", "dns1035-label"]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_NAME_RULES: dict[str, tuple[re.Pattern[str], int, str]] = {
    "dns1123-subdomain": (
        _DNS1123_SUBDOMAIN,
        253,
        "lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
    ),
    "dns1123-label": (
        _DNS1123_LABEL,
        63,
        "lower-case letters, digits and '-', starting and ending with a letter or digit",
    ),
    "dns1035-label": (
        _DNS1035_LABEL,
        63,
        "lower-case letters, digits and '-', starting with a letter, ending with a letter or digit",
    ),
}


def name_problem(value: str, rule: NameRule) -> str | None:
    """Why ``value`` is not a valid name under ``rule`` (Kubernetes' own rules), or None.

    These rules are what keeps derived names unambiguous: no '/' can appear in a name, so
    ``service/<ns>/<name>/<port>`` names one Service port only."""
    pattern, limit, wanted = _NAME_RULES[rule]
    if len(value) > limit:
        return f"{value[:40]!r}... is longer than {limit} characters"
    if not pattern.match(value):
        return f"invalid name {value!r}: want {wanted} (at most {limit})"
    return None


# --------------------------------------------------------------------------- common types

_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _check_duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"invalid duration {value!r}: want e.g. 10s, 1m30s, 500ms")
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]


def duration_seconds(value: str) -> float:
    """Seconds in a Gateway API duration (``1h2m3s4ms``)."""
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _check_hostname(value: str) -> str:
    if len(value) > 253 or not _HOSTNAME.match(value):
        raise ValueError(
            f"invalid hostname {value!r}: want a lower-case DNS name, optionally prefixed by '*.'"
        )
    return value


Hostname = Annotated[str, AfterValidator(_check_hostname)]

PortNumber = Annotated[int, Field(ge=1, le=65535)]
