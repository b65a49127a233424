"""Shared pieces of the resource models: base models, metadata, provenance."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError


class Model(BaseModel):
    """Strict model: unknown fields are errors, spec names are camelCase on the wire."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_default=False,
    )


# --------------------------------------------------------------------------- Kubernetes input

# JSON numbers the API server takes for an integer: go-openapi's type check accepts a
# float with no fractional part (``80.0``) where the schema says integer.
_MAX_EXACT_FLOAT = 2**53


def _json_number(value: Any) -> Any:
    if value.__class__ is float and value.is_integer() and abs(value) < _MAX_EXACT_FLOAT:
        return int(value)
    return value


class KubeModel(Model):
    """A Kubernetes object or a part of one, read as the API server reads it.

    * Types are strict, as in JSON: ``"80"`` is not an integer, ``"true"`` not a boolean
      (pydantic's lax mode would convert both); an integral number written as a float
      (``80.0``) is an integer, as the API server's schema check allows.
    * ``null`` in a field means the field is absent: the API server prunes nulls of fields
      that are not nullable (no Gateway API field is) before it sets defaults, so
      ``addresses: null`` is no addresses and ``allowedRoutes: null`` the default.
    """

    model_config = ConfigDict(strict=True)

    @model_validator(mode="before")
    @classmethod
    def _decoded_as_the_api_server_does(cls, data: Any) -> Any:
        if data.__class__ is not dict:
            return data
        for value in data.values():
            if value is None or value.__class__ is float:
                return {k: _json_number(v) for k, v in data.items() if v is not None}
        return data


Loc = tuple[str | int, ...]
"""A field path below the value being validated, in wire names: ``("set", 1, "name")``."""

RULE_ERROR = "crd_rule"
"""The pydantic error type of a broken CRD rule raised with :func:`refuse`."""


def refuse(problems: Iterable[tuple[Loc, str]], value: Any = None) -> None:
    """Raise ``problems`` (each a field path below the value being validated and a message)
    as one ValidationError; pydantic nests their paths under the value's own, so a rule
    checked on a list can name the item that breaks it. Does nothing when there are none."""
    details = [
        InitErrorDetails(type=PydanticCustomError(RULE_ERROR, message), loc=loc, input=value)
        for loc, message in problems
    ]
    if details:
        raise ValidationError.from_exception_data("rule", details)


def duplicates(keys: Iterable[Any]) -> list[tuple[int, Any]]:
    """(index, key) of each key equal to an earlier one: what a Kubernetes ``set`` or ``map``
    list (``x-kubernetes-list-type``) refuses."""
    seen: set[Any] = set()
    out = []
    for i, key in enumerate(keys):
        if key in seen:
            out.append((i, key))
        seen.add(key)
    return out


def re2(pattern: str) -> re.Pattern[str]:
    """``pattern`` (a CRD's, written for RE2) compiled for Python's ``re`` so that searching
    with it matches what Kubernetes matches: ``$`` outside a character class is the end of
    the text (Python's would also match before a final newline)."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            if pattern[i : i + 1] == "^":
                out.append("^")
                i += 1
            if pattern[i : i + 1] == "]":  # a literal ']' first in the class
                out.append("]")
                i += 1
            continue
        elif c == "$":
            c = r"\Z"
        out.append(c)
        i += 1
    return re.compile("".join(out))


def matching(pattern: str) -> Callable[[str], str]:
    """A validator that takes a string ``pattern`` finds (as a CRD's ``pattern``: searched,
    RE2 semantics). One compiled pattern serves every field that uses it, which costs far
    less memory than pydantic's own ``pattern`` (a regex engine per field)."""
    compiled = re2(pattern)

    def check(value: str) -> str:
        if compiled.search(value) is None:
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise ValueError(f"{shown!r} does not match the pattern {pattern}")
        return value

    return check


# --------------------------------------------------------------------------- metadata

# A qualified name (label and annotation keys): an optional DNS subdomain prefix and '/',
# then a name of at most 63 characters, alphanumeric at both ends.
_QUALIFIED_NAME = re.compile(
    r"(?:([a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*)/)?"
    r"(?:[A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]"
)
_LABEL_VALUE = re.compile(r"(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def qualified_name_problem(key: str, *, max_prefix: int = 253) -> str | None:
    """Why ``key`` is not a qualified name (``[prefix/]name``), or None."""
    m = _QUALIFIED_NAME.fullmatch(key)
    if m is None:
        return (
            f"invalid key {key!r}: want an optional DNS subdomain prefix and '/', then a name "
            "of at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends"
        )
    if m.group(1) is not None and len(m.group(1)) > max_prefix:
        return f"invalid key {key[:40]!r}...: its prefix is longer than {max_prefix} characters"
    return None


def _check_key(key: str) -> str:
    problem = qualified_name_problem(key)
    if problem is not None:
        raise ValueError(problem)
    return key


def _check_label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"invalid label value {value[:70]!r}: want at most 63 letters, digits, '-', '_' or "
            "'.', alphanumeric at both ends"
        )
    return value


QualifiedName = Annotated[str, AfterValidator(_check_key)]
LabelValue = Annotated[str, AfterValidator(_check_label_value)]
Labels = dict[QualifiedName, LabelValue]
Annotations = dict[QualifiedName, str]
MAX_ANNOTATIONS_BYTES = 256 * 1024  # the API server's limit on all annotations of an object

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _timestamp(value: Any) -> Any:
    """An RFC 3339 time as the API server stores it: UTC, whole seconds, ``Z``
    (``2024-05-01T10:00:00Z``), so that comparing two as strings compares the times. A YAML
    timestamp (a datetime, when the YAML was read by a plain YAML loader) is taken too."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        m = _RFC3339.fullmatch(value)
        try:
            if m is None:
                raise ValueError
            whole = value if m.group(1) is None else value[: m.start(1)] + value[m.end(1) :]
            moment = datetime.fromisoformat(whole)  # whole seconds, as Kubernetes keeps
        except ValueError:
            raise ValueError(
                f"invalid timestamp {value!r}: want RFC 3339, e.g. 2024-05-01T10:00:00Z"
            ) from None
    else:
        return value  # the str check refuses it
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[str, BeforeValidator(_timestamp)]


class ObjectMeta(KubeModel):
    # Fields a `kubectl get -o yaml` dump carries are accepted so such dumps load as-is.
    name: Annotated[str, Field(min_length=1, max_length=253)]
    namespace: str | None = None
    labels: Labels = Field(default_factory=dict)
    annotations: Annotations = Field(default_factory=dict)
    generation: int = 1
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: Timestamp | None = None
    deletion_timestamp: Timestamp | None = None
    deletion_grace_period_seconds: int | None = None
    finalizers: list[str] | None = None
    owner_references: list[dict[str, Any]] | None = None
    managed_fields: list[dict[str, Any]] | None = None
    generate_name: str | None = None
    self_link: str | None = None

    @model_validator(mode="after")
    def _annotations_size(self) -> ObjectMeta:
        if self.annotations:
            size = sum(len(k) + len(v.encode()) for k, v in self.annotations.items())
            if size > MAX_ANNOTATIONS_BYTES:
                refuse(
                    [
                        (
                            ("annotations",),
                            f"annotations take {size} bytes, more than the "
                            f"{MAX_ANNOTATIONS_BYTES} allowed",
                        )
                    ]
                )
        return self


@dataclass(frozen=True, slots=True)
class Source:
    """Where an object came from: file path, 1-based document number and line."""

    file: str
    doc: int
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line} (doc {self.doc})"


class Resource(KubeModel):
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
    if not pattern.fullmatch(value):
        return f"invalid name {value!r}: want {wanted} (at most {limit})"
    return None


# --------------------------------------------------------------------------- common types

_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _check_duration(value: str) -> str:
    if not _DURATION.fullmatch(value):
        raise ValueError(f"invalid duration {value!r}: want e.g. 10s, 1m30s, 500ms")
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]


def duration_seconds(value: str) -> float:
    """Seconds in a Gateway API duration (``1h2m3s4ms``)."""
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _check_hostname(value: str) -> str:
    if len(value) > 253 or not _HOSTNAME.fullmatch(value):
        raise ValueError(
            f"invalid hostname {value!r}: want a lower-case DNS name, optionally prefixed by '*.'"
        )
    return value


Hostname = Annotated[str, AfterValidator(_check_hostname)]

PortNumber = Annotated[int, Field(ge=1, le=65535)]
