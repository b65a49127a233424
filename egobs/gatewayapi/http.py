"""HTTPRoute and GRPCRoute rules to IR routes.

A route is compiled once, independently of the listeners it attaches to: every (rule, match)
becomes an :class:`HTTPEntry` holding the IR fields and the precedence key, minus the
hostname. Attaching to a listener only stamps hostnames onto those entries. ``compile_*``
depend solely on the route and on backend resolution, so they can be memoized per route.

Precedence (the order of IR routes within a listener, which is Envoy's first-match order)
follows Envoy Gateway, which implements the spec's list and places regular expressions
(implementation-specific) between exact and prefix matches:

1. path match type: Exact, then RegularExpression, then PathPrefix;
2. longer path value first;
3. a method match first (spec; Envoy Gateway ignores methods here);
4. more header matches, then more exact header matches;
5. more query param matches, then more exact query param matches;
6. ties across routes: older creationTimestamp, then ``namespace/name`` (objects without a
   timestamp sort as oldest), then kind; within a route: rule order, then match order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from egobs import ir
from egobs.gatewayapi.backends import GRPC_ROUTE, HTTP_ROUTE, Backends
from egobs.gatewayapi.entries import RouteEntry, SortKey
from egobs.gatewayapi.status import R_UNSUPPORTED_VALUE, Issue
from egobs.resources import GRPCRoute, HTTPRoute, duration_seconds
from egobs.resources.gatewayapi import (
    GRPCBackendRef,
    GRPCMethodMatch,
    GRPCRouteFilter,
    GRPCRouteMatch,
    GRPCRouteRule,
    HTTPBackendRef,
    HTTPHeaderFilter,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRetry,
    HTTPRouteRule,
    HTTPRouteTimeouts,
    SessionPersistence,
)

_PATH_RANK = {
    ir.StringMatchType.EXACT: 0,
    ir.StringMatchType.REGEX: 1,
    ir.StringMatchType.PREFIX: 2,
}
_ROOT = ir.PathMatch(ir.StringMatchType.PREFIX, "/")
_500 = ir.DirectResponse(500)

# Constructs Python accepts but RE2 (Envoy's engine) rejects.
_NOT_RE2 = re.compile(r"\(\?[=!]|\(\?<[=!]|\\[1-9]|\(\?P=")


@dataclass(frozen=True, slots=True)
class HTTPEntry:
    """One (rule, match): the precedence key and the IR fields, hostname excepted."""

    key: SortKey  # without the hostname, which stamp() puts first
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CompiledHTTPRoute:
    entries: tuple[HTTPEntry, ...]
    resolved_issues: tuple[Issue, ...]  # for the ResolvedRefs condition
    dropped: tuple[tuple[int, str], ...]  # (rule index, why) of rules left out
    rule_count: int
    # Whether some entry redirects with neither scheme nor port: its Location takes the
    # port of the listener it is attached to, so its IR depends on the listener. Derived
    # once here, not on every attachment.
    redirects_to_listener_port: bool = field(init=False)

    def __post_init__(self) -> None:
        by_port = any(_to_listener_port(e.fields.get("redirect")) for e in self.entries)
        object.__setattr__(self, "redirects_to_listener_port", by_port)

    @property
    def all_dropped(self) -> bool:
        return bool(self.dropped) and len(self.dropped) == self.rule_count


def _to_listener_port(redirect: ir.Redirect | None) -> bool:
    return redirect is not None and redirect.scheme is None and redirect.port is None


@lru_cache(maxsize=4096)
def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` would be refused by Envoy's RE2, or None when it is fine."""
    if _NOT_RE2.search(pattern):
        return f"regular expression {pattern!r} uses lookaround or backreferences, which RE2 lacks"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"regular expression {pattern!r} is invalid: {exc}"
    return None


# An HTTP token (RFC 9110): what Gateway API allows for header names it sets or adds.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")


def _header_problem(kind: str, spec: HTTPHeaderFilter) -> str | None:
    """Why Envoy would refuse this header modifier (a NACK blocking the whole Gateway's
    update): it may not touch ``host`` or pseudo-headers, and a removed name must be a
    header name at all (the CRD does not check ``remove``)."""
    names = [h.name for h in (*spec.set, *spec.add)] + list(spec.remove)
    for name in names:
        if name.lower() == "host" or not _HEADER_NAME.match(name):
            return f"{kind} on header {name!r} (Envoy does not let filters change it)"
    return None


def _header_modifier(spec: HTTPHeaderFilter) -> ir.HeaderModifier:
    def values(items: list[Any]) -> tuple[ir.HeaderValue, ...]:
        seen: set[str] = set()
        out = []
        for h in items:
            name = h.name.lower()
            if name not in seen:  # header names are case-insensitive; the first one wins
                seen.add(name)
                out.append(ir.HeaderValue(name, h.value))
        return tuple(out)

    remove = tuple(dict.fromkeys(n.lower() for n in spec.remove))
    return ir.HeaderModifier(set=values(spec.set), add=values(spec.add), remove=remove)


class _RuleBuilder:
    """Filters and backends of one rule to the IR action fields (shared by its matches)."""

    def __init__(
        self, backends: Backends, kind: str, route_ns: str, dest_name: str, rule_index: int
    ) -> None:
        self.backends = backends
        self.kind = kind
        self.ns = route_ns
        self.dest_name = dest_name
        self.rule = rule_index
        self.issues: list[Issue] = []
        self.unsupported: list[str] = []
        self.fields: dict[str, Any] = {}
        self.mirrors: list[ir.Mirror] = []
        self.redirect: ir.Redirect | None = None

    def filters(self, filters: list[HTTPRouteFilter] | list[GRPCRouteFilter]) -> None:
        for f in filters:
            modifier = f.request_header_modifier or f.response_header_modifier
            if modifier is not None and (problem := _header_problem(f.type, modifier)):
                self.unsupported.append(problem)
            elif f.request_header_modifier is not None:
                self.fields["request_headers"] = _header_modifier(f.request_header_modifier)
            elif f.response_header_modifier is not None:
                self.fields["response_headers"] = _header_modifier(f.response_header_modifier)
            elif f.request_mirror is not None:
                self._mirror(f)
            elif isinstance(f, HTTPRouteFilter) and f.request_redirect is not None:
                r = f.request_redirect
                full = prefix = None
                if r.path is not None:
                    full, prefix = r.path.replace_full_path, r.path.replace_prefix_match
                # An unset port stays None: with a scheme the port is that scheme's well-known
                # one, which the spec says to leave out of Location; without, it is unchanged.
                self.redirect = ir.Redirect(
                    scheme=r.scheme,
                    hostname=r.hostname,
                    port=r.port,
                    path_full=full,
                    path_prefix=prefix,
                    status_code=r.status_code,
                )
            elif isinstance(f, HTTPRouteFilter) and f.url_rewrite is not None:
                w = f.url_rewrite
                full = prefix = None
                if w.path is not None:
                    full, prefix = w.path.replace_full_path, w.path.replace_prefix_match
                self.fields["url_rewrite"] = ir.URLRewrite(
                    hostname=w.hostname, path_full=full, path_prefix=prefix
                )
            elif isinstance(f, HTTPRouteFilter) and f.cors is not None:
                c = f.cors
                self.fields["cors"] = ir.CORS(
                    allow_origins=tuple(c.allow_origins),
                    allow_methods=tuple(c.allow_methods),
                    allow_headers=tuple(c.allow_headers),
                    expose_headers=tuple(c.expose_headers),
                    max_age=c.max_age,
                    allow_credentials=bool(c.allow_credentials),
                )
            elif f.extension_ref is not None:
                e = f.extension_ref
                self.unsupported.append(f"ExtensionRef filter {e.group}/{e.kind} {e.name}")
            else:
                self.unsupported.append(f"{f.type} filter")

    def _mirror(self, f: HTTPRouteFilter | GRPCRouteFilter) -> None:
        m = f.request_mirror
        assert m is not None
        cluster, issue = self.backends.resolve(m.backend_ref, self.kind, self.ns)
        if issue is not None:
            self.issues.append(
                Issue(issue.reason, f"RequestMirror in rule {self.rule}: {issue.message}")
            )
            return
        assert cluster is not None
        if m.percent is not None:
            percent = float(m.percent)
        elif m.fraction is not None:
            percent = 100.0 * m.fraction.numerator / m.fraction.denominator
        else:
            percent = 100.0
        self.mirrors.append(ir.Mirror(cluster, percent))

    def _backend_filters(
        self, ref: HTTPBackendRef | GRPCBackendRef
    ) -> tuple[ir.HeaderModifier | None, ir.HeaderModifier | None]:
        """The header changes of one backendRef's filters. Envoy can change headers per
        weighted cluster, nothing else: other filters there make the rule unsupported."""
        request = response = None
        for f in ref.filters:
            modifier = f.request_header_modifier or f.response_header_modifier
            if modifier is not None and (problem := _header_problem(f.type, modifier)):
                self.unsupported.append(f"{problem} on backendRef {ref.name}")
            elif f.request_header_modifier is not None:
                request = _header_modifier(f.request_header_modifier)
            elif f.response_header_modifier is not None:
                response = _header_modifier(f.response_header_modifier)
            else:
                self.unsupported.append(f"{f.type} filter on backendRef {ref.name}")
        return request, response

    def action(self, refs: list[HTTPBackendRef] | list[GRPCBackendRef]) -> dict[str, Any]:
        # Backends are resolved even when the rule will not use them, so status is complete.
        settings: list[ir.DestinationSetting] = []
        invalid = 0
        for ref in refs:
            request, response = self._backend_filters(ref)
            cluster, issue = self.backends.resolve(ref, self.kind, self.ns)
            if issue is not None:
                self.issues.append(issue)
                invalid += ref.weight
            elif ref.weight:
                assert cluster is not None
                settings.append(ir.DestinationSetting(cluster, ref.weight, request, response))
        fields = self.fields
        if self.unsupported:
            # An unknown or unsupported filter must not be skipped: the rule answers 500.
            self.issues.append(
                Issue(
                    R_UNSUPPORTED_VALUE,
                    f"rule {self.rule}: {', '.join(self.unsupported)} not supported; "
                    "the rule answers 500",
                )
            )
            return {"direct_response": _500}
        if self.redirect is not None:
            fields["redirect"] = self.redirect
            return fields
        if self.mirrors:
            fields["mirrors"] = tuple(self.mirrors)
        if not refs:
            fields["direct_response"] = _500
            return fields
        fields["destination"] = ir.RouteDestination(self.dest_name, tuple(settings), invalid)
        return fields


def _route_tiebreak(route: HTTPRoute | GRPCRoute) -> tuple[str, str, str, str]:
    return (route.metadata.creation_timestamp or "", route.namespace, route.name, route.KIND)


def _header_matches(headers: list[Any]) -> tuple[ir.HeaderMatch, ...]:
    seen: set[str] = set()
    out = []
    for h in headers:
        name = h.name.lower()
        if name in seen:  # only the first of equivalent names counts, per the spec
            continue
        seen.add(name)
        t = ir.StringMatchType.REGEX if h.type == "RegularExpression" else ir.StringMatchType.EXACT
        out.append(ir.HeaderMatch(name, h.value, t))
    return tuple(out)


def _precedence(
    path: ir.PathMatch,
    method: str | None,
    headers: tuple[ir.HeaderMatch, ...],
    queries: tuple[ir.QueryParamMatch, ...],
) -> tuple[int, ...]:
    exact_h = sum(1 for h in headers if h.type is ir.StringMatchType.EXACT)
    exact_q = sum(1 for q in queries if q.type is ir.StringMatchType.EXACT)
    return (
        _PATH_RANK[path.type],
        -len(path.value),
        0 if method else 1,
        -len(headers),
        -exact_h,
        -len(queries),
        -exact_q,
    )


# --------------------------------------------------------------------------- HTTPRoute


def _http_match(m: HTTPRouteMatch) -> tuple[ir.PathMatch, str | None]:
    """Path match with the spec defaults applied; a problem with it is reported as a str."""
    if m.path is None:
        return _ROOT, None
    if m.path.type == "Exact":
        return ir.PathMatch(ir.StringMatchType.EXACT, m.path.value), None
    if m.path.type == "RegularExpression":
        return ir.PathMatch(ir.StringMatchType.REGEX, m.path.value), regex_problem(m.path.value)
    # PathPrefix ignores a trailing slash; IR prefixes never end in "/" except the root.
    return ir.PathMatch(ir.StringMatchType.PREFIX, m.path.value.rstrip("/") or "/"), None


def _rule_regex_problem(rule: HTTPRouteRule) -> str | None:
    for m in rule.matches:
        for h in m.headers:
            if h.type == "RegularExpression" and (p := regex_problem(h.value)):
                return p
        for q in m.query_params:
            if q.type == "RegularExpression" and (p := regex_problem(q.value)):
                return p
    return None


def _retry(spec: HTTPRouteRetry) -> ir.Retry:
    backoff = None if spec.backoff is None else duration_seconds(spec.backoff)
    return ir.Retry(codes=tuple(sorted(spec.codes)), attempts=spec.attempts, backoff=backoff)


def session_name(route_key: str) -> str:
    """The default cookie or header name of a rule's sessions: stable, and its own."""
    digest = hashlib.sha256(route_key.encode()).hexdigest()[:12]
    return f"egobs-session-{digest}"


def _session(spec: SessionPersistence, rule_key: str, path: ir.PathMatch) -> ir.SessionPersistence:
    """A rule's session persistence on one match. The cookie's Path is the match's path
    (a prefix, or the exact path; "/" for a regular expression), so the browser sends it
    back on exactly the requests this match takes."""
    name = spec.session_name or session_name(rule_key)
    if spec.type == "Header":
        return ir.SessionPersistence(ir.SessionType.HEADER, name)
    cookie_path = "/" if path.type is ir.StringMatchType.REGEX else path.value
    permanent = spec.cookie_config is not None and spec.cookie_config.lifetime_type == "Permanent"
    ttl = duration_seconds(spec.absolute_timeout) if permanent and spec.absolute_timeout else None
    return ir.SessionPersistence(ir.SessionType.COOKIE, name, cookie_path, ttl)


def _timeouts(spec: HTTPRouteTimeouts) -> ir.Timeouts:
    def seconds(value: str | None) -> float | None:
        return None if value is None else duration_seconds(value)

    return ir.Timeouts(request=seconds(spec.request), backend_request=seconds(spec.backend_request))


def compile_http(route: HTTPRoute, backends: Backends) -> CompiledHTTPRoute:
    ns, name = route.namespace, route.name
    prefix = f"httproute/{ns}/{name}/rule/"
    tiebreak = _route_tiebreak(route)
    entries: list[HTTPEntry] = []
    issues: list[Issue] = []
    dropped: list[tuple[int, str]] = []
    for i, rule in enumerate(route.spec.rules):
        paths = [_http_match(m) for m in rule.matches]
        problem = next((p for _, p in paths if p), None) or _rule_regex_problem(rule)
        if problem:
            dropped.append((i, problem))
            continue
        b = _RuleBuilder(backends, HTTP_ROUTE, ns, f"{prefix}{i}", i)
        b.filters(rule.filters)
        action = b.action(rule.backend_refs)
        forwards = "destination" in action
        if rule.timeouts is not None and forwards:
            action["timeouts"] = _timeouts(rule.timeouts)
        if rule.retry is not None and forwards:
            action["retry"] = _retry(rule.retry)
        session = rule.session_persistence if forwards else None
        issues.extend(b.issues)
        for j, (m, (path, _)) in enumerate(zip(rule.matches, paths, strict=True)):
            headers = _header_matches(m.headers)
            seen: set[str] = set()
            queries = []
            for q in m.query_params:
                if q.name not in seen:  # query names are case-sensitive; first one wins
                    seen.add(q.name)
                    t = (
                        ir.StringMatchType.REGEX
                        if q.type == "RegularExpression"
                        else ir.StringMatchType.EXACT
                    )
                    queries.append(ir.QueryParamMatch(q.name, q.value, t))
            qtuple = tuple(queries)
            fields = {
                "name": f"{prefix}{i}/match/{j}",
                "path_match": path,
                "header_matches": headers,
                "query_param_matches": qtuple,
                "method": m.method,
                **action,
            }
            if session is not None:
                fields["session"] = _session(session, f"{prefix}{i}", path)
            key: SortKey = (*_precedence(path, m.method, headers, qtuple), *tiebreak, i, j)
            entries.append(HTTPEntry(key, fields))
    return CompiledHTTPRoute(tuple(entries), tuple(issues), tuple(dropped), len(route.spec.rules))


# --------------------------------------------------------------------------- GRPCRoute

_ANY_SEGMENT = "[^/]+"


def _regex_part(value: str | None) -> str:
    if value is None:
        return _ANY_SEGMENT
    # Keep an alternation inside its own path segment.
    return f"(?:{value})" if "|" in value else value


def grpc_path(mm: GRPCMethodMatch | None) -> ir.PathMatch:
    """The HTTP/2 path match for a gRPC method match (``/<service>/<method>``)."""
    if mm is None:
        return _ROOT
    if mm.type == "Exact":
        if mm.service and mm.method:
            return ir.PathMatch(ir.StringMatchType.EXACT, f"/{mm.service}/{mm.method}")
        if mm.service:
            # Segment-aware prefix: matches "/<service>/<any method>".
            return ir.PathMatch(ir.StringMatchType.PREFIX, f"/{mm.service}")
        return ir.PathMatch(
            ir.StringMatchType.REGEX, f"/{_ANY_SEGMENT}/{re.escape(mm.method or '')}"
        )
    return ir.PathMatch(
        ir.StringMatchType.REGEX, f"/{_regex_part(mm.service)}/{_regex_part(mm.method)}"
    )


def _grpc_rule_problem(rule: GRPCRouteRule) -> str | None:
    for m in rule.matches:
        if m.method is not None and m.method.type == "RegularExpression":
            for part in (m.method.service, m.method.method):
                if part is not None and (p := regex_problem(part)):
                    return p
        for h in m.headers:
            if h.type == "RegularExpression" and (p := regex_problem(h.value)):
                return p
    return None


def compile_grpc(route: GRPCRoute, backends: Backends) -> CompiledHTTPRoute:
    ns, name = route.namespace, route.name
    prefix = f"grpcroute/{ns}/{name}/rule/"
    tiebreak = _route_tiebreak(route)
    entries: list[HTTPEntry] = []
    issues: list[Issue] = []
    dropped: list[tuple[int, str]] = []
    for i, rule in enumerate(route.spec.rules):
        problem = _grpc_rule_problem(rule)
        if problem:
            dropped.append((i, problem))
            continue
        b = _RuleBuilder(backends, GRPC_ROUTE, ns, f"{prefix}{i}", i)
        b.filters(rule.filters)
        action = b.action(rule.backend_refs)
        session = rule.session_persistence if "destination" in action else None
        issues.extend(b.issues)
        # No matches means every gRPC request.
        matches: list[GRPCRouteMatch | None] = [*rule.matches] or [None]
        for j, m in enumerate(matches):
            path = grpc_path(m.method if m is not None else None)
            headers = _header_matches(m.headers) if m is not None else ()
            fields = {
                "name": f"{prefix}{i}/match/{j}",
                "path_match": path,
                "header_matches": headers,
                "grpc": True,
                **action,
            }
            if session is not None:
                fields["session"] = _session(session, f"{prefix}{i}", path)
            key: SortKey = (*_precedence(path, None, headers, ()), *tiebreak, i, j)
            entries.append(HTTPEntry(key, fields))
    return CompiledHTTPRoute(tuple(entries), tuple(issues), tuple(dropped), len(route.spec.rules))


def stamp(
    entries: tuple[HTTPEntry, ...], hostname: str, listener_port: int | None = None
) -> list[RouteEntry]:
    """The IR routes of compiled entries on one hostname (virtual host), with sort keys.

    A redirect with neither scheme nor port goes to ``listener_port``: Gateway API says its
    port MUST be the listener's (Envoy alone would drop the port with a new hostname)."""
    out = []
    for e in entries:
        fields = e.fields
        redirect = fields.get("redirect")
        if (
            listener_port is not None
            and isinstance(redirect, ir.Redirect)
            and _to_listener_port(redirect)
        ):
            fields = {**fields, "redirect": replace(redirect, port=listener_port)}
        out.append(RouteEntry((hostname, *e.key), ir.HTTPRoute(hostname=hostname, **fields)))
    return out
