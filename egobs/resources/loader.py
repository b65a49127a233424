"""Loading resources from multi-document YAML, with errors that name file, object and field."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from egobs.resources._base import RULE_ERROR, Resource, Source, name_problem
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
    TCPRoute,
    TLSRoute,
    UDPRoute,
)

try:  # libyaml is several times faster on large inputs
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader


class _YAMLLoader(_BaseLoader):
    """YAML read as ``kubectl`` turns it into JSON for the API server: a timestamp stays the
    string written (``creationTimestamp: 2024-05-01T10:00:00Z`` is a JSON string there, and
    an unquoted date in an annotation is a string, not a date).

    Equal strings of one text are one object: the models keep what they are given, and a
    large input repeats the same namespaces, kinds, hostnames and Service names."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._strings: dict[str, str] = {}

    def construct_yaml_str(self, node: yaml.ScalarNode) -> str:
        value: str = self.construct_scalar(node)
        return self._strings.setdefault(value, value)


_YAMLLoader.add_constructor("tag:yaml.org,2002:str", _YAMLLoader.construct_yaml_str)
_YAMLLoader.add_constructor("tag:yaml.org,2002:timestamp", _YAMLLoader.construct_yaml_str)

KINDS: dict[str, type[Resource]] = {
    cls.KIND: cls
    for cls in (
        GatewayClass,
        Gateway,
        ListenerSet,
        HTTPRoute,
        GRPCRoute,
        TCPRoute,
        UDPRoute,
        TLSRoute,
        ReferenceGrant,
        BackendTLSPolicy,
        Namespace,
        Service,
        EndpointSlice,
        Secret,
        ConfigMap,
        Backend,
        EnvoyProxy,
    )
}

YAML_SUFFIXES = (".yaml", ".yml")
# A path given to load that does not exist. "no such file or directory" stays in the
# message: callers and the error classifier of the metrics match on it.
_FILE_NOT_FOUND = "file not found (no such file or directory)"


class _MalformedYAML(Exception):
    """A YAML syntax error in document ``doc`` (counted from 1)."""

    def __init__(self, doc: int, error: yaml.YAMLError) -> None:
        super().__init__(str(error))
        self.doc = doc
        self.error = error


def _next_document(loader: Any, done: int) -> bool:
    try:
        return bool(loader.check_node())
    except yaml.YAMLError as exc:
        raise _MalformedYAML(done + 1, exc) from exc


def _get_node(loader: Any, done: int) -> yaml.Node | None:
    try:
        node: yaml.Node | None = loader.get_node()
    except yaml.YAMLError as exc:
        raise _MalformedYAML(done + 1, exc) from exc
    return node


@dataclass(frozen=True, slots=True)
class ResourceError:
    """One problem with one document: where, which object, which field, what."""

    source: Source
    message: str
    object_ref: str = ""
    field_path: str = ""

    def __str__(self) -> str:
        where = f"{self.source.file}:doc{self.source.doc} (line {self.source.line})"
        if self.source.doc == 0 and self.source.line == 0:
            # About the path itself (not found, unreadable): no document or line to name.
            where = self.source.file
        parts = [where]
        if self.object_ref:
            parts.append(self.object_ref)
        head = " ".join(parts)
        if self.field_path:
            return _one_line(f"{head}: {self.field_path}: {self.message}")
        return _one_line(f"{head}: {self.message}")


def _one_line(text: str) -> str:
    """``text`` with control characters escaped: names and keys come from the input, and a
    line break in one must not make a single error print as two (the second forged)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class LoadError(Exception):
    """Input could not be loaded; ``errors`` lists every problem found."""

    def __init__(self, errors: list[ResourceError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass
class Resources:
    """Every object of one input, by kind. Namespaces are already defaulted."""

    gateway_classes: list[GatewayClass] = field(default_factory=list)
    gateways: list[Gateway] = field(default_factory=list)
    listener_sets: list[ListenerSet] = field(default_factory=list)
    http_routes: list[HTTPRoute] = field(default_factory=list)
    grpc_routes: list[GRPCRoute] = field(default_factory=list)
    tcp_routes: list[TCPRoute] = field(default_factory=list)
    udp_routes: list[UDPRoute] = field(default_factory=list)
    tls_routes: list[TLSRoute] = field(default_factory=list)
    reference_grants: list[ReferenceGrant] = field(default_factory=list)
    backend_tls_policies: list[BackendTLSPolicy] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    endpoint_slices: list[EndpointSlice] = field(default_factory=list)
    secrets: list[Secret] = field(default_factory=list)
    config_maps: list[ConfigMap] = field(default_factory=list)
    backends: list[Backend] = field(default_factory=list)
    envoy_proxies: list[EnvoyProxy] = field(default_factory=list)

    _BY_KIND = {
        "GatewayClass": "gateway_classes",
        "Gateway": "gateways",
        "ListenerSet": "listener_sets",
        "HTTPRoute": "http_routes",
        "GRPCRoute": "grpc_routes",
        "TCPRoute": "tcp_routes",
        "UDPRoute": "udp_routes",
        "TLSRoute": "tls_routes",
        "ReferenceGrant": "reference_grants",
        "BackendTLSPolicy": "backend_tls_policies",
        "Namespace": "namespaces",
        "Service": "services",
        "EndpointSlice": "endpoint_slices",
        "Secret": "secrets",
        "ConfigMap": "config_maps",
        "Backend": "backends",
        "EnvoyProxy": "envoy_proxies",
    }

    def add(self, obj: Resource) -> None:
        getattr(self, self._BY_KIND[obj.KIND]).append(obj)

    def __iter__(self) -> Iterator[Resource]:
        for attr in self._BY_KIND.values():
            yield from getattr(self, attr)

    def __len__(self) -> int:
        return sum(len(getattr(self, a)) for a in self._BY_KIND.values())

    @classmethod
    def of(cls, objects: Iterable[Resource]) -> Resources:
        res = cls()
        for obj in objects:
            res.add(obj)
        return res


# A mapping key written plainly in a field path; any other is quoted: ``spec[""]``,
# ``data["tls.crt"]``.
_PLAIN_KEY = re.compile(r"[^.\[\]\"\s]+")


def _loc_to_path(loc: tuple[int | str, ...], *, key_last: bool = False) -> str:
    """A field path in the loader's notation. ``key_last``: the last part is a mapping key
    even when YAML made it a number (``3: x``), as in an unknown-field error."""
    out = ""
    for i, part in enumerate(loc):
        if part == "[key]":  # pydantic's mark of a bad map key: the path names the key already
            continue
        if isinstance(part, bool) or (key_last and i == len(loc) - 1 and isinstance(part, int)):
            # A YAML key such as true or 3, named as written.
            out += (
                "[" + json.dumps(str(part).lower() if isinstance(part, bool) else str(part)) + "]"
            )
        elif isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            out += "[" + json.dumps(part) + "]"
        elif not out:
            out = part
        else:
            out += f".{part}"
    return out


_PYDANTIC_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field missing",
}
# Messages the models write themselves, which say what they got when it matters.
_OWN_MESSAGES = frozenset({"value_error", RULE_ERROR})


def validation_errors(
    exc: pydantic.ValidationError, source: Source, ref: str
) -> list[ResourceError]:
    errors = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if p not in _UNION_TAGS)
        msg = _PYDANTIC_MESSAGES.get(err["type"], err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] not in _PYDANTIC_MESSAGES and err["type"] not in _OWN_MESSAGES:
            msg = f"{msg} (got {_short(err.get('input'))})"
        if err["type"] == "invalid_key" and loc:
            # A mapping key that is no string (YAML's true, 3): named as written (pydantic
            # puts it in the location as a number, like a list index).
            key = json.dumps(_yaml_text(err.get("input")))
            path = f"{_loc_to_path(loc[:-1])}[{key}]"
        else:
            path = _loc_to_path(loc, key_last=err["type"] == "extra_forbidden")
        errors.append(ResourceError(source, msg, ref, path))
    return errors


def _yaml_text(value: object) -> str:
    """A scalar as YAML writes it (what the document's key node holds)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


# Pydantic puts the union member's type name into error locations; they mean nothing to users.
_UNION_TAGS = frozenset({"int", "str", "constrained-str", "function-after[_check_hostname(), str]"})


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_object(data: Any, source: Source) -> Resource:
    """Validate one decoded YAML document into its typed model; raises :class:`LoadError`."""
    if not isinstance(data, dict):
        raise LoadError(
            [ResourceError(source, f"document must be a mapping, got {type(data).__name__}")]
        )
    kind = data.get("kind")
    api_version = data.get("apiVersion")
    raw_meta = data.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    name = meta.get("name", "?")
    ns = meta.get("namespace")
    if not isinstance(kind, str):
        raise LoadError([ResourceError(source, "required field missing", f"?/{name}", "kind")])
    cls = KINDS.get(kind)
    if cls is None:
        raise LoadError(
            [
                ResourceError(
                    source,
                    f"unknown kind {kind!r} (known: {', '.join(sorted(KINDS))})",
                    f"{kind}/{name}",
                    "kind",
                )
            ]
        )
    if cls.NAMESPACED:
        ns = ns or "default"
        ref = f"{kind}/{ns}/{name}"
    else:
        ref = f"{kind}/{name}"
        if "namespace" in meta:
            # The API server clears the namespace of a cluster-scoped object, silently.
            data = {**data, "metadata": {k: v for k, v in meta.items() if k != "namespace"}}
    if not isinstance(api_version, str):
        raise LoadError([ResourceError(source, "required field missing", ref, "apiVersion")])
    group, _, version = api_version.rpartition("/")
    if group != cls.GROUP or version not in cls.VERSIONS:
        served = ", ".join(f"{cls.GROUP}/{v}" if cls.GROUP else v for v in cls.VERSIONS)
        raise LoadError(
            [
                ResourceError(
                    source,
                    f"unsupported apiVersion {api_version!r}: apiVersion not served for "
                    f"{kind} (served: {served})",
                    ref,
                    "apiVersion",
                )
            ]
        )
    try:
        obj = cls.model_validate(data)
    except pydantic.ValidationError as exc:
        raise LoadError(validation_errors(exc, source, ref)) from None
    problems = obj.version_problems()
    name_issue = name_problem(obj.metadata.name, cls.NAME_RULE)
    if name_issue is not None:
        problems.insert(0, ("metadata.name", name_issue))
    if obj.metadata.namespace is not None:
        ns_issue = name_problem(obj.metadata.namespace, "dns1123-label")
        if ns_issue is not None:
            problems.insert(0, ("metadata.namespace", ns_issue))
    if problems:
        raise LoadError([ResourceError(source, msg, ref, path) for path, msg in problems])
    if cls.NAMESPACED and obj.metadata.namespace is None:
        obj.metadata.namespace = "default"
    obj._source = source
    return obj


# Bounds on what one input may make the loader do. Real manifests are far below them; a
# "billion laughs" document (aliases of aliases) is refused before it is expanded.
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_DOCUMENTS = 100_000
MAX_EXPANDED_NODES = 1_000_000  # per document, counting every alias use as a full copy
MAX_DEPTH = 100


def read_text(path: Path) -> str:
    """A file's text, refusing what is not a regular file (a FIFO would block forever) or
    is larger than :data:`MAX_FILE_BYTES`. Raises OSError with the reason."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{path}: not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise OSError(f"{path}: {st.st_size} bytes, more than the {MAX_FILE_BYTES} allowed")
    with path.open("rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(f"{path}: more than the {MAX_FILE_BYTES} bytes allowed")
    return data.decode("utf-8")


class _DocumentProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


_IN_PROGRESS = -1  # a node whose size is being counted (seen again: a recursive alias)


def _check_node(root: yaml.Node) -> None:
    """Refuse a document before it is built: duplicate mapping keys (YAML says keys are
    unique; PyYAML would keep the last silently), nesting deeper than :data:`MAX_DEPTH`, or
    more than :data:`MAX_EXPANDED_NODES` nodes once aliases are expanded."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        known = sizes.get(id(node))
        if known is not None and known is not _IN_PROGRESS:
            return known
        if depth > MAX_DEPTH:
            raise _DocumentProblem(
                node.start_mark.line + 1, f"nesting deeper than {MAX_DEPTH} levels"
            )
        if known is _IN_PROGRESS:
            # An alias to a node that contains it: an infinite object, which nothing
            # Kubernetes accepts (JSON has no cycles) and nothing here could compare or dump.
            raise _DocumentProblem(
                node.start_mark.line + 1, "recursive YAML alias (a node inside itself)"
            )
        sizes[id(node)] = _IN_PROGRESS
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    first = seen.get((key.tag, key.value))
                    if first is not None:
                        raise _DocumentProblem(
                            line, f"duplicate key {key.value!r} (first at line {first})"
                        )
                    seen[(key.tag, key.value)] = line
                total += size(key, depth + 1) + size(value, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item, depth + 1)
        if total > MAX_EXPANDED_NODES:
            raise _DocumentProblem(
                node.start_mark.line + 1,
                f"more than {MAX_EXPANDED_NODES} nodes once aliases are expanded",
            )
        sizes[id(node)] = total
        return total

    size(root, 0)


FieldPath = tuple[str | int, ...]
_MAX_FIELD_LINES = 20_000  # per document; past it, errors name the document's first line


def _field_lines(root: yaml.Node) -> dict[FieldPath, int]:
    """The line of each field (mapping key) and list item of a document, by its path."""
    lines: dict[FieldPath, int] = {}
    stack: list[tuple[FieldPath, yaml.Node]] = [((), root)]
    while stack and len(lines) < _MAX_FIELD_LINES:
        path, node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    sub = (*path, key.value)
                    lines.setdefault(sub, key.start_mark.line + 1)
                    stack.append((sub, value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = (*path, i)
                lines.setdefault(sub, item.start_mark.line + 1)
                stack.append((sub, item))
    return lines


_PATH_PART = re.compile(r'([^.\[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def _field_line(lines: dict[FieldPath, int], field_path: str) -> int | None:
    """The line of ``field_path`` (``spec.rules[0].matches``, ``data["tls.crt"]``), or of
    its nearest parent that is in the document (a missing field is reported at the mapping
    that lacks it)."""
    parts: list[str | int] = [
        int(index) if index else json.loads(quoted) if quoted else name
        for name, index, quoted in _PATH_PART.findall(field_path)
    ]
    while parts:
        line = lines.get(tuple(parts))
        if line is not None:
            return line
        parts.pop()
    return None


def _documents(text: str, file: str) -> Iterator[tuple[int, int, Any, yaml.Node | None]]:
    """(doc number, first line, decoded data, its node graph) for each non-empty YAML
    document; data is a :class:`_DocumentProblem` (and the node None) for a document refused
    before it was built."""
    loader = _YAMLLoader(text)
    doc = 0
    try:
        while _next_document(loader, doc):
            node = _get_node(loader, doc)
            doc += 1
            if node is None:
                continue
            first = node.start_mark.line + 1
            if doc > MAX_DOCUMENTS:
                problem = _DocumentProblem(
                    first, f"more than {MAX_DOCUMENTS} documents in one file"
                )
                yield doc, first, problem, None
                return
            try:
                _check_node(node)
            except _DocumentProblem as problem:
                yield doc, first, problem, None
                continue
            try:
                data = loader.construct_document(node)
            except yaml.YAMLError as exc:
                # An unknown tag, an unhashable key: this document alone is refused.
                mark = getattr(exc, "problem_mark", None)
                at = mark.line + 1 if mark is not None else first
                what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                yield doc, first, _DocumentProblem(at, f"malformed YAML: {what}"), None
                continue
            yield doc, first, data, node
    finally:
        loader.dispose()


@dataclass(frozen=True, slots=True)
class LoadedText:
    """What one multi-document text gave: the valid objects, the problems of the others,
    ``refused``: the ``Kind/ns/name`` of the refused objects, and ``unidentified``: whether
    some refused document does not say which object it is (no kind or name, not a mapping,
    or malformed YAML, after which documents were not read at all)."""

    objects: list[Resource]
    errors: list[ResourceError]
    refused: frozenset[str] = frozenset()
    unidentified: bool = False


def load_documents(text: str, *, file: str = "<stdin>") -> LoadedText:
    """Every object of a multi-document YAML text that is valid, and the problems of the
    others, each refused alone (as ``kubectl apply -f`` applies every valid object)."""
    objects: list[Resource] = []
    errors: list[ResourceError] = []
    refused: set[str] = set()
    unidentified = False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Bytes that are not UTF-8, read with surrogateescape (stdin): YAML is Unicode.
        line = text.count("\n", 0, exc.start) + 1
        doc = max(1, sum(1 for ln in text[: exc.start].splitlines() if ln.startswith("---")))
        message = f"not UTF-8 text (undecodable byte at character {exc.start})"
        return LoadedText([], [ResourceError(Source(file, doc, line), message)], frozenset(), True)
    try:
        for doc, line, data, node in _documents(text, file):
            if data is None:
                continue
            if isinstance(data, _DocumentProblem):
                errors.append(ResourceError(Source(file, doc, data.line), data.message))
                unidentified = True
                continue
            try:
                objects.append(parse_object(data, Source(file, doc, line)))
            except LoadError as exc:
                # Lines of fields are looked up only for documents that have errors.
                lines = _field_lines(node) if node is not None else {}
                for err in exc.errors:
                    at = _field_line(lines, err.field_path) if err.field_path else None
                    if at is not None:
                        err = dataclasses.replace(err, source=Source(file, doc, at))
                    errors.append(err)
                ref = _identity(data)
                if ref is None:
                    unidentified = True
                else:
                    refused.add(ref)
    except _MalformedYAML as malformed:
        error = malformed.error
        mark = getattr(error, "problem_mark", None)
        position = getattr(error, "position", None)  # a reader error: a character index
        doc = malformed.doc
        if mark is not None:
            line = mark.line + 1
        elif isinstance(position, int):
            # libyaml reads ahead, so the document being parsed may not be the one holding
            # the character: count the separators before it instead.
            line = text.count("\n", 0, position) + 1
            starts = [ln for ln in text[:position].splitlines() if ln.startswith("---")]
            leading = text.lstrip().startswith("---")
            doc = max(1, len(starts) + (0 if leading else 1))
        else:
            line = 1
        # Without a problem text, str(exc) spans lines naming "<unicode string>": keep the
        # first, which says what is wrong.
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        errors.append(ResourceError(Source(file, doc, line), f"malformed YAML: {problem}"))
        unidentified = True
    return LoadedText(objects, errors, frozenset(refused), unidentified)


def _identity(data: Any) -> str | None:
    """The ``Resource.ref()`` a document would have, when it says which object it is."""
    if not isinstance(data, dict):
        return None
    kind, meta = data.get("kind"), data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(kind, str) or not isinstance(name, str) or not name:
        return None
    cls = KINDS.get(kind)
    if cls is None or not cls.NAMESPACED:
        return f"{kind}/{name}"
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    return f"{kind}/{ns if isinstance(ns, str) and ns else 'default'}/{name}"


def load_text(text: str, *, file: str = "<stdin>") -> list[Resource]:
    """Every object in a multi-document YAML text. Raises :class:`LoadError` listing all problems."""
    loaded = load_documents(text, file=file)
    if loaded.errors:
        raise LoadError(loaded.errors)
    return loaded.objects


def yaml_files(path: Path) -> list[Path]:
    """The YAML files at ``path``: itself, or those below it (sorted, hidden ones skipped)."""
    if path.is_dir():
        found: list[Path] = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found.extend(
                Path(root) / f
                for f in sorted(files)
                if f.endswith(YAML_SUFFIXES) and not f.startswith(".")
            )
        return found
    return [path]


def check_unique(objects: Iterable[Resource]) -> list[ResourceError]:
    """Errors for objects defined twice (same kind, namespace and name)."""
    seen: dict[tuple[str, str, str], Resource] = {}
    errors = []
    for obj in objects:
        first = seen.setdefault(obj.key, obj)
        if first is not obj:
            errors.append(
                ResourceError(
                    obj.source or Source("<memory>", 0, 0),
                    f"duplicate object: already defined at {first.source}",
                    obj.ref(),
                )
            )
    return errors


M = TypeVar("M", bound=pydantic.BaseModel)


def load_model_file(path: str | os.PathLike[str], model: type[M], *, ref: str) -> M:
    """A single-document YAML file (a config file) validated as ``model``.

    Raises :class:`LoadError` naming the file and field path, like resource errors.
    """
    p = Path(path)
    src = Source(str(p), 1, 1)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise LoadError([ResourceError(src, f"cannot read: {exc}")]) from None
    except yaml.YAMLError as exc:
        raise LoadError([ResourceError(src, f"malformed YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise LoadError([ResourceError(src, f"{ref} must be a mapping")])
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise LoadError(validation_errors(exc, src, ref)) from None


def load_paths(paths: Iterable[str | os.PathLike[str]]) -> Resources:
    """Load files and directories (recursively). ``-`` reads standard input.

    Raises :class:`LoadError` with every problem across all files; nothing is returned
    partially, so a caller can keep its last good set.
    """
    import sys

    objects: list[Resource] = []
    errors: list[ResourceError] = []
    for raw in paths:
        if str(raw) == "-":
            sources: list[tuple[str, str | None]] = [("<stdin>", sys.stdin.read())]
        else:
            p = Path(raw)
            if not p.exists():
                errors.append(ResourceError(Source(str(p), 0, 0), _FILE_NOT_FOUND))
                continue
            sources = [(str(f), None) for f in yaml_files(p)]
        for name, text in sources:
            if text is None:
                try:
                    text = read_text(Path(name))
                except (OSError, UnicodeDecodeError) as exc:
                    errors.append(ResourceError(Source(name, 0, 0), f"cannot read: {exc}"))
                    continue
            try:
                objects.extend(load_text(text, file=name))
            except LoadError as exc:
                errors.extend(exc.errors)
    errors.extend(check_unique(objects))
    if errors:
        raise LoadError(errors)
    return Resources.of(objects)
