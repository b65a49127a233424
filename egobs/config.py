"""The ``egobs serve`` configuration file, in the spirit of Envoy Gateway's EnvoyGateway config.

    apiVersion: egobs.dev/v1alpha1
    kind: EgobsConfig
    gateway:
      controllerName: gateway.egobs.dev/gatewayclass-controller
    provider:
      type: File
      file: {paths: [examples/quickstart]}
    xds: {address: 127.0.0.1, port: 18000}
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

Unknown fields are errors, reported like resource errors (file, field path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from egobs.gatewayapi.telemetry import SinkAddress, TelemetryDefaults
from egobs.infra.binding import HostBinding
from egobs.infra.ports import PortMap
from egobs.resources._base import Model
from egobs.resources.loader import load_model_file

__all__ = [
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
    "host_binding",
    "load_config",
    "telemetry_defaults",
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


class XdsConfig(Model):
    address: str = "127.0.0.1"
    port: Port = 18000
    # How the proxies egobs starts talk ADS: state of the world or incremental.
    mode: Literal["sotw", "delta"] = "delta"


class AdminConfig(Model):
    address: str = "127.0.0.1"
    port: Port = 19000
    # A file holding a bearer token that /debug/* requires (they show statuses, config and
    # proxies; /healthz, /readyz and /metrics stay open). Relative to the config file.
    token_file: str | None = None


class HostInfraConfig(Model):
    runtime_dir: str | None = None
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


class AccessLogSinkConfig(Model):
    """Where the proxies stream access logs over gRPC (an ``egobs sink``)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 18090
    log_name: str = "egobs"


class ProxyTelemetryConfig(Model):
    # On by default, pointing at `egobs sink`'s default address: when no sink runs, Envoy
    # only counts the entries it could not send (access_logs.grpc_access_log.logs_dropped).
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
    return cfg


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
    sink = SinkAddress(als.host, als.port, als.log_name) if als is not None else None
    return TelemetryDefaults(sink=sink)


def host_binding(config: Config) -> HostBinding:
    """Where the proxies of this config bind their listeners."""
    host = config.infra.host
    return HostBinding(
        port_map=PortMap(offset=host.port_offset, explicit=dict(host.port_map)),
        listener_address=host.listener_address,
    )
