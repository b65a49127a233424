"""IR builders shared by the xDS translator tests (a module, not a conftest: tests/ has one)."""

from __future__ import annotations

import dataclasses

from egobs import ir

S = ir.StringMatchType

# Self-signed EC certificate for example.com and *.example.com, valid until 2126; test only.
CERT_PEM = """-----BEGIN CERTIFICATE-----
MIIBqzCCAVCgAwIBAgIULCFnUv27dwCbCXqCUJQGOu2yGzkwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLZXhhbXBsZS5jb20wIBcNMjYxMTI3MDcxNDEwWhgPMjEyNjEx
MDMwNzE0MTBaMBYxFDASBgNVBAMMC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAE8TQ/8oh7b8chmMVTJRN5kaMEYbmUQlGxwIap6VPMi75WYs0l
3an6FO3sOrZWCebzNWi+AJQ8ptCH8P4B4f4sKKN6MHgwHQYDVR0OBBYEFGnWaM89
0jk2rjRP4gmRInmEknPcMB8GA1UdIwQYMBaAFGnWaM890jk2rjRP4gmRInmEknPc
MA8GA1UdEwEB/wQFMAMBAf8wJQYDVR0RBB4wHIILZXhhbXBsZS5jb22CDSouZXhh
bXBsZS5jb20wCgYIKoZIzj0EAwIDSQAwRgIhAJFjFMSU/p1UpSG8O3XfDJYWlkGM
XbehlPPU5T/GZQ8OAiEAopa4Bd2mm1REvM8R1youee0rghXBq/w/4rctc34p/OU=
-----END CERTIFICATE-----
"""
KEY_PEM = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUg9sdQj5c45NlOOq
S+uDfUewjGAxp7pG4lZI1HTemRqhRANCAATxND/yiHtvxyGYxVMlE3mRowRhuZRC
UbHAhqnpU8yLvlZizSXdqfoU7ew6tlYJ5vM1aL4AlDym0Ifw/gHh/iwo
-----END PRIVATE KEY-----
"""


# The endpoints each cluster() was made with, by id of the cluster (each is kept alive here):
# what gateway() puts in the endpoint table of the Gateways built here. By identity because
# tests make clusters of one name with other endpoints, and ir.Cluster holds no endpoints.
_MADE: dict[int, tuple[ir.Cluster, tuple[ir.Endpoint, ...]]] = {}


def cluster(
    name: str,
    *hosts: str,
    port: int = 8080,
    protocol: ir.AppProtocol = ir.AppProtocol.HTTP1,
    address_type: ir.AddressType = ir.AddressType.IP,
) -> ir.Cluster:
    endpoints = tuple(
        ir.Endpoint(h, 0 if address_type is ir.AddressType.UNIX else port) for h in hosts
    )
    made = ir.Cluster(name, protocol, address_type)
    _MADE[id(made)] = (made, endpoints)
    return made


def gateway(name: str, /, **fields: object) -> ir.Gateway:
    """An ir.Gateway whose endpoint table holds the endpoints of every cluster() its routes
    use (unless ``endpoints`` is given)."""
    gw = ir.Gateway(name, **fields)  # type: ignore[arg-type]
    if "endpoints" in fields:
        return gw
    rows: dict[str, ir.ClusterEndpoints] = {}
    for c in _clusters(gw):
        made = _MADE.get(id(c))
        if made is not None and made[0] is c:
            rows.setdefault(c.name, ir.ClusterEndpoints(c.name, made[1]))
    return dataclasses.replace(gw, endpoints=tuple(rows[n] for n in sorted(rows)))


def _clusters(gw: ir.Gateway) -> list[ir.Cluster]:
    dests = [r.destination for lis in gw.http for r in lis.routes]
    dests += [r.destination for lis in gw.tcp for r in lis.routes]
    dests += [lis.route.destination for lis in gw.udp if lis.route is not None]
    out = [s.cluster for d in dests if d is not None for s in d.settings]
    out += [m.cluster for lis in gw.http for r in lis.routes for m in r.mirrors]
    return out


def dest(name: str, *settings: tuple[ir.Cluster, int], invalid: int = 0) -> ir.RouteDestination:
    return ir.RouteDestination(
        name, tuple(ir.DestinationSetting(c, w) for c, w in settings), invalid_weight=invalid
    )


APP = cluster("service/default/app/80", "10.0.0.1", "10.0.0.2")
CANARY = cluster("service/default/canary/80", "10.0.1.1")
SHADOW = cluster("service/default/shadow/80", "10.0.2.1")
GRPC = cluster("service/default/grpc/9000", "10.0.3.1", port=9000, protocol=ir.AppProtocol.HTTP2)
EXTERNAL = cluster(
    "backend/default/external/443", "httpbin.org", port=443, address_type=ir.AddressType.FQDN
)
SOCKET = cluster("backend/default/socket", "/run/app.sock", address_type=ir.AddressType.UNIX)
EMPTY = cluster("service/default/empty/80")
DB = cluster("service/default/db/5432", "10.0.4.1", port=5432, protocol=ir.AppProtocol.TCP)
DB2 = cluster("service/default/db2/5432", "10.0.4.2", port=5432, protocol=ir.AppProtocol.TCP)
DNS = cluster("service/default/dns/53", "10.0.5.1", port=53, protocol=ir.AppProtocol.UDP)
TLS_APP = cluster("service/default/tls-app/443", "10.0.6.1", port=443, protocol=ir.AppProtocol.TCP)


def route(name: str, hostname: str = "*", **kw: object) -> ir.HTTPRoute:
    if not any(k in kw for k in ("destination", "redirect", "direct_response")):
        kw["destination"] = dest(name, (APP, 1))
    return ir.HTTPRoute(name=f"httproute/default/{name}/rule/0/match/0", hostname=hostname, **kw)  # type: ignore[arg-type]


def full_gateway() -> ir.Gateway:
    """A Gateway that uses every feature the translator supports."""
    http_routes = (
        route(
            "exact",
            "app.example.com",
            path_match=ir.PathMatch(S.EXACT, "/exact"),
            method="GET",
            header_matches=(
                ir.HeaderMatch("x-env", "prod"),
                ir.HeaderMatch("x-re", "^a.*", S.REGEX),
            ),
            query_param_matches=(
                ir.QueryParamMatch("q", "1"),
                ir.QueryParamMatch("r", "[0-9]+", S.REGEX),
            ),
            timeouts=ir.Timeouts(request=15, backend_request=2.5),
        ),
        route(
            "weighted",
            "app.example.com",
            path_match=ir.PathMatch(S.PREFIX, "/api/"),
            destination=dest("weighted", (APP, 80), (CANARY, 20)),
            request_headers=ir.HeaderModifier(
                set=(ir.HeaderValue("x-set", "1"),),
                add=(ir.HeaderValue("x-add", ""),),
                remove=("x-rm",),
            ),
            response_headers=ir.HeaderModifier(
                set=(ir.HeaderValue("x-resp", "1"),), remove=("server",)
            ),
            mirrors=(ir.Mirror(SHADOW, 25.5), ir.Mirror(SHADOW)),
            timeouts=ir.Timeouts(request=0),
        ),
        route(
            "invalid-share",
            "app.example.com",
            path_match=ir.PathMatch(S.PREFIX, "/partial"),
            destination=dest("invalid-share", (APP, 1), (CANARY, 1), invalid=2),
        ),
        route(
            "no-backend",
            "app.example.com",
            path_match=ir.PathMatch(S.PREFIX, "/none"),
            destination=dest("no-backend", invalid=1),
        ),
        route("regex", "*.example.com", path_match=ir.PathMatch(S.REGEX, r"/items/[0-9]+")),
        route(
            "rewrite-prefix",
            "*.example.com",
            path_match=ir.PathMatch(S.PREFIX, "/old"),
            url_rewrite=ir.URLRewrite(hostname="internal.example.com", path_prefix="/new"),
        ),
        route(
            "strip-prefix",
            "*.example.com",
            path_match=ir.PathMatch(S.PREFIX, "/strip"),
            url_rewrite=ir.URLRewrite(path_prefix="/"),
        ),
        route(
            "root-prefix",
            "*.example.com",
            path_match=ir.PathMatch(S.PREFIX, "/"),
            url_rewrite=ir.URLRewrite(path_prefix="/v2"),
        ),
        route(
            "full",
            "*.example.com",
            path_match=ir.PathMatch(S.EXACT, "/full"),
            url_rewrite=ir.URLRewrite(path_full="/replaced"),
        ),
        route(
            "redirect",
            path_match=ir.PathMatch(S.PREFIX, "/moved"),
            redirect=ir.Redirect(
                scheme="https",
                hostname="new.example.com",
                port=8443,
                path_prefix="/here",
                status_code=301,
            ),
        ),
        route(
            "redirect-full",
            path_match=ir.PathMatch(S.EXACT, "/gone"),
            redirect=ir.Redirect(path_full="/elsewhere", status_code=308),
        ),
        route(
            "redirect-strip",
            path_match=ir.PathMatch(S.PREFIX, "/s"),
            redirect=ir.Redirect(path_prefix="/", status_code=307),
        ),
        route(
            "direct",
            path_match=ir.PathMatch(S.EXACT, "/teapot"),
            direct_response=ir.DirectResponse(418, "short and stout"),
        ),
        route(
            "external",
            path_match=ir.PathMatch(S.PREFIX, "/ext"),
            destination=dest("external", (EXTERNAL, 1)),
        ),
        route(
            "socket",
            path_match=ir.PathMatch(S.PREFIX, "/sock"),
            destination=dest("socket", (SOCKET, 1)),
        ),
        route(
            "empty",
            path_match=ir.PathMatch(S.PREFIX, "/empty"),
            destination=dest("empty", (EMPTY, 1)),
        ),
        # Shadowed: listener default/eg/http-www on the same port has a more specific hostname.
        route("shadowed", "www.example.com", path_match=ir.PathMatch(S.PREFIX, "/shadowed")),
        route("catch-all"),
    )
    grpc_route = ir.HTTPRoute(
        name="grpcroute/default/grpc/rule/0/match/0",
        hostname="grpc.example.com",
        path_match=ir.PathMatch(S.EXACT, "/pkg.Svc/Method"),
        grpc=True,
        destination=dest("grpc", (GRPC, 1)),
    )
    http = ir.HTTPListener("default/eg/http", "0.0.0.0", 80, ("*",), (*http_routes, grpc_route))
    http_specific = ir.HTTPListener(
        "default/eg/http-www",
        "0.0.0.0",
        80,
        ("www.example.com",),
        (route("www-only", "www.example.com", path_match=ir.PathMatch(S.PREFIX, "/www")),),
    )
    tls = ir.TLSConfig((ir.Certificate("default/example-cert", CERT_PEM, KEY_PEM),))
    https = ir.HTTPListener(
        "default/eg/https",
        "0.0.0.0",
        443,
        ("www.example.com",),
        (route("secure", "www.example.com"),),
        tls=tls,
    )
    https_wild = ir.HTTPListener(
        "default/eg/https-wild",
        "0.0.0.0",
        443,
        ("*.example.com",),
        (route("secure-wild", "*.example.com"),),
        tls=ir.TLSConfig(tls.certificates, ("http/1.1",)),
    )
    tcp = ir.TCPListener(
        "default/eg/tcp",
        "0.0.0.0",
        5432,
        (
            ir.TCPRoute("tcproute/default/db/rule/0", dest("db", (DB, 3), (DB2, 1), invalid=1)),
            ir.TCPRoute("tcproute/default/ignored/rule/0", dest("ignored", (DB2, 1))),
        ),
    )
    tcp_single = ir.TCPListener(
        "default/eg/tcp-single",
        "0.0.0.0",
        5433,
        (ir.TCPRoute("tcproute/default/single/rule/0", dest("single", (DB, 1))),),
    )
    tcp_none = ir.TCPListener(
        "default/eg/tcp-none",
        "0.0.0.0",
        5434,
        (ir.TCPRoute("tcproute/default/none/rule/0", dest("none", invalid=1)),),
    )
    passthrough = ir.TCPListener(
        "default/eg/tls",
        "0.0.0.0",
        8443,
        (
            ir.TCPRoute(
                "tlsroute/default/a/rule/0",
                dest("a", (TLS_APP, 1)),
                ("a.example.com", "b.example.com"),
            ),
            ir.TCPRoute("tlsroute/default/any/rule/0", dest("any", (TLS_APP, 1))),
        ),
        tls_passthrough=True,
    )
    udp = ir.UDPListener(
        "default/eg/udp",
        "0.0.0.0",
        5353,
        ir.UDPRoute("udproute/default/dns/rule/0", dest("dns", (DNS, 1))),
    )
    return gateway(
        "default/eg",
        http=(http, http_specific, https, https_wild),
        tcp=(tcp, tcp_single, tcp_none, passthrough),
        udp=(udp,),
    )
