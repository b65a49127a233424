"""What the Kubernetes API server would say about a Gateway API object, offline.

An object is checked as the API server checks a custom resource against the unmodified
Gateway API v1.6.1 CRDs in ``../shared/reference/gateway-api-v1.6.1/``:

1. the CRD must serve the object's apiVersion; ``status`` is ignored (a subresource), and a
   cluster-scoped object's ``metadata.namespace`` is dropped (as the API server does);
2. ``null`` in a field that is not ``nullable`` is pruned, then ``default`` values are set
   (CEL rules see defaulted objects);
3. the version's ``openAPIV3Schema`` is enforced with ``jsonschema`` (types, required, enum,
   pattern with RE2 as Kubernetes uses, min/max, formats ipv4/ipv6); unknown fields are
   errors (``kubectl`` validates strictly by default), ``metadata`` is checked as ObjectMeta;
4. ``x-kubernetes-list-type`` ``map``/``set`` lists must not repeat a key/item;
5. every ``x-kubernetes-validations`` rule at every schema node present in the object is
   evaluated with cel-python, ``self`` bound to the node. Transition rules (``oldSelf``)
   are skipped: a create has no old object.

Kubernetes CEL has library functions cel-python lacks; :data:`K8S_FUNCTIONS` implements the
few the Gateway API rules call, and :func:`cel_gaps` names, per rule, what cel-python cannot
do by itself, so a test can keep the list of such rules explicit.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import lark
import re2
import yaml
from celpy import celtypes
from celpy.evaluation import CELEvalError, Evaluator, base_functions

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "gateway-api-v1.6.1"


# --------------------------------------------------------------------------- YAML


class JSONLikeLoader(yaml.SafeLoader):
    """YAML as ``kubectl`` turns it into JSON: a timestamp stays the string it was written as
    (``creationTimestamp: 2024-01-01T00:00:00Z`` is a JSON string for the API server)."""


JSONLikeLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


# --------------------------------------------------------------------------- CRDs


@dataclass(frozen=True)
class CRD:
    group: str
    kind: str
    namespaced: bool
    schemas: dict[str, dict[str, Any]]  # served version -> openAPIV3Schema
    file: str


def reference_present() -> bool:
    return REFERENCE.is_dir()


@functools.cache
def crds() -> dict[tuple[str, str], CRD]:
    """Every CRD of the reference folder, by (group, kind)."""
    out: dict[tuple[str, str], CRD] = {}
    for path in sorted(REFERENCE.glob("gateway.networking.k8s.io_*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            schemas = {
                v["name"]: v["schema"]["openAPIV3Schema"] for v in spec["versions"] if v["served"]
            }
            crd = CRD(
                spec["group"],
                spec["names"]["kind"],
                spec["scope"] == "Namespaced",
                schemas,
                path.name,
            )
            out[(crd.group, crd.kind)] = crd
    return out


def all_rules() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(kind, version, schema path, rule) for every CEL rule of every served version."""

    def walk(node: Any, path: str, kind: str, version: str) -> Iterator[Any]:
        if not isinstance(node, dict):
            return
        for rule in node.get("x-kubernetes-validations", []):
            yield kind, version, path, rule
        for name, sub in node.get("properties", {}).items():
            yield from walk(sub, f"{path}.{name}" if path else name, kind, version)
        if "items" in node:
            yield from walk(node["items"], f"{path}[]", kind, version)
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}{{}}", kind, version)

    for crd in crds().values():
        for version, schema in crd.schemas.items():
            yield from walk(schema, "", crd.kind, version)


# --------------------------------------------------------------------------- metadata

_DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
)
_RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"

# ObjectMeta as the API server validates it for a custom resource (what a manifest or a
# ``kubectl get -o yaml`` dump carries); the CRDs only say ``metadata: {type: object}``.
OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS1123_SUBDOMAIN},
        "generateName": {"type": "string"},
        "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS1123_LABEL},
        "labels": {
            "type": "object",
            "propertyNames": {"maxLength": 316, "pattern": _QUALIFIED_NAME},
            "additionalProperties": {
                "type": "string",
                "maxLength": 63,
                "pattern": r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$",
            },
        },
        "annotations": {
            "type": "object",
            "propertyNames": {"maxLength": 316, "pattern": _QUALIFIED_NAME},
            "additionalProperties": {"type": "string"},
        },
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": ["string", "null"], "pattern": _RFC3339},
        "deletionTimestamp": {"type": "string", "pattern": _RFC3339},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        "managedFields": {"type": "array", "items": {"type": "object"}},
        "selfLink": {"type": "string"},
    },
}


# --------------------------------------------------------------------------- schema


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """``pattern`` with RE2, the engine Kubernetes uses (``$`` is end of text only)."""
    if isinstance(instance, str) and not re2.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# Draft 4 (OpenAPI v3's base) with RE2 patterns; ``propertyNames`` (draft 6) is added for the
# ObjectMeta schema above only, which checks label and annotation keys with it (the CRDs
# themselves use CEL for map keys).
_Validator = jsonschema.validators.extend(
    jsonschema.Draft4Validator,
    {
        "pattern": _re2_pattern,
        "propertyNames": jsonschema.Draft7Validator.VALIDATORS["propertyNames"],
    },
)
_FORMATS = jsonschema.FormatChecker(formats=("ipv4", "ipv6"))


def to_jsonschema(node: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes structural schema as plain JSON schema (draft 4, OpenAPI v3's base)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("description", "default", "nullable"):
            continue
        if key == "properties":
            out[key] = {name: to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = to_jsonschema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_jsonschema(sub) for sub in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("allOf", []).append({"type": ["integer", "string"]})
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False  # strict field validation: unknown fields refused
    return out


@functools.cache
def _schema(group: str, kind: str, version: str) -> dict[str, Any]:
    """The version's schema without ``status`` (a subresource: ignored on create)."""
    schema = copy.deepcopy(crds()[(group, kind)].schemas[version])
    schema["properties"].pop("status", None)
    return schema


@functools.cache
def _validator(group: str, kind: str, version: str) -> Any:
    schema = copy.deepcopy(_schema(group, kind, version))
    schema["properties"]["metadata"] = OBJECT_META
    return _Validator(to_jsonschema(schema), format_checker=_FORMATS)


# --------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class Violation:
    """One reason the API server would refuse the object."""

    path: str  # the field, as egobs names fields: spec.rules[0].matches[1].path
    message: str
    rule: str = ""  # the CEL rule, when a rule refused it


@dataclass
class Verdict:
    violations: list[Violation] = field(default_factory=list)
    # CEL rules evaluated with an implementation from K8S_FUNCTIONS, and rules skipped
    # (transition rules, or rules needing a function nobody implements here).
    shimmed: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)

    @property
    def accepted(self) -> bool:
        return not self.violations


class Undecidable(Exception):
    """cel-python failed on a rule for a reason the API server would not have."""


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def validate(obj: Any) -> Verdict:
    """The API server's verdict on creating ``obj`` (a decoded YAML document)."""
    verdict = Verdict()
    bad = verdict.violations
    if not isinstance(obj, dict):
        bad.append(Violation("", "not an object"))
        return verdict
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        bad.append(Violation("apiVersion" if kind else "kind", "required"))
        return verdict
    group, _, version = api_version.rpartition("/")
    crd = crds().get((group, kind))
    if crd is None:
        bad.append(Violation("kind", f"no CRD for {kind} in group {group!r}"))
        return verdict
    if version not in crd.schemas:
        bad.append(Violation("apiVersion", f"{crd.kind} has no served version {version!r}"))
        return verdict
    obj = copy.deepcopy(obj)
    obj.pop("status", None)
    if not crd.namespaced and isinstance(obj.get("metadata"), dict):
        obj["metadata"].pop("namespace", None)
    schema = _schema(group, kind, version)
    meta = obj.get("metadata")
    if isinstance(meta, dict):  # ObjectMeta is a Go struct: null is its zero value
        obj["metadata"] = {k: v for k, v in meta.items() if v is not None}
    prune_nulls_and_default(obj, schema)
    for err in _validator(group, kind, version).iter_errors(obj):
        path = ""
        for part in err.absolute_path:
            path = _join(path, part)
        missing = re.match(r"'([^']+)' is a required property", err.message)
        unknown = re.search(r"\('([^']+)' was unexpected\)", err.message)
        if err.validator == "required" and missing:
            path = _join(path, missing.group(1))
        elif err.validator == "additionalProperties" and unknown:
            path = _join(path, unknown.group(1))
        bad.append(Violation(path, err.message))
    if bad:
        return verdict  # refused already; rules are not run on a possibly ill-typed object
    _check_list_types(obj, schema, "", bad)
    _evaluate_rules(obj, schema, "", verdict)
    return verdict


def prune_nulls_and_default(value: Any, schema: dict[str, Any]) -> None:
    """As the API server does before validating: drop ``null`` from non-nullable fields,
    then set the ``default`` of each absent field (also inside the defaults it sets)."""
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is not None:
            for key in list(value):
                sub = props.get(key)
                if sub is not None and value[key] is None and not sub.get("nullable"):
                    del value[key]
            for key, sub in props.items():
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
            for key, item in value.items():
                if key in props:
                    prune_nulls_and_default(item, props[key])
        elif isinstance(schema.get("additionalProperties"), dict):
            for item in value.values():
                prune_nulls_and_default(item, schema["additionalProperties"])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            prune_nulls_and_default(item, schema["items"])


def _children(value: Any, schema: dict[str, Any], path: str) -> Iterator[tuple[Any, Any, str]]:
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is not None:
            for key, item in value.items():
                if key in props:
                    yield item, props[key], _join(path, key)
        elif isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                yield item, schema["additionalProperties"], f"{path}[{key}]"
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield item, schema["items"], _join(path, i)


def _check_list_types(value: Any, schema: dict[str, Any], path: str, bad: list[Violation]) -> None:
    if isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        seen: dict[Any, int] = {}
        if list_type in ("map", "set"):
            for i, item in enumerate(value):
                if list_type == "map" and isinstance(item, dict):
                    key: Any = tuple(
                        repr(item.get(k)) for k in schema.get("x-kubernetes-list-map-keys", [])
                    )
                else:
                    key = repr(item)
                if key in seen:
                    bad.append(Violation(_join(path, i), f"Duplicate value: {key}"))
                seen.setdefault(key, i)
    for item, sub, sub_path in _children(value, schema, path):
        _check_list_types(item, sub, sub_path, bad)


# --------------------------------------------------------------------------- CEL

_CEL_RESERVED = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)


def _escape(name: str) -> str:
    """A property name as Kubernetes CEL sees it (``namespace`` is ``__namespace__``)."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    return (
        name.replace("__", "__underscores__")
        .replace(".", "__dot__")
        .replace("-", "__dash__")
        .replace("/", "__slash__")
    )


def to_cel(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` as a CEL value; object property names escaped as Kubernetes does."""
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is not None:
            return celtypes.MapType(
                {
                    celtypes.StringType(_escape(k)): to_cel(v, props.get(k, {}))
                    for k, v in value.items()
                }
            )
        sub = schema.get("additionalProperties")
        sub = sub if isinstance(sub, dict) else {}
        return celtypes.MapType({celtypes.StringType(k): to_cel(v, sub) for k, v in value.items()})
    if isinstance(value, list):
        items = schema.get("items", {})
        return celtypes.ListType([to_cel(v, items) for v in value])
    return celpy.json_to_cel(value)


def _is_ip(text: Any) -> Any:
    """Kubernetes ``isIP``: an IPv4 or IPv6 address (no zone, no leading zeros)."""
    try:
        ipaddress.ip_address(str(text))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType("%" not in str(text))


def _split(text: Any, sep: Any, limit: Any = None) -> Any:
    """cel-go strings extension ``split``."""
    parts = (
        str(text).split(str(sep)) if limit is None else str(text).split(str(sep), int(limit) - 1)
    )
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


def _substring(text: Any, start: Any, end: Any = None) -> Any:
    """cel-go strings extension ``substring`` (code points, errors out of range)."""
    s = str(text)
    stop = len(s) if end is None else int(end)
    if not 0 <= int(start) <= stop <= len(s):
        return CELEvalError("index out of range", IndexError, (start, end))
    return celtypes.StringType(s[int(start) : stop])


# Kubernetes CEL library functions cel-python does not have, implemented for the rules the
# Gateway API CRDs use them in.
K8S_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isIP": _is_ip,
    "split": _split,
    "substring": _substring,
}

_MACROS = frozenset({"has", "all", "exists", "exists_one", "map", "filter", "dyn"})
NATIVE_FUNCTIONS = frozenset(base_functions) | _MACROS


class _Evaluator(Evaluator):
    """cel-python's evaluator, with CEL's error semantics for ``exists_one`` and ``filter``:
    an error in the predicate is the macro's value (so ``true || <error>`` is true, as in
    cel-go), where cel-python 0.5 raises it past the ``||``."""

    def sub_evaluator(self, ast: lark.Tree) -> Evaluator:
        return _Evaluator(ast, activation=self.activation)

    def member_dot_arg(self, tree: lark.Tree) -> Any:
        method = tree.children[1]
        if not (isinstance(method, lark.Token) and method.value in ("exists_one", "filter")):
            return super().member_dot_arg(tree)
        items = self.visit(tree.children[0])
        if isinstance(items, CELEvalError):
            return items
        predicate = self.build_ss_macro_eval(tree)
        results = [predicate(item) for item in items]
        for res in results:
            if isinstance(res, CELEvalError):
                return res
        if method.value == "exists_one":
            return celtypes.BoolType(sum(1 for res in results if bool(res)) == 1)
        return celtypes.ListType([item for item, res in zip(items, results, strict=True) if res])


class _Runner(celpy.InterpretedRunner):
    def evaluate(self, context: Any) -> Any:
        return _Evaluator(ast=self.ast, activation=self.new_activation()).evaluate(context)


_ENV = celpy.Environment(runner_class=_Runner)


@functools.cache
def _program(rule: str) -> Any:
    return _ENV.program(_ENV.compile(rule), functions=K8S_FUNCTIONS)


@functools.cache
def cel_gaps(rule: str) -> tuple[str, ...]:
    """What cel-python cannot do by itself for ``rule``: ``compile: <error>``, or the
    functions it calls that cel-python lacks, or ``oldSelf`` for a transition rule."""
    try:
        tree = _ENV.compile(rule)
    except Exception as exc:  # any parse failure
        return (f"compile: {type(exc).__name__}",)
    gaps: set[str] = set()
    for node in tree.iter_subtrees():
        name = None
        if node.data == "member_dot_arg":
            name = node.children[1]
        elif node.data == "ident_arg":
            name = node.children[0]
        elif node.data == "ident" and node.children and node.children[0] == "oldSelf":
            gaps.add("oldSelf")
        if isinstance(name, lark.Token) and str(name) not in NATIVE_FUNCTIONS:
            gaps.add(str(name))
    return tuple(sorted(gaps))


def _no_such_key(err: Any) -> bool:
    """An error the API server has too: a rule read a field the object does not have."""
    return "no such member" in repr(err) or "no such key" in repr(err)


def _evaluate_rules(value: Any, schema: dict[str, Any], path: str, verdict: Verdict) -> None:
    for rule in schema.get("x-kubernetes-validations", []):
        text = rule["rule"]
        gaps = cel_gaps(text)
        if "oldSelf" in gaps or any(g not in K8S_FUNCTIONS for g in gaps):
            verdict.skipped.add(text)
            continue
        if gaps:
            verdict.shimmed.add(text)
        try:
            result = _program(text).evaluate({"self": to_cel(value, schema)})
        except CELEvalError as exc:
            result = exc
        message = rule.get("message") or rule.get("messageExpression") or text
        where = path
        if rule.get("fieldPath"):
            where = path + str(rule["fieldPath"])
        if isinstance(result, CELEvalError):
            if not _no_such_key(result):
                raise Undecidable(f"{path}: rule {text!r}: cel-python failed: {result!r}")
            verdict.violations.append(Violation(where, f"{message} (rule error)", text))
        elif not (isinstance(result, celtypes.BoolType) and bool(result)):
            verdict.violations.append(Violation(where, message, text))
    for item, sub, sub_path in _children(value, schema, path):
        _evaluate_rules(item, sub, sub_path, verdict)
