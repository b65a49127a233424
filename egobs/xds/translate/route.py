"""HTTP routes: IR HTTPRoute → Envoy Route messages, virtual hosts, route configurations.

Every builder here depends only on its arguments, which is what lets the translator cache a
route's messages by its IR value. Messages are built by setting fields on sub-messages in
place: with upb that is several times faster than nested constructors or ``ParseDict``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2, scoped_route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.stateful_session.v3 import stateful_session_pb2
from envoy.extensions.http.stateful_session.cookie.v3 import cookie_pb2
from envoy.extensions.http.stateful_session.header.v3 import header_pb2
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import percent_pb2

from egobs import ir

from ._common import CORS_FILTER, STATEFUL_SESSION_FILTER, set_seconds, stat_safe

__all__ = [
    "build_route_configuration",
    "build_routes",
    "build_scope",
    "build_virtual_host",
    "invalid_share_runtime_key",
    "virtual_host_name",
]

_EXACT = ir.StringMatchType.EXACT
_PREFIX = ir.StringMatchType.PREFIX
_REGEX = ir.StringMatchType.REGEX
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_APPEND = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
_MILLION = percent_pb2.FractionalPercent.MILLION
_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


def invalid_share_runtime_key(route_name: str) -> str:
    return f"egobs.invalid_backend_share.{route_name}"


def virtual_host_name(route_config_name: str, hostname: str) -> str:
    # Also the virtual host's stat name (``envoy_virtual_host`` label): no dots (stat_safe).
    return stat_safe(f"{route_config_name}/{hostname.replace('*', 'wildcard')}")


def route_stat_prefix(route_name: str) -> str:
    """The stat prefix of an IR route: its rule (``httproute/<ns>/<name>/rule/<i>``), so
    Envoy counts each rule's upstream requests under ``envoy_route`` (matches of one rule
    share the counters); dot-free, see stat_safe."""
    rule, _, _ = route_name.partition("/match/")
    return stat_safe(rule)


def build_routes(route: ir.HTTPRoute, *, stats: bool = False) -> tuple[rc.Route, ...]:
    """The Envoy routes for one IR route: one, or two when part of its weight is invalid.

    Gateway API wants the share of requests that belongs to unresolved backendRefs to get
    HTTP 500. Envoy has no weighted direct response, so the route is preceded by a copy
    that matches only that fraction of requests (``runtime_fraction``) and answers 500.
    ``stats`` gives them the rule's stat prefix: Envoy then counts the rule's upstream
    requests (off by default; see EnvoyProxy ``metrics.enableRouteStats``).
    """
    out = rc.Route(name=route.name)
    if stats:
        out.stat_prefix = route_stat_prefix(route.name)
    _set_match(out.match, route)
    if route.request_headers is not None:
        _set_header_modifier(
            out.request_headers_to_add, out.request_headers_to_remove, route.request_headers
        )
    if route.response_headers is not None:
        _set_header_modifier(
            out.response_headers_to_add, out.response_headers_to_remove, route.response_headers
        )
    if route.cors is not None:
        out.typed_per_filter_config[CORS_FILTER].Pack(cors_policy(route.cors), deterministic=True)
    if route.session is not None and route.destination is not None:
        out.typed_per_filter_config[STATEFUL_SESSION_FILTER].Pack(
            session_policy(route.session), deterministic=True
        )

    if route.direct_response is not None:
        _set_direct_response(out.direct_response, route.direct_response)
        return (out,)
    if route.redirect is not None:
        _set_redirect(out.redirect, route.redirect, route.path_match)
        return (out,)

    dest = route.destination
    if dest is None or not dest.settings:
        out.direct_response.status = 500
        return (out,)

    action = out.route
    action.SetInParent()
    settings = dest.settings
    per_backend_headers = any(s.request_headers or s.response_headers for s in settings)
    if len(settings) == 1 and not per_backend_headers:
        action.cluster = settings[0].cluster.name
    else:
        # Also for one backend with its own header filters: only a weighted cluster has
        # header changes of its own.
        clusters = action.weighted_clusters.clusters
        for setting in settings:
            weighted = clusters.add()
            weighted.name = setting.cluster.name
            weighted.weight.value = setting.weight
            if setting.request_headers is not None:
                _set_header_modifier(
                    weighted.request_headers_to_add,
                    weighted.request_headers_to_remove,
                    setting.request_headers,
                )
            if setting.response_headers is not None:
                _set_header_modifier(
                    weighted.response_headers_to_add,
                    weighted.response_headers_to_remove,
                    setting.response_headers,
                )
    if route.url_rewrite is not None:
        _set_url_rewrite(action, route.url_rewrite, route.path_match)
    for mirror in route.mirrors:
        policy = action.request_mirror_policies.add()
        policy.cluster = mirror.cluster.name
        if mirror.percent < 100:
            fraction = policy.runtime_fraction.default_value
            fraction.numerator = max(0, round(mirror.percent * 10_000))
            fraction.denominator = _MILLION
    if route.timeouts is not None:
        _set_timeouts(action, route.timeouts, route.retry)
    if route.retry is not None:
        _set_retry(action.retry_policy, route.retry)

    if dest.invalid_weight > 0:
        return (_invalid_share_route(out, dest), out)
    return (out,)


def _invalid_share_route(valid: rc.Route, dest: ir.RouteDestination) -> rc.Route:
    out = rc.Route()
    out.CopyFrom(valid)
    out.name = f"{valid.name}/invalid-backend"
    out.ClearField("route")
    out.ClearField("request_headers_to_add")
    out.ClearField("request_headers_to_remove")
    out.direct_response.status = 500
    fraction = out.match.runtime_fraction
    fraction.default_value.numerator = round(dest.invalid_weight / dest.total_weight * 1_000_000)
    fraction.default_value.denominator = _MILLION
    fraction.runtime_key = invalid_share_runtime_key(valid.name)
    return out


# --------------------------------------------------------------------------- matches


def _set_match(match: rc.RouteMatch, route: ir.HTTPRoute) -> None:
    path = route.path_match
    if path is None:
        match.prefix = "/"
    elif path.type is _EXACT:
        match.path = path.value
    elif path.type is _PREFIX:
        # path_separated_prefix gives Gateway API's segment-wise PathPrefix semantics, but
        # Envoy rejects a trailing "/" there, and "/" itself is every path.
        trimmed = path.value.rstrip("/")
        if trimmed:
            match.path_separated_prefix = trimmed
        else:
            match.prefix = "/"
    else:
        match.safe_regex.regex = path.value
    for header in route.header_matches:
        header_matcher = match.headers.add()
        header_matcher.name = header.name
        _set_string_match(header_matcher.string_match, header.type, header.value)
    if route.method:
        header_matcher = match.headers.add()
        header_matcher.name = ":method"
        header_matcher.string_match.exact = route.method
    for param in route.query_param_matches:
        param_matcher = match.query_parameters.add()
        param_matcher.name = param.name
        _set_string_match(param_matcher.string_match, param.type, param.value)


def _set_string_match(
    matcher: string_pb2.StringMatcher, kind: ir.StringMatchType, value: str
) -> None:
    if kind is _REGEX:
        matcher.safe_regex.regex = value
    elif kind is _PREFIX:
        matcher.prefix = value
    else:
        matcher.exact = value


# --------------------------------------------------------------------------- filters


def _modifiable(name: str) -> bool:
    # Envoy rejects the whole RouteConfiguration when a route adds or removes a pseudo-header
    # or Host; dropping such an entry keeps every other route working.
    return not name.startswith(":") and name.lower() != "host"


def _set_header_modifier(to_add: Any, to_remove: Any, mod: ir.HeaderModifier) -> None:
    for header in mod.set:
        if _modifiable(header.name):
            _add_header(to_add.add(), header, _OVERWRITE)
    for header in mod.add:
        if _modifiable(header.name):
            _add_header(to_add.add(), header, _APPEND)
    if mod.remove:
        to_remove.extend([name for name in mod.remove if _modifiable(name)])


def _add_header(option: base_pb2.HeaderValueOption, header: ir.HeaderValue, action: int) -> None:
    option.header.key = header.name
    option.header.value = header.value
    option.append_action = action
    if not header.value:
        option.keep_empty_value = True


def _set_direct_response(out: rc.DirectResponseAction, response: ir.DirectResponse) -> None:
    out.status = response.status_code
    if response.body is not None:
        out.body.inline_string = response.body


def _matched_prefix(path: ir.PathMatch | None) -> str | None:
    """The prefix a ReplacePrefixMatch replaces ("" for "/"), or None for non-prefix matches."""
    if path is None:
        return ""
    if path.type is _PREFIX:
        return path.value.rstrip("/")
    return None


def _re2_literal(text: str) -> str:
    """Text as an RE2 substitution, where a backslash would start a group reference."""
    return text.replace("\\", "\\\\")


def _set_prefix_replace(
    target: rc.RouteAction | rc.RedirectAction, replacement: str, path: ir.PathMatch | None
) -> None:
    """Gateway API ReplacePrefixMatch on a RouteAction or a RedirectAction.

    ``prefix_rewrite`` swaps the matched prefix string verbatim. That is right for
    ``/foo`` → ``/xyz`` but wrong at the edges, where a regex rewrite does it instead:

    * replacement "/" (or ""): ``/foo/bar`` would become ``//bar``; ``^/foo/*`` → ``/``
      gives ``/bar``, and ``/foo`` → ``/``;
    * matched prefix "/": ``/bar`` would become ``/xyzbar``; ``^/`` → ``/xyz/`` gives
      ``/xyz/bar``.
    """
    matched = _matched_prefix(path)
    new = replacement.rstrip("/")
    if matched is None:
        if path is not None and path.type is _EXACT:
            # The "prefix" of an exact match is the whole path.
            target.prefix_rewrite = replacement or "/"
        # A regex match has no prefix to replace; Gateway API does not allow the pair.
        return
    if matched == "":
        if new:
            target.regex_rewrite.pattern.regex = "^/"
            target.regex_rewrite.substitution = _re2_literal(new + "/")
        return
    if not new:
        target.regex_rewrite.pattern.regex = "^" + re.escape(matched) + "/*"
        target.regex_rewrite.substitution = "/"
        return
    target.prefix_rewrite = new


def _set_url_rewrite(
    action: rc.RouteAction, rewrite: ir.URLRewrite, path: ir.PathMatch | None
) -> None:
    if rewrite.hostname:
        action.host_rewrite_literal = rewrite.hostname
        # Keep the client's Host visible to the backend, as Envoy Gateway does.
        action.append_x_forwarded_host = True
    if rewrite.path_full is not None:
        action.regex_rewrite.pattern.regex = "^/.*$"
        action.regex_rewrite.substitution = _re2_literal(rewrite.path_full)
    elif rewrite.path_prefix is not None:
        _set_prefix_replace(action, rewrite.path_prefix, path)


def _set_redirect(out: rc.RedirectAction, redirect: ir.Redirect, path: ir.PathMatch | None) -> None:
    out.SetInParent()
    scheme = redirect.scheme.lower() if redirect.scheme else None
    if scheme:
        out.scheme_redirect = scheme
    if redirect.hostname:
        out.host_redirect = redirect.hostname
    if redirect.port:
        # Envoy appends port_redirect verbatim, and Gateway API says a scheme's well-known
        # port should not appear in Location. Without a scheme, 80 and 443 are dropped as
        # Envoy Gateway does (the listener's scheme is not known here).
        if scheme is None:
            well_known: tuple[int, ...] = (80, 443)
        else:
            well_known = (ir.SCHEME_PORTS[scheme],) if scheme in ir.SCHEME_PORTS else ()
        if redirect.port not in well_known:
            out.port_redirect = redirect.port
    if redirect.path_full is not None:
        out.path_redirect = redirect.path_full
    elif redirect.path_prefix is not None:
        _set_prefix_replace(out, redirect.path_prefix, path)
    out.response_code = _REDIRECT_CODES.get(redirect.status_code, rc.RedirectAction.FOUND)


def _set_timeouts(action: rc.RouteAction, timeouts: ir.Timeouts, retry: ir.Retry | None) -> None:
    """Gateway API timeouts (GEP-1742) with or without retries (GEP-1731).

    ``request`` bounds the whole exchange, retries included: ``route.timeout``.
    ``backendRequest`` bounds each backend attempt: ``per_try_timeout``, which Envoy applies
    to the first attempt even when nothing is retried. Without ``request``, the whole
    exchange is bounded by every attempt's share, so Envoy's 15 s default never cuts a
    longer ``backendRequest`` short: one attempt without retries (as Envoy Gateway does),
    ``attempts + 1`` with them.
    """
    request, backend = timeouts.request, timeouts.backend_request
    if request is not None:
        set_seconds(action.timeout, request)
    elif backend is not None:
        tries = 1 if retry is None else 1 + (retry.attempts or _ENVOY_DEFAULT_RETRIES)
        set_seconds(action.timeout, 0 if backend == 0 else backend * tries)
    if backend and (request is not None or retry is not None):
        set_seconds(action.retry_policy.per_try_timeout, backend)


_ENVOY_DEFAULT_RETRIES = 1
# What Gateway API's "retry on connection errors" (a SHOULD) means in Envoy's terms: the
# connection failed or was reset, or the stream was refused; per-try timeouts count as resets.
_RETRY_ON_CONNECTION = "connect-failure,refused-stream,reset"


def _set_retry(policy: rc.RetryPolicy, retry: ir.Retry) -> None:
    policy.retry_on = _RETRY_ON_CONNECTION + (",retriable-status-codes" if retry.codes else "")
    policy.retriable_status_codes.extend(retry.codes)
    if retry.attempts is not None:
        policy.num_retries.value = retry.attempts
    if retry.backoff is not None:
        set_seconds(policy.retry_back_off.base_interval, retry.backoff)


def session_policy(session: ir.SessionPersistence) -> stateful_session_pb2.StatefulSessionPerRoute:
    """A route's stateful session: the cookie or header that names the endpoint its first
    response came from, which later requests carrying it go back to."""
    state = stateful_session_pb2.StatefulSessionPerRoute()
    config = state.stateful_session.session_state
    if session.type is ir.SessionType.HEADER:
        config.name = "envoy.http.stateful_session.header"
        config.typed_config.Pack(header_pb2.HeaderBasedSessionState(name=session.name))
        return state
    cookie = cookie_pb2.CookieBasedSessionState()
    cookie.cookie.name = session.name
    cookie.cookie.path = session.path
    if session.ttl is not None:
        set_seconds(cookie.cookie.ttl, session.ttl)
    config.name = "envoy.http.stateful_session.cookie"
    config.typed_config.Pack(cookie, deterministic=True)
    return state


# --------------------------------------------------------------------------- containers


def build_virtual_host(
    name: str, hostname: str, routes: Iterable[rc.Route], *, stats: bool = False
) -> rc.VirtualHost:
    """A virtual host; ``stats`` adds a virtual cluster over all of its requests, which is
    how Envoy counts upstream requests per virtual host (``envoy_virtual_cluster``)."""
    out = rc.VirtualHost(name=name, domains=[hostname or "*"])
    out.routes.extend(routes)
    if stats:
        cluster = out.virtual_clusters.add(name=stat_safe(hostname or "*"))
        header = cluster.headers.add(name=":method")
        header.present_match = True
    return out


def build_route_configuration(
    name: str, virtual_hosts: Iterable[rc.VirtualHost]
) -> route_pb2.RouteConfiguration:
    # Gateway API hostnames never carry a port; without this, "Host: a.example:8080" would
    # match no virtual host.
    out = route_pb2.RouteConfiguration(name=name, ignore_port_in_host_matching=True)
    out.virtual_hosts.extend(virtual_hosts)
    return out


def build_scope(name: str, hostname: str) -> scoped_route_pb2.ScopedRouteConfiguration:
    """The scope of one hostname of a route table split by hostname: requests whose host
    is exactly ``hostname`` use the RouteConfiguration ``name``."""
    out = scoped_route_pb2.ScopedRouteConfiguration(name=name, route_configuration_name=name)
    out.key.fragments.add().string_key = hostname
    return out


def cors_policy(cors: ir.CORS) -> cors_pb2.CorsPolicy:
    """Envoy's CORS policy for a route. Origins become string matchers: ``*`` any origin,
    ``https://*.example.com`` a regex for any subdomain of example.com (not example.com
    itself), others exact. Envoy answers
    preflight requests itself and echoes an allowed ``Origin``."""
    out = cors_pb2.CorsPolicy()
    for origin in cors.allow_origins:
        matcher = out.allow_origin_string_match.add()
        if origin == "*":
            matcher.safe_regex.regex = ".*"
        elif "*" in origin:
            # One or more DNS labels, as a Gateway API hostname wildcard matches.
            matcher.safe_regex.regex = re.escape(origin).replace(r"\*", "[a-zA-Z0-9.-]+")
        else:
            matcher.exact = origin
    if cors.allow_methods:
        out.allow_methods = ",".join(cors.allow_methods)
    if cors.allow_headers:
        out.allow_headers = ",".join(cors.allow_headers)
    if cors.expose_headers:
        out.expose_headers = ",".join(cors.expose_headers)
    out.max_age = str(cors.max_age)
    if cors.allow_credentials:
        out.allow_credentials.value = True
    return out
