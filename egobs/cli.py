"""The ``egobs`` command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
import yaml

from egobs import __version__

EXIT_LOAD_ERROR = 2
EXIT_BROKEN_INSTALL = 3

XDS_TYPES = ("listener", "route", "cluster", "endpoint", "secret")
_XDS_DUMP_KEYS = {
    "listener": "listeners",
    "route": "routes",
    "cluster": "clusters",
    "endpoint": "endpoints",
    "secret": "secrets",
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


def _split_csv(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    allowed = {"status", "ir", "xds"}
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise click.BadParameter(f"choose from {', '.join(sorted(allowed))} (comma-separated)")
    return items


@main.command()
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    required=True,
    help="YAML file or directory (recursive); '-' reads stdin. Repeatable.",
)
@click.option(
    "--to",
    "to",
    default="status,ir,xds",
    show_default=True,
    callback=_split_csv,
    help="What to print: status, ir, xds (comma-separated).",
)
@click.option(
    "--type",
    "xds_type",
    type=click.Choice(("all", *XDS_TYPES)),
    default="all",
    show_default=True,
    help="Which xDS resource type to print.",
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
    help="Fixed lastTransitionTime for conditions (RFC 3339), for reproducible output.",
)
def translate(
    files: Sequence[str],
    to: list[str],
    xds_type: str,
    output: str,
    controller_name: str | None,
    now: str | None,
) -> None:
    """Translate Gateway API resources offline: statuses, IR and Envoy xDS.

    Like Envoy Gateway's `egctl x translate`. Exits 2 when the input cannot be loaded;
    problems with routes or gateways are reported as statuses, not errors.
    """
    from egobs import gatewayapi, ir
    from egobs.resources import LoadError, load_paths
    from egobs.xds.dump import config_dump
    from egobs.xds.translate import translate as translate_xds

    try:
        resources = load_paths(files)
    except LoadError as exc:
        for err in exc.errors:
            click.echo(str(err), err=True)
        sys.exit(EXIT_LOAD_ERROR)

    result = gatewayapi.translate(
        resources,
        controller_name=controller_name or gatewayapi.DEFAULT_CONTROLLER_NAME,
        now=now,
    )
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
            "gateways": {name: ir.to_data(gw) for name, gw in sorted(result.gateways.items())},
            "infra": {name: ir.to_data(p) for name, p in sorted(result.proxies.items())},
        }
    if "xds" in to:
        types = None if xds_type == "all" else [_XDS_DUMP_KEYS[xds_type]]
        out["xds"] = {
            name: config_dump(translate_xds(gw), types=types)
            for name, gw in sorted(result.gateways.items())
        }
    _emit(out, output)


if __name__ == "__main__":  # pragma: no cover
    main()
