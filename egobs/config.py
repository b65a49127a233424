"""The ``egobs serve`` configuration file, in the spirit of Envoy Gateway's EnvoyGateway config.

    apiVersion: egobs.dev/v1alpha1
    kind: EgobsConfig
    gateway:
      controllerName: gateway.egobs.dev/gatewayclass-controller
    provider:
      type: File
      file: {paths: [examples/quickstart]}
    xds:
      address: 127.0.0.1
      port: 18000
      hostnameScopesMinRoutes: 1000         # split route tables by hostname (null: never)
      tls:                                  # optional mTLS with the proxies (egobs certgen)
        certFile: certs/xds.pem
        keyFile: certs/xds-key.pem
        caFile: certs/ca.pem                # client certificates must chain to it
        proxyCertDir: certs/gateways        # default: gateways/ beside caFile
    admin: {address: 127.0.0.1, port: 19000}
    infra:
      type: Host
      host:
        listenerAddress: 127.0.0.1
        portOffset: 10000
    telemetry:
      metrics: {enabled: true}              # /metrics on the admin server
      tracing:
        enabled: true
        endpoint: 127.0.0.1:4317            # OTLP: host:port for grpc, URL for http
        protocol: grpc                      # or http (OTLP/HTTP protobuf, /v1/traces)
        headers: {x-tenant: platform}
        samplingRatio: 1.0                  # per change; a change's spans are kept together
        exportIntervalS: 1.0
      logging:
        format: json                        # or console
        level: info
        components: {egobs.xds: debug}      # logger name -> level
    proxyTelemetry:
      accessLogSink:
        host: 127.0.0.1
        port: 18090
        tls: {caFile: certs/ca.pem}         # optional mTLS to an `egobs sink --tls-*`

Relative paths are relative to the config file. Unknown fields are errors, reported like
resource errors (file, field path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from egobs import ir
from egobs.certs import ServerTLS, TLSFileError, is_ip
from egobs.gatewayapi.telemetry import SinkAddress, TelemetryDefaults
from egobs.infra.binding import HostBinding
from egobs.infra.bootstrap import SINK_CA_SECRET, SINK_CLIENT_SECRET, ProxyTLS, UpstreamTLS
from egobs.infra.ports import PortMap
from egobs.resources._base import Model
from egobs.resources.loader import load_model_file
from egobs.xds.translate import HOSTNAME_SCOPES_MIN_ROUTES

__all__ = [
    "AccessLogSinkTLSConfig",
    "AdminConfig",
    "Config",
    "FileProviderConfig",
    "GatewayConfig",
    "HostInfraConfig",
    "InfraConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ProviderConfig",
    "TelemetryConfig",
    "TracingConfig",
    "XdsConfig",
    "XdsTLSConfig",
    "check_tls",
    "host_binding",
    "load_config",
    "proxy_tls",
    "telemetry_defaults",
    "xds_server_tls",
]

DEFAULT_CONTROLLER_NAME = "gateway.egobs.dev/gatewayclass-controller"

Port = Annotated[int, Field(ge=0, le=65535)]


class GatewayConfig(Model):
    controller_name: str = DEFAULT_CONTROLLER_NAME


class FileProviderConfig(Model):
    paths: list[str] = Field(default_factory=list)
    # How long the watcher waits for more events after the first (see FileProvider).
    debounce_ms: Annotated[int, Field(ge=1, le=10_000)] = 5


class ProviderConfig(Model):
    type: Literal["File"] = "File"
    file: FileProviderConfig = Field(default_factory=FileProviderConfig)


class XdsTLSConfig(Model):
    """mTLS between the proxies and the xDS server; ``egobs certgen`` writes every file.

    The server presents ``certFile``/``keyFile``, requires a client certificate that chains
    to ``caFile``, and serves a stream only the snapshot of the Gateway that certificate
    names. The proxies egobs runs (and ``egobs bootstrap`` prints) verify the server with
    ``caFile`` and present their Gateway's certificate from ``proxyCertDir``.
    """

    cert_file: str
    key_file: str
    ca_file: str
    # <dir>/<namespace>/<name>/cert.pem and key.pem, as `egobs certgen --gateway` writes
    # them; default: gateways/ beside caFile (certgen's layout).
    proxy_cert_dir: str | None = None


class XdsConfig(Model):
    address: str = "127.0.0.1"
    port: Port = 18000
    # How the proxies egobs starts talk ADS: state of the world or incremental.
    mode: Literal["sotw", "delta"] = "delta"
    # None: plaintext (the default, for a server on loopback).
    tls: XdsTLSConfig | None = None
    # A listener's route table of exact hostnames is split into one RouteConfiguration per
    # hostname (Envoy scoped routes keyed on the Host header) once it holds this many
    # routes, so a route change ships and rebuilds one hostname's table. Scope keys match
    # exactly: a Host in other letter case than the route's hostname finds no routes (404).
    # null: never split.
    hostname_scopes_min_routes: Annotated[int, Field(ge=0)] | None = HOSTNAME_SCOPES_MIN_ROUTES


class AdminConfig(Model):
    address: str = "127.0.0.1"
    port: Port = 19000
    # A file holding a bearer token that /debug/* requires (they show statuses, config and
    # proxies; /healthz, /readyz and /metrics stay open). Relative to the config file.
    token_file: str | None = None


class HostInfraConfig(Model):
    # Bootstraps, logs and proxy records. `egobs serve` defaults it (keepProxies needs it):
    # $XDG_RUNTIME_DIR/egobs, else ~/.local/state/egobs/run; elsewhere a temporary one.
    runtime_dir: str | None = None
    # Envoys keep serving when the control plane stops or dies; the next one adopts them.
    # False: they stop with it (as `egobs serve --stop-proxies` and `egobs demo` do). Unset:
    # true for `egobs serve`, false for a control plane embedded in another program (tests,
    # benches), which must not leave processes behind unless it asks to.
    keep_proxies: bool | None = None
    log_level: Literal["trace", "debug", "info", "warn", "warning", "error", "critical", "off"] = (
        "warn"
    )
    # Bind listeners here instead of the Gateway's 0.0.0.0, so a dev box exposes nothing.
    listener_address: str = "127.0.0.1"
    # Added to every listener port (80 -> 10080 with 10000) so an unprivileged user can run it.
    port_offset: Annotated[int, Field(ge=-65535, le=65535)] = 0
    # Explicit listener port remapping; wins over the offset.
    port_map: dict[int, int] = Field(default_factory=dict)
    stats_flush_interval_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    extra_args: list[str] = Field(default_factory=list)


class InfraConfig(Model):
    type: Literal["Host", "External"] = "Host"
    host: HostInfraConfig = Field(default_factory=HostInfraConfig)


LogLevel = Literal["trace", "debug", "info", "warn", "warning", "error", "critical"]


class MetricsConfig(Model):
    enabled: bool = True


class TracingConfig(Model):
    enabled: bool = False
    endpoint: str = "127.0.0.1:4317"
    protocol: Literal["grpc", "http"] = "grpc"
    headers: dict[str, str] = Field(default_factory=dict)
    sampling_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    export_interval_s: Annotated[float, Field(gt=0, le=300)] = 1.0


class LoggingConfig(Model):
    format: Literal["json", "console"] = "json"
    level: LogLevel = "info"
    components: dict[str, LogLevel] = Field(default_factory=dict)


class TelemetryConfig(Model):
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


class AccessLogSinkTLSConfig(Model):
    """mTLS from the proxies to an ``egobs sink`` run with TLS: the proxies verify the
    sink's certificate with ``caFile`` (it must name ``host``) and present their Gateway's
    certificate from ``proxyCertDir``."""

    ca_file: str
    # As xds.tls.proxyCertDir; default: gateways/ beside caFile.
    proxy_cert_dir: str | None = None


class AccessLogSinkConfig(Model):
    """Where the proxies stream access logs over gRPC (an ``egobs sink``)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 18090
    log_name: str = "egobs"
    tls: AccessLogSinkTLSConfig | None = None


class ProxyTelemetryConfig(Model):
    # On by default, pointing at `egobs sink`'s default address. When no sink runs, Envoy
    # keeps serving and its entries are lost; it counts failed connections to the sink
    # (cluster telemetry/egobs-sink upstream_cx_connect_fail), not the entries:
    # access_logs.grpc_access_log.logs_dropped counts only entries its full buffer dropped.
    access_log_sink: AccessLogSinkConfig | None = Field(default_factory=AccessLogSinkConfig)


class Config(Model):
    """The whole ``egobs serve`` configuration; also what ``egobs translate -c`` and
    ``egobs bootstrap -c`` read, so all three render the same proxies."""

    api_version: Literal["egobs.dev/v1alpha1"] = "egobs.dev/v1alpha1"
    kind: Literal["EgobsConfig"] = "EgobsConfig"
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    provider: ProviderConfig = Field(default_factory=ProviderConfig)
    xds: XdsConfig = Field(default_factory=XdsConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    infra: InfraConfig = Field(default_factory=InfraConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    proxy_telemetry: ProxyTelemetryConfig = Field(default_factory=ProxyTelemetryConfig)


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raises :class:`LoadError` naming file and field."""
    p = Path(path)
    cfg = load_model_file(p, Config, ref="EgobsConfig")
    # Relative provider paths are relative to the config file, like kubeconfig paths.
    base = p.resolve().parent
    cfg.provider.file.paths = [
        str((base / q) if not Path(q).is_absolute() else Path(q)) for q in cfg.provider.file.paths
    ]
    if cfg.admin.token_file is not None and not Path(cfg.admin.token_file).is_absolute():
        cfg.admin.token_file = str(base / cfg.admin.token_file)
    xds_tls = cfg.xds.tls
    if xds_tls is not None:
        xds_tls.cert_file = _relative_to(base, xds_tls.cert_file)
        xds_tls.key_file = _relative_to(base, xds_tls.key_file)
        xds_tls.ca_file = _relative_to(base, xds_tls.ca_file)
        if xds_tls.proxy_cert_dir is not None:
            xds_tls.proxy_cert_dir = _relative_to(base, xds_tls.proxy_cert_dir)
    sink = cfg.proxy_telemetry.access_log_sink
    if sink is not None and sink.tls is not None:
        sink.tls.ca_file = _relative_to(base, sink.tls.ca_file)
        if sink.tls.proxy_cert_dir is not None:
            sink.tls.proxy_cert_dir = _relative_to(base, sink.tls.proxy_cert_dir)
    return cfg


def _relative_to(base: Path, path: str) -> str:
    return path if Path(path).is_absolute() else str(base / path)


def admin_token(config: Config) -> str | None:
    """The bearer token of ``admin.tokenFile``, or None when there is none; ValueError with
    the reason when the file cannot be read or is empty."""
    path = config.admin.token_file
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"admin.tokenFile {path}: cannot read: {exc}") from None
    if not token:
        raise ValueError(f"admin.tokenFile {path}: empty")
    return token


def telemetry_defaults(config: Config) -> TelemetryDefaults:
    """What every Gateway's telemetry gets where its EnvoyProxy says nothing."""
    als = config.proxy_telemetry.access_log_sink
    if als is None:
        return TelemetryDefaults(sink=None)
    tls = None
    if als.tls is not None:
        sni = "" if is_ip(als.host) else als.host
        tls = ir.TelemetryTLS(SINK_CLIENT_SECRET, SINK_CA_SECRET, sni)
    return TelemetryDefaults(sink=SinkAddress(als.host, als.port, als.log_name, tls=tls))


def host_binding(config: Config) -> HostBinding:
    """Where the proxies of this config bind their listeners."""
    host = config.infra.host
    return HostBinding(
        port_map=PortMap(offset=host.port_offset, explicit=dict(host.port_map)),
        listener_address=host.listener_address,
    )


# --------------------------------------------------------------------------- TLS


def xds_server_tls(config: Config) -> ServerTLS | None:
    """The xDS server's mTLS credentials, read from ``xds.tls``'s files (None: plaintext);
    :class:`~egobs.certs.TLSFileError` (one line) when one cannot be used."""
    tls = config.xds.tls
    if tls is None:
        return None
    return ServerTLS.load(tls.cert_file, tls.key_file, tls.ca_file, what="xds.tls")


def proxy_tls(config: Config) -> ProxyTLS | None:
    """How the proxies of this config authenticate to the xDS server and the sink, for
    their bootstraps (None: plaintext to both)."""
    xds = config.xds.tls
    sink = config.proxy_telemetry.access_log_sink
    sink_tls = sink.tls if sink is not None else None
    if xds is None and sink_tls is None:
        return None
    return ProxyTLS(
        xds=(
            UpstreamTLS(xds.ca_file, _proxy_cert_dir(xds.ca_file, xds.proxy_cert_dir))
            if xds is not None
            else None
        ),
        sink=(
            UpstreamTLS(
                sink_tls.ca_file,
                _proxy_cert_dir(sink_tls.ca_file, sink_tls.proxy_cert_dir),
                server_name=sink.host,
            )
            if sink is not None and sink_tls is not None
            else None
        ),
    )


def check_tls(config: Config) -> None:
    """Raise :class:`~egobs.certs.TLSFileError` (one line) when a TLS file of the config
    cannot be used: the xDS server's certificate, key and CA and, with Host infra, the CA
    and the certificate directory the proxies are given (with External infra those paths
    are the Envoys' own). A Gateway's own certificate is read by its Envoy: one that is
    missing stops only that Envoy, which logs the path."""
    xds_server_tls(config)
    tls = proxy_tls(config)
    if tls is None or config.infra.type != "Host":
        return
    for what, upstream in (("xds.tls", tls.xds), ("proxyTelemetry.accessLogSink.tls", tls.sink)):
        if upstream is None:
            continue
        try:
            Path(upstream.ca_file).read_bytes()
        except OSError as exc:
            raise TLSFileError(
                f"{what}.caFile {upstream.ca_file}: cannot read: {exc.strerror or exc}"
            ) from None
        if not Path(upstream.cert_dir).is_dir():
            raise TLSFileError(
                f"{what}.proxyCertDir {upstream.cert_dir}: not a directory; "
                "write it with `egobs certgen --out DIR --gateway NAMESPACE/NAME`"
            )


def _proxy_cert_dir(ca_file: str, given: str | None) -> str:
    return given if given is not None else str(Path(ca_file).parent / "gateways")
